"""numpy <-> C buffers: dtype conversions that never round silently, and pointers."""
from __future__ import annotations

import ctypes as C
from typing import Any, Optional, Sequence

import numpy as np


def as_numpy(x: Any) -> np.ndarray:
    """A numpy array of x; torch tensors (any device) are brought to the host first."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if str(getattr(x, "dtype", "")) == "torch.bfloat16":
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def float32(x: Any, name: str, shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """x as a C-contiguous float32 array.

    float16 widens exactly (S2.1). Wider floats and integers are accepted only where every element
    is exactly an fp32 number: kvq computes in fp32, and rounding the caller's data here would hide
    a difference from what the caller meant. NaN and infinities pass through: the C library rejects
    them with its own status (KVQ_ERR_NONFINITE_INPUT) and message.
    """
    a = as_numpy(x)
    if a.dtype == np.float32 or a.dtype == np.float16:
        out = np.ascontiguousarray(a, dtype=np.float32)
    elif a.dtype.kind in "fiub":
        out = np.ascontiguousarray(a, dtype=np.float32)
        with np.errstate(invalid="ignore", over="ignore"):
            back = out.astype(a.dtype) if a.dtype.kind == "f" else out.astype(np.float64)
            want = a if a.dtype.kind == "f" else a.astype(np.float64)
            same = (back == want) | (np.isnan(want) if a.dtype.kind == "f" else False)
        if not np.all(same):
            i = int(np.flatnonzero(~np.asarray(same).ravel())[0])
            raise ValueError(f"{name}: element {i} = {want.ravel()[i]!r} ({a.dtype}) is not exactly an fp32 "
                             f"number; pass float32 (kvq does not round inputs for you)")
    else:
        raise TypeError(f"{name}: dtype {a.dtype} is not a real number type")
    if shape is not None:
        check_shape(out, name, shape)
    return out


def integers(x: Any, name: str, dtype: Any, shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """x as a C-contiguous integer array of dtype, refusing values that do not fit."""
    a = as_numpy(x)
    if a.dtype.kind not in "iub":
        if a.dtype.kind == "f" and a.size and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            pass
        elif a.size:
            raise TypeError(f"{name}: dtype {a.dtype} is not an integer type")
    info = np.iinfo(dtype)
    if a.size and (a.min() < info.min or a.max() > info.max):
        raise ValueError(f"{name}: values must lie in [{info.min}, {info.max}] ({np.dtype(dtype).name})")
    out = np.ascontiguousarray(a, dtype=dtype)
    if shape is not None:
        check_shape(out, name, shape)
    return out


def check_shape(a: np.ndarray, name: str, shape: Sequence[int]) -> None:
    """Raises ValueError unless a.shape == shape (-1 matches any length)."""
    if a.ndim != len(shape) or any(s != -1 and s != t for s, t in zip(shape, a.shape)):
        want = "[" + ", ".join("*" if s == -1 else str(s) for s in shape) + "]"
        raise ValueError(f"{name}: shape {list(a.shape)} is not {want}")


def ptr(a: Optional[np.ndarray], ctype: Any) -> Any:
    """A ctypes pointer to a's first element (None for None)."""
    if a is None:
        return None
    return a.ctypes.data_as(C.POINTER(ctype))


def copy_from(pointer: Any, count: int, dtype: Any, shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """A numpy copy of count elements at a C pointer (an empty array for a NULL pointer or count 0)."""
    dtype = np.dtype(dtype)
    if count == 0 or not pointer:
        out = np.zeros(0, dtype=dtype)
    else:
        out = np.empty(count, dtype=dtype)
        C.memmove(out.ctypes.data, pointer, count * dtype.itemsize)
    return out.reshape(shape) if shape is not None else out


def copy_into(pointer: Any, a: np.ndarray) -> None:
    """Copies a's bytes to a C buffer that holds at least a.nbytes."""
    if a.nbytes:
        C.memmove(pointer, a.ctypes.data, a.nbytes)
