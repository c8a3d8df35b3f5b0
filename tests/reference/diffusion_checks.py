"""What test_vae.py and test_unet.py share: random weights with spread for
tiny diffusers models, running `setok forward` on a component folder, and
whether libsetok has a usable CUDA device."""
import ctypes
import os
import subprocess
import tempfile

import numpy as np
import setok_ctypes
import torch
from safetensors.torch import load_file, save_file
from setok_ctypes import Arena, SetokError, Tensor  # noqa: F401 (re-exported)

# max|got - ref| / max|ref| per dtype (f16 and bf16 run on cpu-reference or CUDA)
TOLERANCE = {"f32": 1e-4, "f16": 1e-2, "bf16": 4e-2}
SETOK_ERR_NOMEM, SETOK_ERR_CANCELLED = 3, 6


class Api:
    """libsetok through ctypes with the model functions in extra ({name: [argtypes]}), a CPU
    backend, and helpers that raise on a failed call."""

    def __init__(self, extra):
        err_p, vp, i, sz = (ctypes.POINTER(SetokError), ctypes.c_void_p, ctypes.c_int,
                            ctypes.c_size_t)
        tp = ctypes.POINTER(Tensor)
        self.lib = setok_ctypes.load_library(dict({
            "setok_backend_cpu_create": [ctypes.POINTER(vp), i, err_p],
            "setok_backend_free": [vp, ("restype", None)],
            "setok_arena_init": [ctypes.POINTER(Arena), vp, sz, err_p],
            "setok_arena_destroy": [ctypes.POINTER(Arena), ("restype", None)],
            "setok_tensor_alloc": [tp, vp, i, i, ctypes.POINTER(ctypes.c_int64), err_p],
            "setok_tensor_free": [tp, ("restype", None)],
            "setok_tensor_upload": [tp, vp, err_p],
            "setok_tensor_download": [vp, tp, err_p],
        }, **extra))
        self.err = SetokError()
        self.be = ctypes.c_void_p()
        self.ok(self.lib.setok_backend_cpu_create(ctypes.byref(self.be), 1, self.eref()),
                "backend")

    def eref(self):
        return ctypes.byref(self.err)

    def ok(self, status, what):
        if status != 0:
            raise RuntimeError(f"{what}: {self.err.message.decode()}")

    def upload(self, array):
        """A new f32 tensor on the backend holding array."""
        a = np.ascontiguousarray(array, np.float32)
        t = Tensor()
        shape = (ctypes.c_int64 * a.ndim)(*a.shape)
        self.ok(self.lib.setok_tensor_alloc(ctypes.byref(t), self.be, 0, a.ndim, shape,
                                            self.eref()), "alloc")
        self.ok(self.lib.setok_tensor_upload(ctypes.byref(t), a.ctypes.data, self.eref()),
                "upload")
        return t

    def download(self, t):
        out = np.zeros(tuple(t.shape[:t.ndim]), np.float32)
        self.ok(self.lib.setok_tensor_download(out.ctypes.data, ctypes.byref(t), self.eref()),
                "download")
        return out

    def arena(self, nbytes):
        a = Arena()
        self.ok(self.lib.setok_arena_init(ctypes.byref(a), self.be, nbytes, self.eref()),
                "arena")
        return a


def randomize(model, gen):
    """Random weights with some spread: diffusers' init leaves norms at 1 / 0
    and some projections at zero, which would hide mistakes."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                scale = 0.1 if p.ndim == 1 else 1.0 / max(p[0].numel(), 1) ** 0.5
                p.copy_(scale * torch.randn(p.shape, generator=gen))
    return model.eval()


def run_forward(cli, folder, inputs, sets=(), dtype="f32", device="cpu"):
    """(exit code, stderr, {name: numpy array} or None)."""
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
        save_file({k: v.contiguous() for k, v in inputs.items()}, inp)
        cmd = [cli, "forward", folder, "--inputs", inp, "--outputs", out, "--dtype", dtype,
               "--device", device]
        for s in sets:
            cmd += ["--set", s]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            return p.returncode, p.stderr.strip(), None
        return 0, p.stderr.strip(), {k: v.numpy() for k, v in load_file(out).items()}


def cuda_available():
    """Whether libsetok ($SETOK_LIB) can create its CUDA backend here."""
    vp, err_p = ctypes.c_void_p, ctypes.POINTER(SetokError)
    lib = setok_ctypes.load_library({
        "setok_backend_cuda_create": [ctypes.POINTER(vp), ctypes.c_int, err_p],
        "setok_backend_free": [vp, ("restype", None)],
    })
    be, err = vp(), SetokError()
    if lib.setok_backend_cuda_create(ctypes.byref(be), 0, ctypes.byref(err)) != 0:
        print(f"skip  cuda cases: {err.message.decode()}")
        return False
    lib.setok_backend_free(be)
    return True
