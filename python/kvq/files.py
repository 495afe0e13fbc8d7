"""kvq's three file formats (S16) as numpy objects, read and written by the C library.

* ``.kvt`` (S16.3): keys and values ``[n_layers][n_heads][n_tokens][head_dim]``, modality, positions;
* ``.kvc`` (S16.4): per-channel key ranges and per-layer NUQ codebooks;
* ``.kvqz`` (S16.5): one :class:`~kvq.QTensor` per layer, head and role.

Readers check the whole file (magic, version, sizes, SHA-256) and raise the C reader's exception;
writers validate first and leave no file behind on failure (S13.3).
"""
from __future__ import annotations

import ctypes as C
import os
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _arrays as A
from . import _lib as L
from ._lib import call, lib
from .core import Codebook, QTensor

__all__ = ["KvTensors", "Calibration", "read_kvt", "write_kvt", "read_kvc", "write_kvc", "read_kvqz",
           "write_kvqz"]

PathLike = Union[str, "os.PathLike[str]"]

_KEYS, _VALUES, _MODALITY, _POSITIONS = 0x1, 0x2, 0x4, 0x8
_DTYPES = {"fp16": 1, "fp32": 2}
_CAL_RANGES, _CAL_KEY_CB, _CAL_VALUE_CB = 0x1, 0x2, 0x4


def _path(path: PathLike) -> bytes:
    return os.fsencode(os.fspath(path))


@dataclass
class KvTensors:
    """The content of a .kvt file (S16.3). Arrays are fp32 (fp16 files are widened exactly)."""

    keys: Optional[np.ndarray]        # [n_layers][n_heads][n_tokens][head_dim] float32
    values: Optional[np.ndarray]
    modality: Optional[np.ndarray] = None   # [n_tokens] uint8 (kvq.Modality)
    positions: Optional[np.ndarray] = None  # [n_tokens] uint32
    dtype: str = "fp16"                     # how the file stores them: "fp16" or "fp32"
    spec_version: str = ""                  # recorded in the file (informative)

    @property
    def shape(self) -> Tuple[int, int, int, int]:
        a = self.keys if self.keys is not None else self.values
        assert a is not None
        return tuple(a.shape)  # type: ignore[return-value]


def read_kvt(path: PathLike) -> KvTensors:
    """Reads a .kvt file (kvq_kvfile_read)."""
    out = C.POINTER(L.KvFile)()
    call("kvq_kvfile_read", _path(path), C.byref(out))
    try:
        f = out.contents
        shape = (f.n_layers, f.n_heads, f.n_tokens, f.head_dim)
        count = int(np.prod(shape))
        keys = A.copy_from(f.keys, count, np.float32, shape) if f.flags & _KEYS else None
        values = A.copy_from(f.values, count, np.float32, shape) if f.flags & _VALUES else None
        modality = A.copy_from(f.modality, f.n_tokens, np.uint8) if f.flags & _MODALITY else None
        positions = A.copy_from(f.positions, f.n_tokens, np.uint32) if f.flags & _POSITIONS else None
        dtype = {v: k for k, v in _DTYPES.items()}.get(f.dtype, str(f.dtype))
        version = f"{f.spec_major}.{f.spec_minor}.{f.spec_patch}"
    finally:
        lib.kvq_kvfile_free(out)
    return KvTensors(keys, values, modality, positions, dtype, version)


def write_kvt(path: PathLike, keys: Any = None, values: Any = None, modality: Any = None, positions: Any = None,
              dtype: str = "fp16") -> None:
    """Writes a .kvt file (kvq_kvfile_write). keys/values: ``[n_layers][n_heads][n_tokens][head_dim]``
    (at least one). With dtype "fp16" every value must be an fp16 number (the C writer says which is not)."""
    if keys is None and values is None:
        raise ValueError("write_kvt: give keys, values or both")
    k = None if keys is None else A.float32(keys, "keys", (-1, -1, -1, -1))
    v = None if values is None else A.float32(values, "values", (-1, -1, -1, -1))
    if k is not None and v is not None and k.shape != v.shape:
        raise ValueError(f"keys {list(k.shape)} and values {list(v.shape)} differ in shape")
    shape = (k if k is not None else v).shape  # type: ignore[union-attr]
    if dtype not in _DTYPES:
        raise ValueError(f"dtype {dtype!r} is not 'fp16' or 'fp32'")
    flags = (_KEYS if k is not None else 0) | (_VALUES if v is not None else 0)
    mod = None if modality is None else A.integers(modality, "modality", np.uint8, (shape[2],))
    pos = None if positions is None else A.integers(positions, "positions", np.uint32, (shape[2],))
    flags |= (_MODALITY if mod is not None else 0) | (_POSITIONS if pos is not None else 0)
    out = C.POINTER(L.KvFile)()
    call("kvq_kvfile_create", *shape, _DTYPES[dtype], flags, C.byref(out))
    try:
        f = out.contents
        for pointer, array in ((f.keys, k), (f.values, v), (f.modality, mod), (f.positions, pos)):
            if array is not None:
                A.copy_into(pointer, array)
        call("kvq_kvfile_write", _path(path), out)
    finally:
        lib.kvq_kvfile_free(out)


@dataclass
class Calibration:
    """The content of a .kvc file (S16.4)."""

    key_ranges: Optional[np.ndarray]              # [n_layers][n_heads][head_dim][2] float32 (lo, hi)
    key_codebooks: Optional[List[Codebook]] = None    # one per layer
    value_codebooks: Optional[List[Codebook]] = None  # one per layer
    outlier_ppm: int = 10000
    shape: Tuple[int, int, int] = (0, 0, 0)       # (n_layers, n_heads, head_dim)


def read_kvc(path: PathLike) -> Calibration:
    """Reads a .kvc file (kvq_calibration_read)."""
    out = C.POINTER(L.Calibration)()
    call("kvq_calibration_read", _path(path), C.byref(out))
    try:
        c = out.contents
        shape = (c.n_layers, c.n_heads, c.head_dim)
        ranges = (A.copy_from(C.cast(c.key_range, C.POINTER(C.c_float)), int(np.prod(shape)) * 2, np.float32,
                              shape + (2,)) if c.flags & _CAL_RANGES else None)

        def books(pointer: Any, flag: int) -> Optional[List[Codebook]]:
            if not c.flags & flag:
                return None
            return [Codebook(L.Codebook.from_buffer_copy(pointer[i])) for i in range(c.n_layers)]

        result = Calibration(ranges, books(c.key_codebook, _CAL_KEY_CB), books(c.value_codebook, _CAL_VALUE_CB),
                             int(c.outlier_ppm), shape)
    finally:
        lib.kvq_calibration_free(out)
    return result


def write_kvc(path: PathLike, calibration: Calibration) -> None:
    """Writes a .kvc file (kvq_calibration_write); the C writer validates ranges and codebooks."""
    cal = calibration
    ranges = None if cal.key_ranges is None else A.float32(cal.key_ranges, "key_ranges", (-1, -1, -1, 2))
    if ranges is not None:
        shape = ranges.shape[:3]
    elif cal.shape != (0, 0, 0):
        shape = tuple(cal.shape)
    else:
        raise ValueError("write_kvc: key_ranges is None, so give shape (n_layers, n_heads, head_dim)")
    flags = ((_CAL_RANGES if ranges is not None else 0) | (_CAL_KEY_CB if cal.key_codebooks is not None else 0)
             | (_CAL_VALUE_CB if cal.value_codebooks is not None else 0))
    for name, books in (("key_codebooks", cal.key_codebooks), ("value_codebooks", cal.value_codebooks)):
        if books is not None and len(books) != shape[0]:
            raise ValueError(f"{name}: {len(books)} codebooks for {shape[0]} layers")
    out = C.POINTER(L.Calibration)()
    call("kvq_calibration_create", *shape, flags, cal.outlier_ppm, C.byref(out))
    try:
        c = out.contents
        if ranges is not None:
            A.copy_into(c.key_range, ranges)
        for pointer, books in ((c.key_codebook, cal.key_codebooks), (c.value_codebook, cal.value_codebooks)):
            for i, book in enumerate(books or []):
                pointer[i] = book._c
        call("kvq_calibration_write", _path(path), out)
    finally:
        lib.kvq_calibration_free(out)


def read_kvqz(path: PathLike) -> List[List[Tuple[QTensor, QTensor]]]:
    """Reads a .kvqz file (kvq_qfile_read): ``tensors[layer][head] == (keys, values)``."""
    out = C.POINTER(L.QFile)()
    call("kvq_qfile_read", _path(path), C.byref(out))
    try:
        f = out.contents
        result = []
        for layer in range(f.n_layers):
            row = []
            for head in range(f.n_heads):
                i = (layer * f.n_heads + head) * 2
                row.append((QTensor._borrowed_copy(f.tensor[i]), QTensor._borrowed_copy(f.tensor[i + 1])))
            result.append(row)
    finally:
        lib.kvq_qfile_free(out)
    return result


def write_kvqz(path: PathLike, tensors: Sequence[Sequence[Tuple[QTensor, QTensor]]]) -> None:
    """Writes a .kvqz file (kvq_qfile_write) from ``tensors[layer][head] == (keys, values)``; every
    tensor must have the same n_tokens and head_dim, and the C writer checks each (S16.5)."""
    n_layers = len(tensors)
    n_heads = len(tensors[0]) if n_layers else 0
    if n_layers == 0 or n_heads == 0 or any(len(row) != n_heads for row in tensors):
        raise ValueError("tensors: a non-empty [n_layers][n_heads] list of (keys, values) pairs is needed")
    first = tensors[0][0][0]
    out = C.POINTER(L.QFile)()
    call("kvq_qfile_create", n_layers, n_heads, first.head_dim, first.n_tokens, C.byref(out))
    copies = []
    try:
        f = out.contents
        for layer, row in enumerate(tensors):
            for head, pair in enumerate(row):
                for role in (0, 1):
                    # the qfile frees what it holds, so it gets its own copies
                    copy = pair[role].copy()
                    copies.append(copy)
                    f.tensor[(layer * n_heads + head) * 2 + role] = copy._ptr
                    copy._ptr = None
        call("kvq_qfile_write", _path(path), out)
    finally:
        lib.kvq_qfile_free(out)
