"""world.py — the synthetic world from Python: scenes, exact masks, annotations and edit targets.

A thin ctypes wrapper over libsetok's world generator (engine/include/setok/world.h), so the
training code, the tests and the C engine share one implementation. Scenes are deterministic by
seed on every machine.

The library is $SETOK_LIB when set, else build/engine/libsetok.so under the repository root.

    from tools.setokim import world          # from the repository root
    s = world.scene(7)                        # image [128, 128, 3] uint8, labels [128, 128] uint8
    s.annotation["caption"], s.annotation["edits"][0]["instruction"]
    t = world.edit(s, 0)                      # the exact target of that edit
"""
import ctypes
import json
import os
from dataclasses import dataclass, field

import numpy as np

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_ERROR_MAX = 1024  # SETOK_ERROR_MAX


class _Options(ctypes.Structure):
    _fields_ = [("width", ctypes.c_int), ("height", ctypes.c_int),
                ("min_objects", ctypes.c_int), ("max_objects", ctypes.c_int)]


class _Error(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("message", ctypes.c_char * _ERROR_MAX)]


class WorldError(RuntimeError):
    """A libsetok world call failed; status is the setok_status value (1: bad input)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


_lib = None


def library_path():
    """Where the shared library is looked for: $SETOK_LIB, else the repository's build/."""
    return os.environ.get("SETOK_LIB") or os.path.join(_REPO_ROOT, "build", "engine",
                                                        "libsetok.so")


def _load():
    global _lib
    if _lib is not None:
        return _lib
    path = library_path()
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"libsetok not found at {path}: build it (meson setup build && ninja -C build) "
            "or set SETOK_LIB to the path of libsetok.so")
    lib = ctypes.CDLL(path)
    scene_pp = ctypes.POINTER(ctypes.c_void_p)
    lib.setok_world_options_default.argtypes = [ctypes.POINTER(_Options)]
    lib.setok_world_options_default.restype = None
    lib.setok_world_generate.argtypes = [scene_pp, ctypes.c_uint64, ctypes.POINTER(_Options),
                                         ctypes.POINTER(_Error)]
    lib.setok_world_generate.restype = ctypes.c_int
    lib.setok_world_apply_edit.argtypes = [scene_pp, ctypes.c_void_p, ctypes.c_int,
                                           ctypes.POINTER(_Error)]
    lib.setok_world_apply_edit.restype = ctypes.c_int
    for name in ("setok_world_width", "setok_world_height", "setok_world_edit_count"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
        getattr(lib, name).restype = ctypes.c_int
    for name in ("setok_world_rgb", "setok_world_labels"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
        getattr(lib, name).restype = ctypes.POINTER(ctypes.c_uint8)
    lib.setok_world_json.argtypes = [ctypes.c_void_p]
    lib.setok_world_json.restype = ctypes.c_char_p
    lib.setok_world_free.argtypes = [ctypes.c_void_p]
    lib.setok_world_free.restype = None
    _lib = lib
    return lib


@dataclass(eq=False)  # compare the arrays with np.array_equal, not ==
class Scene:
    """One rendered scene: pixels, exact per-object labels and the annotation record.

    labels[y, x] is 0 on the background and k on the visible pixels of object id k.
    seed, options and edit_path say how to render it again (edit() uses them).
    """
    image: np.ndarray  # uint8 [H, W, 3]
    labels: np.ndarray  # uint8 [H, W]
    annotation: dict
    seed: int = 0
    options: tuple = (128, 128, 1, 6)  # width, height, min_objects, max_objects
    edit_path: tuple = field(default_factory=tuple)


def _check(status, err):
    if status != 0:
        raise WorldError(status, err.message.decode("utf-8", "replace"))


def _copy_out(lib, handle, seed, options, path):
    """Copies a C scene into a Scene (the C scene is freed by the caller)."""
    w, h = lib.setok_world_width(handle), lib.setok_world_height(handle)
    image = np.ctypeslib.as_array(lib.setok_world_rgb(handle), shape=(h, w, 3)).copy()
    labels = np.ctypeslib.as_array(lib.setok_world_labels(handle), shape=(h, w)).copy()
    annotation = json.loads(lib.setok_world_json(handle).decode("utf-8"))
    return Scene(image, labels, annotation, seed, options, tuple(path))


def _render(seed, options, path):
    """Generates seed's scene and applies the edits of path in turn; returns a Scene."""
    lib = _load()
    if not 0 <= seed < 2 ** 64:
        raise ValueError(f"seed must be in 0..2**64-1, got {seed}")
    opts = _Options(*options)
    err = _Error()
    handle = ctypes.c_void_p()
    _check(lib.setok_world_generate(ctypes.byref(handle), seed, ctypes.byref(opts),
                                    ctypes.byref(err)), err)
    try:
        for index in path:
            target = ctypes.c_void_p()
            status = lib.setok_world_apply_edit(ctypes.byref(target), handle, index,
                                                ctypes.byref(err))
            _check(status, err)
            lib.setok_world_free(handle)
            handle = target
        return _copy_out(lib, handle, seed, options, path)
    finally:
        lib.setok_world_free(handle)


def scene(seed: int, width=128, height=128, min_objects=1, max_objects=6) -> Scene:
    """The scene of seed. Bad sizes or object counts raise WorldError (status 1)."""
    return _render(int(seed), (width, height, min_objects, max_objects), ())


def edit(src, index: int) -> Scene:
    """The exact target of edit number index (src.annotation["edits"][index]): same background,
    the other objects untouched. src is a Scene, or a seed for the default options."""
    if not isinstance(src, Scene):
        src = scene(int(src))
    n = len(src.annotation["edits"])
    if not 0 <= index < n:
        raise IndexError(f"seed {src.seed} has {n} edits, no edit {index}")
    return _render(src.seed, src.options, src.edit_path + (int(index),))
