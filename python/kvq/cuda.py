"""kvq's CUDA device API (``kvq/kvq_cuda.h``, docs/DEVICE-API.md) for PyTorch: the quantized KV
cache of one model layer on the GPU, appended from CUDA tensors and attended into CUDA tensors::

    import torch, kvq, kvq.cuda
    cache = kvq.cuda.LayerCache(head_dim=128, n_kv_heads=8, n_q_heads=32, max_seqs=4, max_tokens=8192,
                                keys=kvq.HeadConfig(role="keys", key_mode="online", group_size=128, outlier_ppm=0),
                                values=kvq.HeadConfig(role="values", outlier_ppm=0))
    cache.append(k, v)    # [batch, n_kv_heads, tokens, head_dim] fp16/bf16/fp32 CUDA tensors, before RoPE
    out = cache.attend(q) # [batch, n_q_heads, head_dim] before RoPE -> [batch, n_q_heads, head_dim]

Tensors go to the library as pointers and strides (``tensor.data_ptr()``) with the current CUDA
stream: nothing is copied and nothing waits for the GPU. The cache's device memory is one uint8
tensor of ``cache.sizes.total_bytes`` that the cache owns. Results are the C library's: the same
bytes as the validation backend's cache, attention in the configured precision profile (S12.4).

PyTorch is imported when a LayerCache is made, never with the package. The library is
``libkvq_cuda.so`` of a CUDA build of kvq (backends/cuda/CMakeLists.txt), found at
``$KVQ_CUDA_LIBRARY`` or next to this file.
"""
from __future__ import annotations

import ctypes as C
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from . import _lib as L
from . import errors
from .core import HeadConfig, Rope

__all__ = ["LayerCache", "LayerSizes", "load_library", "rows_strides", "query_strides"]

_LIBRARY_NAME = "libkvq_cuda.so"
_API_VERSION = 1
CHECKED = 1  # KVQ_CUDA_CHECKED


# ---- the C structs (kvq/kvq_cuda.h) -------------------------------------------------------------
class _LayerConfig(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("head_dim", C.c_uint32), ("n_kv_heads", C.c_uint32),
                ("n_q_heads", C.c_uint32), ("max_seqs", C.c_uint32), ("max_tokens", C.c_uint32),
                ("max_append_tokens", C.c_uint32), ("kv_dtype", C.c_int),
                ("key_config", C.POINTER(L.HeadConfig)), ("value_config", C.POINTER(L.HeadConfig)),
                ("key_ranges", C.POINTER(L.ChannelRange)), ("n_key_ranges", C.c_uint32),
                ("key_outliers_per_token", C.c_uint32), ("rope", L.Rope), ("attention_profile", C.c_int32)]


class _LayerSizes(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("total_bytes", C.c_size_t), ("cache_bytes", C.c_size_t),
                ("scratch_bytes", C.c_size_t), ("sequence_bytes", C.c_size_t), ("host_bytes", C.c_size_t)]


class _Rows(C.Structure):
    _fields_ = [("data", C.c_void_p), ("dtype", C.c_int), ("seq_stride", C.c_int64),
                ("head_stride", C.c_int64), ("token_stride", C.c_int64)]


class _OutRows(C.Structure):
    _fields_ = [("data", C.c_void_p), ("dtype", C.c_int), ("seq_stride", C.c_int64), ("head_stride", C.c_int64)]


class _AppendArgs(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("flags", C.c_uint32), ("n_seqs", C.c_uint32),
                ("seq_ids", C.POINTER(C.c_uint32)), ("n_new", C.POINTER(C.c_uint32)),
                ("modality", C.POINTER(C.POINTER(C.c_uint8))), ("keys", _Rows), ("values", _Rows)]


class _AttendArgs(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("flags", C.c_uint32), ("n_seqs", C.c_uint32),
                ("seq_ids", C.POINTER(C.c_uint32)), ("q", _Rows), ("out", _OutRows)]


_STRUCTS = {"kvq_cuda_layer_config": _LayerConfig, "kvq_cuda_layer_sizes": _LayerSizes,
            "kvq_cuda_rows": _Rows, "kvq_cuda_out_rows": _OutRows, "kvq_cuda_append_args": _AppendArgs,
            "kvq_cuda_attend_args": _AttendArgs, "kvq_head_config": L.HeadConfig}

_P, _st = C.POINTER, C.c_int
_FUNCTIONS = {
    "kvq_cuda_api_version": (C.c_uint, []),
    "kvq_cuda_struct_size": (C.c_size_t, [C.c_char_p]),
    "kvq_cuda_last_error": (C.c_char_p, []),
    "kvq_cuda_layer_size": (_st, [_P(_LayerConfig), _P(_LayerSizes)]),
    "kvq_cuda_layer_create": (_st, [_P(_LayerConfig), C.c_void_p, C.c_size_t, C.c_void_p, _P(C.c_void_p)]),
    "kvq_cuda_layer_destroy": (None, [C.c_void_p]),
    "kvq_cuda_layer_append": (_st, [C.c_void_p, _P(_AppendArgs), C.c_void_p]),
    "kvq_cuda_layer_attend": (_st, [C.c_void_p, _P(_AttendArgs), C.c_void_p]),
    "kvq_cuda_layer_reset": (_st, [C.c_void_p, C.c_uint32, C.c_void_p]),
    "kvq_cuda_layer_length": (_st, [C.c_void_p, C.c_uint32, _P(C.c_uint32)]),
    "kvq_cuda_layer_status": (_st, [C.c_void_p, C.c_void_p]),
    "kvq_cuda_layer_move": (_st, [C.c_void_p, C.c_void_p, C.c_size_t]),
    "kvq_cuda_layer_set_work_space": (_st, [C.c_void_p, C.c_void_p, C.c_size_t]),
    "kvq_cuda_layer_read": (_st, [C.c_void_p, C.c_uint32, C.c_uint32, C.c_int, C.c_void_p,
                                  _P(_P(L.QTensor))]),
    "kvq_qtensor_free": (None, [_P(L.QTensor)]),
}

_library: Optional[C.CDLL] = None


def load_library(path: Optional[str] = None) -> C.CDLL:
    """libkvq_cuda: ``path``, else ``$KVQ_CUDA_LIBRARY``, else next to this file; checked once against
    the declarations above (API version and every struct's size)."""
    global _library
    if _library is not None and path is None:
        return _library
    where = Path(path or os.environ.get("KVQ_CUDA_LIBRARY") or Path(__file__).resolve().parent / _LIBRARY_NAME)
    if not where.exists():
        raise ImportError(f"kvq.cuda: {where} not found: build kvq with CUDA (cmake -DKVQ_ENABLE_CUDA=ON, target "
                          f"kvq_cuda) and point KVQ_CUDA_LIBRARY at build/backends/cuda/{_LIBRARY_NAME}")
    lib = C.CDLL(str(where))
    for name, (restype, argtypes) in _FUNCTIONS.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    if lib.kvq_cuda_api_version() != _API_VERSION:
        raise ImportError(f"kvq.cuda: {where} has device API version {lib.kvq_cuda_api_version()}, this binding "
                          f"version {_API_VERSION}")
    for name, cls in _STRUCTS.items():
        size = lib.kvq_cuda_struct_size(name.encode())
        if size != C.sizeof(cls):
            raise ImportError(f"kvq.cuda: sizeof({name}) is {size} in {where}, {C.sizeof(cls)} here")
    _library = lib
    return lib


def _call(lib: C.CDLL, name: str, *args: Any) -> None:
    status = getattr(lib, name)(*args)
    if status != 0:
        raise errors.from_status(status, lib.kvq_cuda_last_error().decode("utf-8", "replace"))


# ---- strides (plain Python: the shapes and strides of torch tensors) -----------------------------
def rows_strides(shape: Sequence[int], strides: Sequence[int], n_heads: int, head_dim: int, name: str,
                 layout: str = "bhtd") -> tuple[int, int, int]:
    """(seq_stride, head_stride, token_stride) in elements of a 4-d tensor of rows, laid out
    [batch, heads, tokens, head_dim] ("bhtd", PyTorch's attention layout) or [batch, tokens, heads,
    head_dim] ("bthd", the projections' output before the transpose). Any strides but the last."""
    if len(shape) != 4:
        raise ValueError(f"{name}: a 4-d tensor [batch, heads, tokens, head_dim] is needed, not {len(shape)}-d "
                         f"{tuple(shape)}")
    if layout not in ("bhtd", "bthd"):
        raise ValueError(f"layout {layout!r} is not 'bhtd' or 'bthd'")
    b, h, t = (0, 1, 2) if layout == "bhtd" else (0, 2, 1)
    if shape[h] != n_heads or shape[3] != head_dim:
        raise ValueError(f"{name}: shape {tuple(shape)} ({layout}) has {shape[h]} heads of {shape[3]} channels; "
                         f"the cache has {n_heads} of {head_dim}")
    if strides[3] != 1 and head_dim > 1:
        raise ValueError(f"{name}: its last dimension must be contiguous (stride {strides[3]})")
    return int(strides[b]), int(strides[h]), int(strides[t])


def query_strides(shape: Sequence[int], strides: Sequence[int], n_heads: int, head_dim: int,
                  name: str) -> tuple[int, int]:
    """(seq_stride, head_stride) of queries or outputs [batch, heads, head_dim] (or [batch, heads, 1,
    head_dim], one decode token)."""
    if len(shape) == 4 and shape[2] == 1:
        shape, strides = (shape[0], shape[1], shape[3]), (strides[0], strides[1], strides[3])
    if len(shape) != 3:
        raise ValueError(f"{name}: [batch, heads, head_dim] (or [batch, heads, 1, head_dim]) is needed, not "
                         f"{tuple(shape)}")
    if shape[1] != n_heads or shape[2] != head_dim:
        raise ValueError(f"{name}: shape {tuple(shape)} has {shape[1]} heads of {shape[2]} channels; the cache has "
                         f"{n_heads} of {head_dim}")
    if strides[2] != 1 and head_dim > 1:
        raise ValueError(f"{name}: its last dimension must be contiguous (stride {strides[2]})")
    return int(strides[0]), int(strides[1])


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise ImportError("kvq.cuda.LayerCache needs PyTorch with CUDA (pip install torch)") from e
    return torch


def _dtype_code(torch: Any, dtype: Any, name: str) -> int:
    codes = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    if dtype not in codes:
        raise ValueError(f"{name}: dtype {dtype} is not torch.float16, torch.bfloat16 or torch.float32")
    return codes[dtype]


@dataclass
class LayerSizes:
    """kvq_cuda_layer_sizes: device bytes (total = cache + scratch), one sequence slot's, host bytes."""
    total_bytes: int
    cache_bytes: int
    scratch_bytes: int
    sequence_bytes: int
    host_bytes: int


_PROFILES = {"fp32": 0, "fp16": 1, "bf16": 2, "default": -1}


class LayerCache:
    """One layer's quantized KV cache for up to ``max_seqs`` sequences of ``max_tokens`` tokens.

    ``keys`` / ``values``: :class:`kvq.HeadConfig` for every KV head (S4; their policies must agree,
    S15.1). ``key_ranges``: calibrated keys, ``[n_kv_heads, head_dim, 2]`` (lo, hi).
    ``profile``: "fp16" (the tensor-core kernel where it fits) or "fp32" (S12.4). ``dtype``: of the
    keys and values given to :meth:`append`. ``max_append_tokens``: new tokens of one append, all its
    sequences together (default max_seqs * min(max_tokens, 2048)).
    """

    def __init__(self, *, head_dim: int, n_kv_heads: int, n_q_heads: int, max_seqs: int, max_tokens: int,
                 keys: HeadConfig, values: HeadConfig, max_append_tokens: Optional[int] = None,
                 key_ranges: Any = None, key_outliers_per_token: int = 0, rope: Optional[Rope] = None,
                 profile: str = "fp16", dtype: Any = "float16", device: Any = None,
                 library: Optional[str] = None) -> None:
        self._layer = C.c_void_p()
        self._memory = None
        self._work = None
        if profile not in _PROFILES:
            raise ValueError(f"profile {profile!r} is not one of {', '.join(_PROFILES)}")
        torch = _torch()
        self._torch = torch
        self.device = torch.device(device if device is not None else "cuda")
        if self.device.type != "cuda":
            raise ValueError(f"device {self.device} is not a CUDA device: the cache lives in GPU memory")
        if self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self._lib = load_library(library)
        self.head_dim, self.n_kv_heads, self.n_q_heads = head_dim, n_kv_heads, n_q_heads
        self.max_seqs, self.max_tokens = max_seqs, max_tokens
        self.dtype_code = _dtype_code(torch, dtype, "dtype")
        if max_append_tokens is None:
            max_append_tokens = max_seqs * min(max_tokens, 2048)
        self._keep: list[Any] = []
        kc, keep_k = keys._to_c()
        vc, keep_v = values._to_c()
        self._configs = (kc, vc)
        self._keep += [keep_k, keep_v]
        config = _LayerConfig(struct_size=C.sizeof(_LayerConfig), head_dim=head_dim, n_kv_heads=n_kv_heads,
                              n_q_heads=n_q_heads, max_seqs=max_seqs, max_tokens=max_tokens,
                              max_append_tokens=max_append_tokens, kv_dtype=self.dtype_code,
                              key_config=C.pointer(kc), value_config=C.pointer(vc),
                              key_outliers_per_token=key_outliers_per_token,
                              rope=(rope or Rope())._to_c(), attention_profile=_PROFILES[profile])
        if key_ranges is not None:
            import numpy as np
            r = np.ascontiguousarray(np.asarray(key_ranges, dtype=np.float32).reshape(-1, 2))
            self._keep.append(r)
            config.key_ranges = r.ctypes.data_as(C.POINTER(L.ChannelRange))
            config.n_key_ranges = r.shape[0]
        sizes = _LayerSizes(struct_size=C.sizeof(_LayerSizes))
        _call(self._lib, "kvq_cuda_layer_size", C.byref(config), C.byref(sizes))
        self.sizes = LayerSizes(sizes.total_bytes, sizes.cache_bytes, sizes.scratch_bytes, sizes.sequence_bytes,
                                sizes.host_bytes)
        with torch.cuda.device(self.device):
            self._memory = torch.empty(sizes.total_bytes, dtype=torch.uint8, device=self.device)
            _call(self._lib, "kvq_cuda_layer_create", C.byref(config), C.c_void_p(self._memory.data_ptr()),
                  sizes.total_bytes, self._stream(), C.byref(self._layer))

    # -- helpers ---------------------------------------------------------------------------------
    def _stream(self) -> C.c_void_p:
        return C.c_void_p(self._torch.cuda.current_stream(self.device).cuda_stream)

    def _check_tensor(self, t: Any, name: str) -> None:
        if not isinstance(t, self._torch.Tensor):
            raise TypeError(f"{name}: a torch.Tensor is needed, not {type(t).__name__}")
        if t.device != self.device:
            raise ValueError(f"{name}: on {t.device}, the cache is on {self.device}")

    def _seq_ids(self, seq_ids: Optional[Sequence[int]], batch: int) -> Any:
        ids = list(range(batch)) if seq_ids is None else [int(s) for s in seq_ids]
        if len(ids) != batch:
            raise ValueError(f"seq_ids: {len(ids)} sequence ids for a batch of {batch}")
        return (C.c_uint32 * max(len(ids), 1))(*ids)

    # -- the API ---------------------------------------------------------------------------------
    def append(self, keys: Any, values: Any, seq_ids: Optional[Sequence[int]] = None,
               modality: Optional[Sequence[Any]] = None, lengths: Optional[Sequence[int]] = None,
               layout: str = "bhtd", checked: bool = False) -> None:
        """S15.2: append ``keys`` and ``values`` ([batch, n_kv_heads, tokens, head_dim], or layout
        "bthd") to sequences ``seq_ids`` (default 0 .. batch - 1). ``lengths[i]``: tokens of row i
        (default all); ``modality[i]``: its S10.1 modality bytes (default image, S10.1)."""
        for t, name in ((keys, "keys"), (values, "values")):
            self._check_tensor(t, name)
            if _dtype_code(self._torch, t.dtype, name) != self.dtype_code:
                raise ValueError(f"{name}: dtype {t.dtype}, but the cache was made for another (dtype=)")
        ks = rows_strides(keys.shape, keys.stride(), self.n_kv_heads, self.head_dim, "keys", layout)
        vs = rows_strides(values.shape, values.stride(), self.n_kv_heads, self.head_dim, "values", layout)
        batch, tokens = keys.shape[0], keys.shape[2 if layout == "bhtd" else 1]
        if tuple(values.shape) != tuple(keys.shape):
            raise ValueError(f"values: shape {tuple(values.shape)}, keys {tuple(keys.shape)}")
        n_new = [tokens] * batch if lengths is None else [int(n) for n in lengths]
        if len(n_new) != batch or any(n > tokens for n in n_new):
            raise ValueError(f"lengths: {n_new} for a batch of {batch} rows of {tokens} tokens")
        args = _AppendArgs(struct_size=C.sizeof(_AppendArgs), flags=CHECKED if checked else 0, n_seqs=batch)
        args.seq_ids = self._seq_ids(seq_ids, batch)
        args.n_new = (C.c_uint32 * max(batch, 1))(*n_new)
        keep = []
        if modality is not None:
            if len(modality) != batch:
                raise ValueError(f"modality: {len(modality)} entries for a batch of {batch}")
            table = (C.POINTER(C.c_uint8) * batch)()
            for i, m in enumerate(modality):
                if m is not None:
                    raw = bytes(bytearray(m.tolist() if hasattr(m, "tolist") else m))
                    buf = (C.c_uint8 * max(len(raw), 1)).from_buffer_copy(raw or b"\0")
                    keep.append(buf)
                    table[i] = C.cast(buf, C.POINTER(C.c_uint8))
            args.modality = table
        args.keys = _Rows(keys.data_ptr(), self.dtype_code, *ks)
        args.values = _Rows(values.data_ptr(), self.dtype_code, *vs)
        _call(self._lib, "kvq_cuda_layer_append", self._layer, C.byref(args), self._stream())

    def attend(self, q: Any, seq_ids: Optional[Sequence[int]] = None, out: Any = None,
               checked: bool = False) -> Any:
        """S11: decode attention of ``q`` ([batch, n_q_heads, head_dim], before RoPE, at each
        sequence's newest token) into ``out`` (a new tensor like q when None); returns out."""
        self._check_tensor(q, "q")
        qs = query_strides(q.shape, q.stride(), self.n_q_heads, self.head_dim, "q")
        if out is None:
            out = self._torch.empty((q.shape[0], self.n_q_heads, self.head_dim), dtype=q.dtype, device=q.device)
        self._check_tensor(out, "out")
        os_ = query_strides(out.shape, out.stride(), self.n_q_heads, self.head_dim, "out")
        batch = q.shape[0]
        if out.shape[0] != batch:
            raise ValueError(f"out: {out.shape[0]} rows for a batch of {batch}")
        args = _AttendArgs(struct_size=C.sizeof(_AttendArgs), flags=CHECKED if checked else 0, n_seqs=batch)
        args.seq_ids = self._seq_ids(seq_ids, batch)
        args.q = _Rows(q.data_ptr(), _dtype_code(self._torch, q.dtype, "q"), qs[0], qs[1], 0)
        args.out = _OutRows(out.data_ptr(), _dtype_code(self._torch, out.dtype, "out"), *os_)
        _call(self._lib, "kvq_cuda_layer_attend", self._layer, C.byref(args), self._stream())
        return out

    def reset(self, seq_id: int) -> None:
        """Empties a sequence slot (a new request)."""
        _call(self._lib, "kvq_cuda_layer_reset", self._layer, seq_id, self._stream())

    def length(self, seq_id: int) -> int:
        n = C.c_uint32()
        _call(self._lib, "kvq_cuda_layer_length", self._layer, seq_id, C.byref(n))
        return n.value

    def check(self) -> None:
        """Waits for the stream and raises the first error only the GPU could see (a non-finite
        input, a query outside the fp16 profile's domain, ...), if any since the last check."""
        _call(self._lib, "kvq_cuda_layer_status", self._layer, self._stream())

    def read(self, seq_id: int, head: int, role: str = "keys") -> Any:
        """One head slice in the S4.4 layout, as a :class:`kvq.QTensor` (waits for the stream)."""
        from .core import QTensor, Role
        out = C.POINTER(L.QTensor)()
        _call(self._lib, "kvq_cuda_layer_read", self._layer, seq_id, head, int(Role.of(role)), self._stream(),
              C.byref(out))
        try:
            return QTensor._borrowed_copy(out)
        finally:
            self._lib.kvq_qtensor_free(out)

    def state_to_host(self) -> Any:
        """The layer's state (the first ``sizes.cache_bytes`` bytes of its memory: every sequence
        slot and the tables) copied into a new page-locked host tensor, enqueued on the current
        stream (synchronise before reading it). With :meth:`move`, the two halves of CPU-GPU
        offload."""
        torch = self._torch
        host = torch.empty(self.sizes.cache_bytes, dtype=torch.uint8, pin_memory=True)
        host.copy_(self._memory[: self.sizes.cache_bytes], non_blocking=True)
        return host

    def move(self, memory: Any) -> None:
        """Moves the layer to ``memory`` (kvq_cuda_layer_move): a contiguous uint8 CUDA tensor of at
        least ``sizes.total_bytes`` on the layer's device (``sizes.cache_bytes`` after
        :meth:`set_work_space`), into whose first ``sizes.cache_bytes`` the
        caller has copied the state (from :meth:`state_to_host`'s tensor or the old memory), ordered
        on the current stream before the next call. The layer keeps a reference to it and drops its
        reference to the old memory (which later calls no longer touch)."""
        torch = self._torch
        if not isinstance(memory, torch.Tensor) or memory.dtype != torch.uint8 or not memory.is_contiguous():
            raise ValueError("memory must be a contiguous uint8 torch.Tensor")
        if memory.device != self.device:
            raise ValueError(f"memory is on {memory.device}, the layer on {self.device}")
        _call(self._lib, "kvq_cuda_layer_move", self._layer, C.c_void_p(memory.data_ptr()),
              memory.numel())
        self._memory = memory

    def set_work_space(self, work: Any) -> None:
        """Gives the layer the work space of its append and attend calls (kvq_cuda_layer_set_work_space):
        a contiguous uint8 CUDA tensor of at least ``sizes.scratch_bytes`` on the layer's device, which
        the caches of a model's layers can share (it holds nothing between calls; their calls must be
        ordered, as on one stream). ``None`` returns the layer to the end of its own memory. The layer
        keeps a reference to the tensor."""
        torch = self._torch
        if work is None:
            _call(self._lib, "kvq_cuda_layer_set_work_space", self._layer, None, 0)
            self._work = None
            return
        if not isinstance(work, torch.Tensor) or work.dtype != torch.uint8 or not work.is_contiguous():
            raise ValueError("work must be a contiguous uint8 torch.Tensor")
        if work.device != self.device:
            raise ValueError(f"work is on {work.device}, the layer on {self.device}")
        _call(self._lib, "kvq_cuda_layer_set_work_space", self._layer, C.c_void_p(work.data_ptr()), work.numel())
        self._work = work

    def close(self) -> None:
        """Waits for the layer's work and frees it (also done when the object goes away)."""
        if getattr(self, "_layer", None):
            self._lib.kvq_cuda_layer_destroy(self._layer)
            self._layer = C.c_void_p()
        self._memory = None
        self._work = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass
