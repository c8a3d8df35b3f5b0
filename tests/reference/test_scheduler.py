#!/usr/bin/env python3
"""test_scheduler.py — the diffusion schedulers (engine/models/scheduler.c) against diffusers.

For every scheduler (DDIM, Euler, Euler ancestral, DPM-Solver++ 2M) x beta schedule (linear,
scaled_linear) x prediction type (epsilon, v_prediction) x timestep spacing (leading, trailing,
linspace) x step count (4, 10, 25), a diffusers scheduler is built, saved with save_config and
loaded by libsetok (through ctypes on SETOK_LIB) from that folder. Both then run the same
denoising loop on fixed random latents with fixed random model outputs; the timesteps,
init_noise_sigma, scale_model_input, every step's prev_sample (and pred_original_sample where
diffusers returns it) and add_noise at several steps are compared. Further cases cover the
config switches (steps_offset, set_alpha_to_one, clip_sample, DDIM eta, final_sigmas_type,
solver_order, solver_type, euler_at_final, lower_order_final, lambda_min_clipped), PNDM configs
run as DDIM, an overridden kind, img2img's start index, both guidance formulas and refused
configs. A value passes when max|got - ref| / max|ref| <= 1e-4 (f32).
Usage: test_scheduler.py [--seed N]
Exit 0 when all pass, 1 on a failure, 77 when numpy, torch or diffusers is missing.
"""
import argparse
import ctypes
import json
import os
import sys
import tempfile
import types

import setok_ctypes
from setok_ctypes import SetokError
from checks import Results, rel_err

try:
    import numpy as np
    import torch
    import diffusers
    from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler,
                           EulerAncestralDiscreteScheduler, EulerDiscreteScheduler,
                           PNDMScheduler)
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

diffusers.utils.logging.set_verbosity_error()

TOLERANCE = 1e-4
FROM_CONFIG, DDIM, EULER, EULER_A, DPM = -1, 0, 1, 2, 3
CLASSES = {DDIM: DDIMScheduler, EULER: EulerDiscreteScheduler,
           EULER_A: EulerAncestralDiscreteScheduler, DPM: DPMSolverMultistepScheduler}
NAMES = {DDIM: "ddim", EULER: "euler", EULER_A: "euler_a", DPM: "dpm++2m"}
SHAPE = (2, 4, 8, 8)  # a batch of two 4-channel 8x8 latents

R = Results()
LIB = None


def load_library():
    vp, err_p, i = ctypes.c_void_p, ctypes.POINTER(SetokError), ctypes.c_int
    fp, sz, f = ctypes.POINTER(ctypes.c_float), ctypes.c_size_t, ctypes.c_float
    return setok_ctypes.load_library({
        "setok_scheduler_load": [ctypes.POINTER(vp), ctypes.c_char_p, i, err_p],
        "setok_scheduler_free": [vp, ("restype", None)],
        "setok_scheduler_set_eta": [vp, ctypes.c_double, err_p],
        "setok_scheduler_set_timesteps": [vp, i, err_p],
        "setok_scheduler_timesteps": [vp, ctypes.POINTER(i), ("restype", fp)],
        "setok_scheduler_init_noise_sigma": [vp, ("restype", f)],
        "setok_scheduler_start_index": [vp, ctypes.c_double, ("restype", i)],
        "setok_scheduler_scale_model_input": [vp, i, fp, fp, sz, err_p],
        "setok_scheduler_step": [vp, i, fp, fp, fp, fp, fp, sz, err_p],
        "setok_scheduler_add_noise": [vp, i, fp, fp, fp, sz, err_p],
        "setok_guidance_cfg": [fp, fp, fp, f, sz, ("restype", None)],
        "setok_guidance_ip2p": [fp, fp, fp, fp, f, f, sz, ("restype", None)],
    })


def ptr(a):
    """A float* into a contiguous float32 numpy array (None stays NULL)."""
    return None if a is None else a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


class Engine:
    """One libsetok scheduler loaded from a folder; methods mirror the C API."""

    def __init__(self, folder, kind=FROM_CONFIG):
        self.handle, err = ctypes.c_void_p(), SetokError()
        if LIB.setok_scheduler_load(ctypes.byref(self.handle), folder.encode(), kind,
                                    ctypes.byref(err)):
            self.handle = None
            raise RuntimeError(err.message.decode())

    def __del__(self):
        if getattr(self, "handle", None):
            LIB.setok_scheduler_free(self.handle)

    def call(self, name, *args):
        err = SetokError()
        if getattr(LIB, name)(self.handle, *args, ctypes.byref(err)):
            raise RuntimeError(err.message.decode())

    def set_timesteps(self, n):
        self.call("setok_scheduler_set_timesteps", n)
        count = ctypes.c_int()
        p = LIB.setok_scheduler_timesteps(self.handle, ctypes.byref(count))
        return np.ctypeslib.as_array(p, (count.value,)).copy()

    def init_noise_sigma(self):
        return LIB.setok_scheduler_init_noise_sigma(self.handle)

    def scale_model_input(self, i, x):
        out = np.empty_like(x)
        self.call("setok_scheduler_scale_model_input", i, ptr(out), ptr(x), x.size)
        return out

    def step(self, i, model_output, sample, noise=None):
        out, x0 = np.empty_like(sample), np.empty_like(sample)
        self.call("setok_scheduler_step", i, ptr(out), ptr(x0), ptr(model_output), ptr(sample),
                  ptr(noise), sample.size)
        return out, x0

    def add_noise(self, i, original, noise):
        out = np.empty_like(original)
        self.call("setok_scheduler_add_noise", i, ptr(out), ptr(original), ptr(noise),
                  original.size)
        return out


def f32(t):
    return np.ascontiguousarray(t.detach().numpy(), np.float32)


def betas(schedule):
    """Stable Diffusion's betas for scaled_linear, diffusers' defaults for linear."""
    if schedule == "scaled_linear":
        return {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": schedule}
    return {"beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": schedule}


def run_loop(label, ref, folder, steps, seed, kind=FROM_CONFIG, eta=0.0, extra=""):
    """Runs diffusers' scheduler `ref` and the engine (loaded from folder, kind override)
    through one full denoising loop and checks everything they compute on the way."""
    eng = Engine(folder, kind)
    if eta:
        eng.call("setok_scheduler_set_eta", eta)
    ref.set_timesteps(steps)
    t_ref = ref.timesteps.numpy().astype(np.float64)
    t_got = eng.set_timesteps(steps).astype(np.float64)
    errs = {"timesteps": float("inf") if t_got.shape != t_ref.shape
            else float(np.abs(t_got - t_ref).max() / max(np.abs(t_ref).max(), 1.0))}
    if errs["timesteps"] > TOLERANCE:
        R.check(label, False, f"timesteps {t_got.tolist()} vs {t_ref.tolist()}")
        return
    init_ref = float(ref.init_noise_sigma)
    errs["init_noise_sigma"] = abs(eng.init_noise_sigma() - init_ref) / init_ref

    gen = torch.Generator().manual_seed(seed)
    latents = torch.randn(SHAPE, generator=gen) * init_ref
    x_ref, x_got = latents.clone(), f32(latents)
    worst = {"scale_model_input": 0.0, "prev_sample": 0.0}
    noise_gen = torch.Generator().manual_seed(seed + 1)
    for i, t in enumerate(ref.timesteps):
        model_in = ref.scale_model_input(x_ref, t)
        worst["scale_model_input"] = max(worst["scale_model_input"],
                                         rel_err(eng.scale_model_input(i, x_got), model_in))
        model_output = torch.randn(SHAPE, generator=gen)
        noise = None
        kwargs = {}
        if isinstance(ref, EulerAncestralDiscreteScheduler):
            # diffusers draws the ancestral noise inside step() with randn_tensor(shape,
            # generator=...); a generator cloned from the same state draws the same values,
            # which the engine is given as its noise argument.
            clone = torch.Generator().set_state(noise_gen.get_state())
            noise = torch.randn(SHAPE, generator=clone, dtype=model_output.dtype)
            kwargs["generator"] = noise_gen
        elif eta:
            # DDIM with eta > 0 takes the noise as variance_noise.
            noise = torch.randn(SHAPE, generator=noise_gen)
            kwargs.update(eta=eta, variance_noise=noise)
        out = ref.step(model_output, t, x_ref, **kwargs)
        got, x0 = eng.step(i, f32(model_output), x_got, None if noise is None else f32(noise))
        worst["prev_sample"] = max(worst["prev_sample"], rel_err(got, out.prev_sample))
        if getattr(out, "pred_original_sample", None) is not None:
            worst["pred_original"] = max(worst.get("pred_original", 0.0),
                                         rel_err(x0, out.pred_original_sample))
        x_ref, x_got = out.prev_sample, got
    errs.update(worst)

    # add_noise to a few step indices (fresh source latents and noise)
    original = torch.randn(SHAPE, generator=gen)
    noise = torch.randn(SHAPE, generator=gen)
    for i in sorted({0, len(ref.timesteps) // 2, len(ref.timesteps) - 1}):
        want = ref.add_noise(original, noise, ref.timesteps[i:i + 1])
        got = eng.add_noise(i, f32(original), f32(noise))
        errs["add_noise"] = max(errs.get("add_noise", 0.0), rel_err(got, want))
    ok = all(e <= TOLERANCE for e in errs.values())
    detail = " ".join(f"{k} {v:.1e}" for k, v in errs.items())
    R.check(f"{label}{extra}", ok, detail)


def save(ref, root, name):
    folder = os.path.join(root, name)
    ref.save_config(folder)
    return folder


def test_grid(root, seed):
    for kind, cls in CLASSES.items():
        for schedule in ("linear", "scaled_linear"):
            for prediction in ("epsilon", "v_prediction"):
                for spacing in ("leading", "trailing", "linspace"):
                    cfg = dict(betas(schedule), prediction_type=prediction,
                               timestep_spacing=spacing)
                    if kind == DDIM:
                        cfg.update(clip_sample=False, set_alpha_to_one=False)
                    if spacing == "leading":
                        cfg["steps_offset"] = 1
                    name = f"{NAMES[kind]}-{schedule}-{prediction}-{spacing}"
                    for steps in (4, 10, 25):
                        ref = cls(**cfg)
                        folder = save(ref, root, name)
                        run_loop(f"{name} {steps} steps", ref, folder, steps, seed + steps)


def test_switches(root, seed):
    sd = betas("scaled_linear")
    cases = [
        ("ddim clip_sample 0.5, set_alpha_to_one", DDIMScheduler(
            **sd, clip_sample=True, clip_sample_range=0.5, set_alpha_to_one=True), 10, 0.0),
        ("ddim class defaults", DDIMScheduler(), 10, 0.0),
        ("ddim eta 0.7", DDIMScheduler(**sd, clip_sample=False, set_alpha_to_one=False,
                                       steps_offset=1), 10, 0.7),
        ("ddim eta 1 trailing v", DDIMScheduler(
            **sd, clip_sample=False, timestep_spacing="trailing",
            prediction_type="v_prediction"), 7, 1.0),
        ("ddim 3 steps trailing (odd ratio)", DDIMScheduler(
            **sd, clip_sample=False, timestep_spacing="trailing"), 3, 0.0),
        ("ddim 16 steps trailing (ties)", DDIMScheduler(
            **sd, clip_sample=False, timestep_spacing="trailing"), 16, 0.0),
        ("euler final sigma_min", EulerDiscreteScheduler(**sd, final_sigmas_type="sigma_min"),
         10, 0.0),
        ("euler 7 steps linspace (fractional timesteps)", EulerDiscreteScheduler(**sd), 7, 0.0),
        ("euler_a 7 steps leading offset 1", EulerAncestralDiscreteScheduler(
            **sd, timestep_spacing="leading", steps_offset=1), 7, 0.0),
        ("dpm solver_order 1", DPMSolverMultistepScheduler(**sd, solver_order=1), 10, 0.0),
        ("dpm heun", DPMSolverMultistepScheduler(**sd, solver_type="heun"), 10, 0.0),
        ("dpm final sigma_min, 20 steps (second order to the end)", DPMSolverMultistepScheduler(
            **sd, final_sigmas_type="sigma_min"), 20, 0.0),
        ("dpm final sigma_min, euler_at_final", DPMSolverMultistepScheduler(
            **sd, final_sigmas_type="sigma_min", euler_at_final=True), 20, 0.0),
        ("dpm final sigma_min, lower_order_final, 8 steps", DPMSolverMultistepScheduler(
            **sd, final_sigmas_type="sigma_min", lower_order_final=True), 8, 0.0),
        ("dpm lambda_min_clipped -2.5 trailing", DPMSolverMultistepScheduler(
            **sd, lambda_min_clipped=-2.5, timestep_spacing="trailing"), 10, 0.0),
        ("dpm lambda_min_clipped -2.5 linspace v", DPMSolverMultistepScheduler(
            **sd, lambda_min_clipped=-2.5, prediction_type="v_prediction"), 10, 0.0),
        ("dpm class defaults, 1 step", DPMSolverMultistepScheduler(), 1, 0.0),
    ]
    for n, (label, ref, steps, eta) in enumerate(cases):
        folder = save(ref, root, f"switch-{n}")
        run_loop(label, ref, folder, steps, seed + 100 + n, eta=eta)

    # Stable Diffusion 1.5's PNDM config runs as DDIM (diffusers: DDIMScheduler.from_config)
    # (written as those folders ship it: clip_sample is a key PNDMScheduler itself ignores)
    pndm = dict(PNDMScheduler(**sd, set_alpha_to_one=False, skip_prk_steps=True,
                              steps_offset=1).config, clip_sample=False)
    pndm["_class_name"] = "PNDMScheduler"
    folder = os.path.join(root, "pndm")
    os.makedirs(folder)
    with open(os.path.join(folder, "scheduler_config.json"), "w") as f:
        json.dump(pndm, f)
    run_loop("PNDMScheduler config as DDIM", DDIMScheduler.from_config(pndm), folder, 10,
             seed + 200)
    # a DPM config run as Euler ancestral and as DDIM (the caller overrides the kind)
    dpm = DPMSolverMultistepScheduler(**sd, timestep_spacing="trailing",
                                      prediction_type="v_prediction")
    folder = save(dpm, root, "dpm-override")
    run_loop("DPM config as Euler ancestral", EulerAncestralDiscreteScheduler.from_config(
        dpm.config), folder, 10, seed + 201, kind=EULER_A)
    run_loop("DPM config as DDIM", DDIMScheduler.from_config(dpm.config), folder, 10, seed + 202,
             kind=DDIM)


def test_start_index(root):
    """img2img / editing: diffusers' get_timesteps on a stand-in pipeline."""
    import transformers  # the pipeline module imports it: quiet its warnings first
    transformers.logging.set_verbosity_error()
    from diffusers import StableDiffusionImg2ImgPipeline
    folder = save(DDIMScheduler(**betas("scaled_linear")), root, "start-index")
    eng, bad = Engine(folder), []
    for steps in (4, 10, 25, 50):
        ref = DDIMScheduler(**betas("scaled_linear"))
        ref.set_timesteps(steps)
        eng.set_timesteps(steps)
        stub = types.SimpleNamespace(scheduler=ref)
        for strength in (0.0, 0.1, 0.3, 0.55, 0.75, 0.8, 1.0):
            _, remaining = StableDiffusionImg2ImgPipeline.get_timesteps(stub, steps, strength,
                                                                        "cpu")
            got = LIB.setok_scheduler_start_index(eng.handle, strength)
            if got != steps - remaining:
                bad.append((steps, strength, got, steps - remaining))
    R.check("img2img start index (4 step counts x 7 strengths)", not bad, f"mismatches {bad}")


def test_guidance(seed):
    gen = torch.Generator().manual_seed(seed)
    n = int(np.prod(SHAPE))
    # StableDiffusionPipeline: the U-Net output of the batch [uncond, cond], chunked in two
    pred = torch.randn((2 * SHAPE[0],) + SHAPE[1:], generator=gen)
    uncond, cond = pred.chunk(2)
    scale = 7.5
    want = uncond + scale * (cond - uncond)
    got = np.empty(SHAPE, np.float32)
    LIB.setok_guidance_cfg(ptr(got), ptr(f32(uncond)), ptr(f32(cond)), scale, n)
    R.check("guidance cfg 7.5", rel_err(got, want) <= TOLERANCE,
            f"max rel err {rel_err(got, want):.1e}")
    # StableDiffusionInstructPix2PixPipeline: batch [text+image, image, uncond], chunked in three
    pred = torch.randn((3 * SHAPE[0],) + SHAPE[1:], generator=gen)
    text, image, uncond = pred.chunk(3)
    gs, igs = 7.5, 1.5
    want = uncond + gs * (text - image) + igs * (image - uncond)
    LIB.setok_guidance_ip2p(ptr(got), ptr(f32(uncond)), ptr(f32(image)), ptr(f32(text)), gs, igs,
                            n)
    R.check("guidance InstructPix2Pix 7.5 / 1.5", rel_err(got, want) <= TOLERANCE,
            f"max rel err {rel_err(got, want):.1e}")


def test_errors(root):
    def expect(label, config, kind, words, steps=None):
        folder = os.path.join(root, "bad-" + label.replace(" ", "-"))
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "scheduler_config.json"), "w") as f:
            f.write(config)
        try:
            eng = Engine(folder, kind)
            if steps is not None:
                eng.set_timesteps(steps)
            R.check(label, False, "accepted")
        except RuntimeError as e:
            msg = str(e)
            R.check(label, all(w in msg for w in words), msg)

    expect("squaredcos_cap_v2 refused",
           '{"_class_name": "DDIMScheduler", "beta_schedule": "squaredcos_cap_v2"}', FROM_CONFIG,
           ["scheduler_config.json", "beta_schedule", "squaredcos_cap_v2"])
    expect("karras sigmas refused",
           '{"_class_name": "DPMSolverMultistepScheduler", "use_karras_sigmas": true}',
           FROM_CONFIG, ["use_karras_sigmas"])
    expect("sample prediction refused",
           '{"_class_name": "EulerDiscreteScheduler", "prediction_type": "sample"}', FROM_CONFIG,
           ["prediction_type", "sample"])
    expect("sde-dpmsolver++ refused",
           '{"_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "sde-dpmsolver++"}',
           FROM_CONFIG, ["algorithm_type", "sde-dpmsolver++"])
    expect("unknown class refused", '{"_class_name": "LMSDiscreteScheduler"}', FROM_CONFIG,
           ["LMSDiscreteScheduler"])
    expect("unknown spacing refused",
           '{"_class_name": "DDIMScheduler", "timestep_spacing": "middle"}', FROM_CONFIG,
           ["timestep_spacing", "middle"])
    expect("wrong type", '{"_class_name": "DDIMScheduler", "beta_start": "small"}', FROM_CONFIG,
           ["beta_start"])
    expect("malformed json", '{"_class_name": "DDIMScheduler",', FROM_CONFIG,
           ["scheduler_config.json"])
    # misuse at run time: errors, never crashes
    folder = save(EulerAncestralDiscreteScheduler(), root, "misuse")
    x = np.zeros(SHAPE, np.float32)

    def expect_call(label, fn, words):
        try:
            fn()
            R.check(label, False, "accepted")
        except RuntimeError as e:
            R.check(label, all(w in str(e) for w in words), str(e))

    eng = Engine(folder)
    expect_call("step before set_timesteps", lambda: eng.step(0, x, x, x), ["set_timesteps"])
    eng.set_timesteps(5)
    expect_call("step index out of range", lambda: eng.step(5, x, x, x), ["step index 5"])
    expect_call("ancestral step without noise", lambda: eng.step(0, x, x), ["noise"])
    expect_call("negative eta", lambda: eng.call("setok_scheduler_set_eta", -1.0), ["eta"])
    expect("too many steps", '{"_class_name": "DDIMScheduler", "num_train_timesteps": 50}',
           FROM_CONFIG, ["num_inference_steps 51"], steps=51)


def main():
    global LIB
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    LIB = load_library()
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as root:
        test_grid(root, args.seed)
        test_switches(root, args.seed)
        test_start_index(root)
        test_guidance(args.seed)
        test_errors(root)
    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
