"""The engine's shared library through ctypes, for the reference tests:
loading it (from $SETOK_LIB, which meson test sets) and declaring function
signatures, plus the structs several tests share."""
import ctypes
import os
import sys


class SetokError(ctypes.Structure):
    """setok_error (engine/include/setok/error.h)."""
    _fields_ = [("status", ctypes.c_int), ("message", ctypes.c_char * 1024)]


class SetokImage(ctypes.Structure):
    """setok_image (engine/include/setok/image.h)."""
    _fields_ = [("width", ctypes.c_int), ("height", ctypes.c_int), ("channels", ctypes.c_int),
                ("pixels", ctypes.POINTER(ctypes.c_uint8))]


class Tensor(ctypes.Structure):
    """setok_tensor (engine/include/setok/tensor.h)."""
    _fields_ = [("dtype", ctypes.c_int), ("ndim", ctypes.c_int),
                ("shape", ctypes.c_int64 * 4), ("stride", ctypes.c_int64 * 4),
                ("data", ctypes.c_void_p), ("backend", ctypes.c_void_p),
                ("borrowed", ctypes.c_bool)]


class Arena(ctypes.Structure):
    """setok_arena (engine/include/setok/arena.h)."""
    _fields_ = [("backend", ctypes.c_void_p), ("base", ctypes.c_void_p),
                ("capacity", ctypes.c_size_t), ("used", ctypes.c_size_t),
                ("peak", ctypes.c_size_t)]


class ModelOptions(ctypes.Structure):
    """setok_model_options (engine/include/setok/model.h)."""
    _fields_ = [("device", ctypes.c_char_p), ("threads", ctypes.c_int),
                ("adapter", ctypes.c_char_p), ("dtype", ctypes.c_char_p),
                ("weights", ctypes.c_char_p)]


def load_library(signatures):
    """libsetok with argtypes set from {name: [argtypes]}; every declared
    function returns an int status unless its list ends with ("restype", T)."""
    path = os.environ.get("SETOK_LIB")
    if not path:
        print("SETOK_LIB is not set (meson test sets it to libsetok's path)")
        sys.exit(1)
    lib = ctypes.CDLL(path)
    for name, args in signatures.items():
        restype = ctypes.c_int
        if args and isinstance(args[-1], tuple) and args[-1][0] == "restype":
            restype, args = args[-1][1], args[:-1]
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = restype
    return lib
