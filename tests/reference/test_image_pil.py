#!/usr/bin/env python3
"""test_image_pil.py — libsetok's image module against Pillow, through ctypes.

Checks setok_image_resize against PIL Image.resize (NEAREST, BILINEAR, LANCZOS,
BICUBIC; RGB, RGBA, L; up, down, non-integer factors), PNG and JPEG decoding
against PIL's decode, and the HF CLIP preprocessing chain (shortest edge,
BICUBIC, center crop, rescale, normalize) against a numpy re-implementation of
transformers' steps on top of PIL. The library path comes from SETOK_LIB.
Exit 0 when all pass, 1 on a failure, 77 when numpy or Pillow is missing.
"""
import ctypes
import io
import sys

import setok_ctypes
from setok_ctypes import SetokError, SetokImage

try:
    import numpy as np
    import PIL
    from PIL import Image
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)


NEAREST, BILINEAR, BICUBIC, LANCZOS = 0, 1, 2, 3
PIL_FILTER = {
    NEAREST: Image.Resampling.NEAREST,
    BILINEAR: Image.Resampling.BILINEAR,
    BICUBIC: Image.Resampling.BICUBIC,
    LANCZOS: Image.Resampling.LANCZOS,
}
FILTER_NAME = {NEAREST: "NEAREST", BILINEAR: "BILINEAR", BICUBIC: "BICUBIC", LANCZOS: "LANCZOS"}
# Pillow >= 13 runs the vertical pass first when the height shrinks by more than twice as many
# pixels as the width (the engine does too); older Pillow always runs horizontal first.
PIL_VERTICAL_FIRST = int(PIL.__version__.split(".")[0]) >= 13
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def load_library():
    img_p, err_p = ctypes.POINTER(SetokImage), ctypes.POINTER(SetokError)
    i, pi = ctypes.c_int, ctypes.POINTER(ctypes.c_int)
    return setok_ctypes.load_library({
        "setok_image_decode": [img_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p,
                               ctypes.c_size_t, err_p],
        "setok_image_resize": [img_p, img_p, i, i, i, err_p],
        "setok_image_center_crop": [img_p, img_p, i, i, err_p],
        "setok_image_to_rgb": [img_p, img_p, err_p],
        "setok_image_normalize": [ctypes.POINTER(ctypes.c_float), img_p, ctypes.c_float,
                                  ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float),
                                  err_p],
        "setok_image_free": [img_p, ("restype", None)],
        "setok_image_shortest_edge_size": [i, i, i, pi, pi, ("restype", None)],
    })


LIB = load_library()


class EngineError(Exception):
    pass


def to_c(arr):
    """numpy [H, W] or [H, W, C] uint8 -> SetokImage (arr must outlive it)."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    img = SetokImage(arr.shape[1], arr.shape[0], arr.shape[2],
                     arr.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)))
    img._keep = arr
    return img


def from_c(img):
    """Copies and frees an engine-allocated image -> numpy [H, W, C]."""
    shape = (img.height, img.width, img.channels)
    arr = np.ctypeslib.as_array(img.pixels, shape=(int(np.prod(shape)),)).copy()
    LIB.setok_image_free(ctypes.byref(img))
    return arr.reshape(shape)


def check(status, err):
    if status != 0:
        raise EngineError(err.message.decode())


def engine_resize(arr, size, filt):
    src, dst, err = to_c(arr), SetokImage(), SetokError()
    check(LIB.setok_image_resize(ctypes.byref(dst), ctypes.byref(src), size[0], size[1], filt,
                                 ctypes.byref(err)), err)
    return from_c(dst)


def engine_decode(data, name="mem"):
    buf = ctypes.create_string_buffer(data, len(data))
    img, err = SetokImage(), SetokError()
    check(LIB.setok_image_decode(ctypes.byref(img), buf, len(data), name.encode(), 0,
                                 ctypes.byref(err)), err)
    return from_c(img)


def engine_clip(data, size=336, crop=336):
    """The engine's CLIP preprocessing: [3, crop, crop] float32."""
    buf = ctypes.create_string_buffer(data, len(data))
    err = SetokError()
    img, rgb, resized, cropped = SetokImage(), SetokImage(), SetokImage(), SetokImage()
    check(LIB.setok_image_decode(ctypes.byref(img), buf, len(data), b"clip", 0,
                                 ctypes.byref(err)), err)
    check(LIB.setok_image_to_rgb(ctypes.byref(rgb), ctypes.byref(img), ctypes.byref(err)), err)
    w, h = ctypes.c_int(), ctypes.c_int()
    LIB.setok_image_shortest_edge_size(rgb.width, rgb.height, size, ctypes.byref(w),
                                       ctypes.byref(h))
    check(LIB.setok_image_resize(ctypes.byref(resized), ctypes.byref(rgb), w.value, h.value,
                                 BICUBIC, ctypes.byref(err)), err)
    check(LIB.setok_image_center_crop(ctypes.byref(cropped), ctypes.byref(resized), crop, crop,
                                      ctypes.byref(err)), err)
    out = np.zeros((3, crop, crop), np.float32)
    mean = (ctypes.c_float * 3)(*CLIP_MEAN)
    std = (ctypes.c_float * 3)(*CLIP_STD)
    check(LIB.setok_image_normalize(out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                    ctypes.byref(cropped), 1.0 / 255.0, mean, std,
                                    ctypes.byref(err)), err)
    for im in (img, rgb, resized, cropped):
        LIB.setok_image_free(ctypes.byref(im))
    return out


# ---- the numpy / PIL side -------------------------------------------------------------------

def natural(h, w, seed, channels=3):
    """A photo-like image: smooth gradients and waves, noise, hard-edged shapes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    y /= max(h - 1, 1)
    x /= max(w - 1, 1)
    planes = []
    for c in range(channels):
        a, b, f = rng.uniform(-1, 1, 3)
        p = 128 + 70 * a * x + 60 * b * y + 40 * np.sin(2 * np.pi * (3 + 4 * f) * x * y + c)
        p += rng.normal(0, 8, (h, w))
        planes.append(p)
    img = np.stack(planes, -1)
    for _ in range(4):  # shapes with sharp edges: disks and boxes of flat colour
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.05, 0.3) * min(h, w)
        colour = rng.uniform(0, 255, channels)
        if rng.uniform() < 0.5:
            mask = (np.mgrid[0:h, 0:w][0] - cy) ** 2 + (np.mgrid[0:h, 0:w][1] - cx) ** 2 < r * r
        else:
            yy, xx = np.mgrid[0:h, 0:w]
            mask = (abs(yy - cy) < r) & (abs(xx - cx) < 1.5 * r)
        img[mask] = colour
    if channels == 4:  # alpha: a gradient with fully transparent and fully opaque regions
        alpha = np.clip(300 * x - 40, 0, 255)
        alpha[: h // 4] = 255
        alpha[h // 4: h // 4 + max(h // 8, 1)] = 0
        img[..., 3] = alpha
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def photo(h, w, seed, quality=85):
    """A natural image that went through JPEG compression (PIL's encoder and decoder)."""
    buf = io.BytesIO()
    Image.fromarray(natural(h, w, seed)).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def pil_resize(arr, size, filt):
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[arr.shape[2] if arr.ndim == 3 else 1]
    im = Image.fromarray(arr if arr.ndim == 2 or arr.shape[2] > 1 else arr[:, :, 0], mode)
    out = np.asarray(im.resize(size, PIL_FILTER[filt]))
    return out if out.ndim == 3 else out[:, :, None]


def hf_center_crop(img, ch, cw):
    """transformers.image_transforms.center_crop on [H, W, C] (pads with zeros when small)."""
    h, w = img.shape[:2]
    top, left = (h - ch) // 2, (w - cw) // 2
    if top >= 0 and left >= 0 and top + ch <= h and left + cw <= w:
        return img[top:top + ch, left:left + cw]
    nh, nw = max(ch, h), max(cw, w)
    padded = np.zeros((nh, nw) + img.shape[2:], img.dtype)
    tp, lp = -(-(nh - h) // 2), -(-(nw - w) // 2)
    padded[tp:tp + h, lp:lp + w] = img
    top, left = top + tp, left + lp
    return padded[max(0, top):min(nh, top + ch), max(0, left):min(nw, left + cw)]


def hf_clip(data, size=336, crop=336):
    """CLIPImageProcessor's steps (convert_rgb, resize shortest_edge with BICUBIC,
    center_crop, rescale 1/255, normalize) on PIL + numpy: [3, crop, crop]."""
    im = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    arr = np.asarray(im.resize((new_w, new_h), Image.Resampling.BICUBIC))
    arr = hf_center_crop(arr, crop, crop)
    arr = (arr.astype(np.float64) * (1 / 255)).astype(np.float32)
    arr = (arr - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)
    return arr.transpose(2, 0, 1)


def encode(arr_or_im, fmt, **kw):
    im = arr_or_im if isinstance(arr_or_im, Image.Image) else Image.fromarray(arr_or_im)
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


# ---- the tests ------------------------------------------------------------------------------

passed, failed, skipped = 0, 0, 0
max_diff = {}  # (filter, channels) -> worst max abs difference vs PIL


def report(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {what} {detail}")


def pass_order_differs(src_w, src_h, w, h):
    """True where this Pillow orders the two passes differently from the engine."""
    engine_vertical_first = w != src_w and h < src_h and src_h - h > 2 * (src_w - w)
    return engine_vertical_first and not PIL_VERTICAL_FIRST


def test_resize():
    global skipped
    sources = {
        "natural 640x480": natural(480, 640, 1),
        "natural 333x517": natural(517, 333, 2),
        "natural 50x40": natural(40, 50, 3),
        "photo 640x480": photo(480, 640, 4),
        "photo 97x61": photo(61, 97, 5),
        "rgba 640x480": natural(480, 640, 6, channels=4),
        "rgba 333x517": natural(517, 333, 7, channels=4),
        "rgba 50x40": natural(40, 50, 8, channels=4),
        "gray 333x517": natural(517, 333, 9)[:, :, :1],
        "tiny 7x3": natural(3, 7, 10),
        "tall 60x700": natural(700, 60, 11),
        "tall rgba 60x700": natural(700, 60, 12, channels=4),
    }
    sizes = [(336, 252), (224, 224), (336, 336), (100, 75), (1, 1), (640, 17), (1000, 999)]
    for name, arr in sources.items():
        h, w = arr.shape[:2]
        cases = sizes + [(w, h), (w, 2 * h + 1), (w // 2 + 1, h), (3 * w, 3 * h), (w // 3, h // 3),
                         (w - 3, h - 6), (w - 3, h - 7), (w + 5, h // 2), (3, 2)]
        for size in cases:
            if size[0] < 1 or size[1] < 1:
                continue
            if pass_order_differs(w, h, *size):
                skipped += 1
                continue
            for filt in (NEAREST, BILINEAR, BICUBIC, LANCZOS):
                what = f"resize {name} -> {size[0]}x{size[1]} {FILTER_NAME[filt]}"
                try:
                    got = engine_resize(arr, size, filt)
                except EngineError as e:
                    report(False, what, str(e))
                    continue
                want = pil_resize(arr, size, filt)
                if got.shape != want.shape:
                    report(False, what, f"shape {got.shape} vs {want.shape}")
                    continue
                d = int(np.abs(got.astype(int) - want.astype(int)).max())
                key = (FILTER_NAME[filt], arr.shape[2])
                max_diff[key] = max(max_diff.get(key, 0), d)
                report(d <= 1, what, f"max abs diff {d}")


def decode_vs_pil(what, data, want_channels, expect_exact=True, tol=0):
    try:
        got = engine_decode(data, what)
    except EngineError as e:
        report(False, what, str(e))
        return None
    im = Image.open(io.BytesIO(data))
    want = np.asarray(im.convert("RGBA" if want_channels == 4 else "RGB"))
    if got.shape != want.shape:
        report(False, what, f"shape {got.shape} vs {want.shape}")
        return None
    d = int(np.abs(got.astype(int) - want.astype(int)).max())
    report(d <= tol, what, f"max abs diff {d}")
    return d


def test_decode_png():
    rgb = natural(37, 53, 20)
    rgba = natural(37, 53, 21, channels=4)
    gray = rgb[:, :, 0]
    decode_vs_pil("png RGB", encode(rgb, "PNG"), 3)
    decode_vs_pil("png RGBA", encode(rgba, "PNG"), 4)
    decode_vs_pil("png L", encode(gray, "PNG"), 3)
    decode_vs_pil("png LA", encode(Image.fromarray(rgba[:, :, [0, 3]], "LA"), "PNG"), 4)
    decode_vs_pil("png L+tRNS", encode(Image.fromarray(gray), "PNG",
                                       transparency=int(gray[5, 5])), 4)
    decode_vs_pil("png RGB+tRNS", encode(Image.fromarray(rgb), "PNG",
                                         transparency=tuple(int(v) for v in rgb[3, 4])), 4)
    pal = Image.fromarray(rgb).quantize(64)
    decode_vs_pil("png P", encode(pal, "PNG"), 3)
    decode_vs_pil("png P+tRNS", encode(pal, "PNG", transparency=bytes(range(0, 256, 4))), 4)
    decode_vs_pil("png P 4-bit", encode(Image.fromarray(rgb).quantize(16), "PNG", bits=4), 3)
    decode_vs_pil("png 1-bit", encode(Image.fromarray(gray > 128), "PNG"), 3)
    # 16-bit gray: PIL opens it as "I;16" and clips when converting to 8 bits; the engine keeps
    # the high byte (as PIL does for 16-bit RGB/RGBA), so compare with numpy instead.
    g16 = (gray.astype(np.uint16) * 257 + np.arange(53, dtype=np.uint16)).astype(np.uint16)
    got = engine_decode(encode(Image.fromarray(g16), "PNG"))
    want = np.repeat((g16 >> 8).astype(np.uint8)[:, :, None], 3, 2)
    report(got.shape == want.shape and np.array_equal(got, want), "png 16-bit gray (high byte)")


def test_decode_jpeg():
    rgb = natural(61, 83, 30)  # odd sizes exercise partial MCUs and edge upsampling
    diffs = [
        decode_vs_pil("jpeg 4:2:0 q90", encode(rgb, "JPEG", quality=90), 3),
        decode_vs_pil("jpeg 4:2:2 q75", encode(rgb, "JPEG", quality=75, subsampling=1), 3),
        decode_vs_pil("jpeg 4:4:4 q95", encode(rgb, "JPEG", quality=95, subsampling=0), 3),
        decode_vs_pil("jpeg progressive", encode(rgb, "JPEG", quality=80, progressive=True), 3),
        decode_vs_pil("jpeg gray", encode(rgb[:, :, 1], "JPEG", quality=90), 3),
        decode_vs_pil("jpeg CMYK", encode(Image.fromarray(rgb).convert("CMYK"), "JPEG",
                                          quality=90), 3),
        decode_vs_pil("jpeg photo 640x480", encode(photo(480, 640, 31), "JPEG", quality=70), 3),
    ]
    print(f"JPEG decode max abs diff vs PIL: {max(d for d in diffs if d is not None)}")


def test_clip_chain():
    sources = {
        "640x480": natural(480, 640, 40),
        "333x517": natural(517, 333, 41),
        "photo 500x375": photo(375, 500, 42),
        "rgba 300x200": natural(200, 300, 43, channels=4),
        "336x336": natural(336, 336, 44),
        "100x60 (upscale)": natural(60, 100, 45),
    }
    worst = 0.0
    for name, arr in sources.items():
        data = encode(arr, "PNG")
        got, want = engine_clip(data), hf_clip(data)
        tol = (1 / 255) / np.array(CLIP_STD, np.float32)[:, None, None] + 1e-5
        d = np.abs(got - want)
        worst = max(worst, float(d.max()))
        report(got.shape == want.shape and bool((d <= tol).all()), f"clip chain {name}",
               f"max abs diff {d.max():.3g}")
    print(f"CLIP chain max abs diff vs numpy/PIL: {worst:.3g}")
    # Crops larger than the image pad with zeros exactly where HF does.
    for h, w, ch, cw in [(200, 300, 336, 336), (5, 8, 8, 5), (7, 7, 4, 10), (9, 6, 3, 3)]:
        arr = natural(h, w, 46)
        src, dst, err = to_c(arr), SetokImage(), SetokError()
        check(LIB.setok_image_center_crop(ctypes.byref(dst), ctypes.byref(src), cw, ch,
                                          ctypes.byref(err)), err)
        got = from_c(dst)
        want = hf_center_crop(arr, ch, cw)
        report(got.shape == want.shape and np.array_equal(got, want),
               f"center crop {w}x{h} -> {cw}x{ch}")


def test_shortest_edge():
    bad = []
    for w, h in [(640, 480), (480, 640), (333, 517), (336, 336), (1, 1000), (1000, 3),
                 (4032, 3024), (1919, 1081), (7, 5)]:
        for size in (224, 336, 384, 1):
            ow, oh = ctypes.c_int(), ctypes.c_int()
            LIB.setok_image_shortest_edge_size(w, h, size, ctypes.byref(ow), ctypes.byref(oh))
            short, long = (w, h) if w <= h else (h, w)
            nl = int(size * long / short)
            want = (size, nl) if w <= h else (nl, size)
            if (ow.value, oh.value) != want:
                bad.append(((w, h, size), (ow.value, oh.value), want))
    report(not bad, "shortest_edge sizes", str(bad[:3]))


def main():
    for test in (test_resize, test_decode_png, test_decode_jpeg, test_clip_chain,
                 test_shortest_edge):
        try:
            test()
        except EngineError as e:
            report(False, test.__name__, str(e))
    for (name, ch), d in sorted(max_diff.items()):
        print(f"resize {name:8s} {ch} channel(s): max abs diff vs PIL {d}")
    if skipped:
        print(f"Pillow {PIL.__version__} orders the passes as before 13.0: "
              f"{skipped} resize cases skipped")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
