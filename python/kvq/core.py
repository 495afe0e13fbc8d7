"""The reference library from Python: quantizers, codebooks, head configurations, quantized
tensors, calibration, decode attention, the error bound and the deterministic generator.

Each function calls the C function of the same name (``kvq_*`` in ``ref/include/kvq/kvq.h``) and
cites the spec section that defines it; nothing here computes a kvq result in Python.
"""
from __future__ import annotations

import ctypes as C
import enum
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import _arrays as A
from ._lib import call, lib
from . import _lib as L

__all__ = [
    "Scheme", "Role", "KeyMode", "PolicyRule", "Precision", "Modality", "RopePairing",
    "Codebook", "Quantizer", "TokenPolicy", "HeadConfig", "Rope", "QTensor",
    "normalfloat", "quantize_head", "dequantize_head", "attention_decode", "attention_error_bound",
    "calibrate_channel_ranges", "calibrate_codebook", "calibration_samples", "select_outliers",
    "outlier_count", "token_precision", "pack_codes", "unpack_codes", "synth_kv",
    "fp16_from_fp32", "fp16_round_down", "fp16_round_up", "fp32_from_fp16", "rope_apply", "SynthProfile",
    "REALISTIC",
    "spec_version",
]


def spec_version() -> str:
    """The spec version the loaded library implements (S0), e.g. "1.3.0"."""
    return lib.kvq_python_spec_version().decode()


class _Named(enum.IntEnum):
    """An enum that also accepts its lower-case name ("nuq", "keys", ...)."""

    @classmethod
    def of(cls, value: Union[str, int, "_Named"]) -> "_Named":
        if isinstance(value, str):
            key = value.strip().lower().replace("-", "_")
            for member in cls:
                if member.name.lower() == key:
                    return member
            names = ", ".join(m.name.lower() for m in cls)
            raise ValueError(f"{value!r} is not one of: {names}")
        return cls(int(value))


class Scheme(_Named):
    """kvq_scheme (S3, S6)."""
    ASYM = 0
    SYM = 1
    NUQ = 2


class Role(_Named):
    """kvq_role (S4)."""
    KEYS = 0
    VALUES = 1


class KeyMode(_Named):
    """kvq_key_mode (S4.2, S4.3)."""
    CALIBRATED = 0
    ONLINE = 1


class PolicyRule(_Named):
    """kvq_policy_rule (S10)."""
    QUANTIZE_ALL = 0
    TEXT_CENTRIC = 1
    IMAGE_CENTRIC = 2


class Precision(_Named):
    """kvq_precision (S10.5): why a token is (not) stored in fp16."""
    QUANTIZED = 0
    SINK = 1
    POLICY = 2
    WINDOW = 3
    RESIDUAL = 4


class Modality(_Named):
    """kvq_modality (S10.1)."""
    TEXT = 0
    IMAGE = 1
    OTHER = 2


class RopePairing(_Named):
    """kvq_rope_pairing (S9)."""
    NONE = 0
    HALF = 1
    INTERLEAVED = 2


# ---- fp16 (S2) ------------------------------------------------------------------------------------
def _per_element(fn_name: str, x: Any, in_kind: str) -> np.ndarray:
    fn = getattr(lib, fn_name)
    if in_kind == "f32":
        a = A.float32(x, "x")
        out = np.fromiter((fn(float(v)) for v in a.ravel()), dtype=np.uint16, count=a.size)
    else:
        a = A.integers(x, "h", np.uint16)
        out = np.fromiter((fn(int(v)) for v in a.ravel()), dtype=np.float32, count=a.size)
    return out.reshape(a.shape)


def fp16_from_fp32(x: Any) -> np.ndarray:
    """S2.2: fp16 bits (uint16) of each fp32 element, round to nearest even."""
    return _per_element("kvq_fp16_from_fp32", x, "f32")


def fp16_round_down(x: Any) -> np.ndarray:
    """S2.5: bits of the largest fp16 <= x."""
    return _per_element("kvq_fp16_round_down", x, "f32")


def fp16_round_up(x: Any) -> np.ndarray:
    """S2.5: bits of the smallest fp16 >= x."""
    return _per_element("kvq_fp16_round_up", x, "f32")


def fp32_from_fp16(h: Any) -> np.ndarray:
    """S2.1: the exact fp32 value of fp16 bits."""
    return _per_element("kvq_fp32_from_fp16", h, "u16")


# ---- codebooks and quantizers (S3, S6) -------------------------------------------------------------
class Codebook:
    """A NUQ codebook (S6): 2^bits ascending signposts in [-1, 1] and the thresholds between them."""

    def __init__(self, c_codebook: L.Codebook) -> None:
        self._c = c_codebook

    @classmethod
    def from_signposts(cls, signposts: Any) -> "Codebook":
        """S6.2: checks the signposts (finite, ascending, within [-1, 1]) and computes thresholds."""
        s = A.float32(signposts, "signposts")
        if s.ndim != 1 or s.size not in (4, 8, 16):
            raise ValueError(f"signposts: {s.size} values; a codebook has 4, 8 or 16 (2, 3 or 4 bits)")
        bits = {4: 2, 8: 3, 16: 4}[s.size]
        out = L.Codebook()
        call("kvq_codebook_from_signposts", bits, A.ptr(s, C.c_float), C.byref(out))
        return cls(out)

    @property
    def bits(self) -> int:
        return int(self._c.bits)

    @property
    def signposts(self) -> np.ndarray:
        return np.array(self._c.signpost[: 1 << self.bits], dtype=np.float32)

    @property
    def thresholds(self) -> np.ndarray:
        return np.array(self._c.threshold[: (1 << self.bits) - 1], dtype=np.float32)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Codebook) and bytes(self._c) == bytes(other._c)

    def __repr__(self) -> str:
        return f"Codebook(bits={self.bits}, signposts={self.signposts.tolist()})"


def normalfloat(bits: int) -> Codebook:
    """S6.1: the NormalFloat codebook of 2, 3 or 4 bits."""
    out = L.Codebook()
    call("kvq_codebook_normalfloat", bits, C.byref(out))
    return Codebook(out)


@dataclass
class Quantizer:
    """How a group becomes codes (S3, S6): scheme, bits and, for NUQ, a codebook."""

    scheme: Union[Scheme, str] = Scheme.ASYM
    bits: int = 4
    codebook: Optional[Codebook] = None

    def _to_c(self) -> L.Quantizer:
        q = L.Quantizer()
        q.scheme = int(Scheme.of(self.scheme))
        q.bits = self.bits
        q.codebook = C.pointer(self.codebook._c) if self.codebook is not None else None
        return q

    def check(self) -> None:
        """kvq_quantizer_check: raises unless the quantizer is valid (S3.1, S6.2)."""
        q = self._to_c()
        call("kvq_quantizer_check", C.byref(q))


@dataclass
class TokenPolicy:
    """kvq_token_policy (S10): the fp16 budget rule, sinks (S8) and the recent window (S10.4)."""

    rule: Union[PolicyRule, str] = PolicyRule.TEXT_CENTRIC
    budget_ppm: int = 100000
    n_sinks: int = 1
    recent_window: int = 0

    def _to_c(self) -> L.TokenPolicy:
        return L.TokenPolicy(int(PolicyRule.of(self.rule)), self.budget_ppm, self.n_sinks, self.recent_window)


@dataclass
class HeadConfig:
    """kvq_head_config (S4): everything that decides how one head slice is quantized.

    ``group_size``: values, channels per group (0 = head_dim); online keys, tokens per block.
    ``channel_range``: calibrated keys, ``[head_dim, 2]`` (lo, hi) per channel (S4.2, S6.9); its length
    goes to the library as ``n_channel_range``, which refuses one of another head_dim (spec 1.3.0).
    ``beyond_range``: calibrated keys, what an element outside its channel's range becomes (S7.3):
    "outliers" (stored exactly, the default) or "clamp" (the range's end code).
    """

    role: Union[Role, str] = Role.VALUES
    quantizer: Quantizer = field(default_factory=Quantizer)
    key_mode: Union[KeyMode, str] = KeyMode.ONLINE
    group_size: int = 0
    outlier_ppm: int = 10000
    channel_range: Optional[Any] = None
    policy: TokenPolicy = field(default_factory=TokenPolicy)
    beyond_range: str = "outliers"

    def _to_c(self) -> tuple[L.HeadConfig, list[Any]]:
        """The C struct and the objects it points into (kept alive by the caller)."""
        keep: list[Any] = []
        cfg = L.HeadConfig()
        cfg.role = int(Role.of(self.role))
        cfg.quantizer = self.quantizer._to_c()
        keep.append(self.quantizer)
        cfg.key_mode = int(KeyMode.of(self.key_mode))
        cfg.group_size = self.group_size
        cfg.outlier_ppm = self.outlier_ppm
        if self.channel_range is not None:
            r = A.float32(self.channel_range, "channel_range", (-1, 2))
            keep.append(r)
            cfg.channel_range = r.ctypes.data_as(C.POINTER(L.ChannelRange))
            cfg.n_channel_range = r.shape[0]  # the library checks it against head_dim (S4.2)
        cfg.policy = self.policy._to_c()
        if self.beyond_range not in ("outliers", "clamp"):
            raise ValueError(f"beyond_range {self.beyond_range!r} is not 'outliers' or 'clamp' (S7.3)")
        cfg.beyond_range = 1 if self.beyond_range == "clamp" else 0
        return cfg, keep


@dataclass
class Rope:
    """kvq_rope (S9): the pairing ("half" = rotate-half, "interleaved" = GPT-J, "none") and base."""

    pairing: Union[RopePairing, str] = RopePairing.HALF
    base: float = 10000.0

    def _to_c(self) -> L.Rope:
        return L.Rope(int(RopePairing.of(self.pairing)), self.base)


# ---- quantized head slices (S4) --------------------------------------------------------------------
def _take(out_ptr: Any) -> "QTensor":
    return QTensor._own(out_ptr)


class QTensor:
    """A quantized head slice (kvq_qtensor, S4.4), owned by kvq and freed with the object.

    The array properties are numpy copies of the C arrays: changing them changes nothing in the
    tensor. Build one from a kernel's own arrays with :meth:`from_arrays`.
    """

    _ptr: Any

    def __init__(self) -> None:
        raise TypeError("QTensor is made by quantize_head, QTensor.from_arrays or a file reader")

    @classmethod
    def _own(cls, pointer: Any) -> "QTensor":
        self = object.__new__(cls)
        self._ptr = pointer
        return self

    @classmethod
    def _borrowed_copy(cls, pointer: Any) -> "QTensor":
        """A QTensor owning a deep copy of a tensor that someone else owns."""
        out = C.POINTER(L.QTensor)()
        call("kvq_qtensor_copy", pointer, C.byref(out))
        return cls._own(out)

    def __del__(self) -> None:
        ptr = getattr(self, "_ptr", None)
        if ptr:
            lib.kvq_qtensor_free(ptr)
            self._ptr = None

    @property
    def _s(self) -> L.QTensor:
        return self._ptr.contents

    # scalar fields
    role = property(lambda self: Role(self._s.role))
    key_mode = property(lambda self: KeyMode(self._s.key_mode))
    scheme = property(lambda self: Scheme(self._s.scheme))
    bits = property(lambda self: int(self._s.bits))
    n_tokens = property(lambda self: int(self._s.n_tokens))
    head_dim = property(lambda self: int(self._s.head_dim))
    group_size = property(lambda self: int(self._s.group_size))
    n_fp16_rows = property(lambda self: int(self._s.n_fp16_rows))
    row_bytes = property(lambda self: int(self._s.row_bytes))
    n_params = property(lambda self: int(self._s.n_params))
    n_outliers = property(lambda self: int(self._s.n_outliers))

    @property
    def codebook(self) -> Optional[Codebook]:
        cb = self._s.codebook
        return Codebook(L.Codebook.from_buffer_copy(cb)) if cb.bits else None

    @property
    def _ptr_length(self) -> int:
        return self.n_tokens + 1 if self.role == Role.VALUES else self.head_dim + 1

    # arrays (copies)
    @property
    def precision(self) -> np.ndarray:
        return A.copy_from(self._s.precision, self.n_tokens, np.uint8)

    @property
    def fp16_slot(self) -> np.ndarray:
        return A.copy_from(self._s.fp16_slot, self.n_tokens, np.uint32)

    @property
    def fp16_rows(self) -> np.ndarray:
        return A.copy_from(self._s.fp16_rows, self.n_fp16_rows * self.head_dim, np.uint16,
                           (self.n_fp16_rows, self.head_dim))

    @property
    def codes(self) -> np.ndarray:
        return A.copy_from(self._s.codes, self.n_tokens * self.row_bytes, np.uint8, (self.n_tokens, self.row_bytes))

    @property
    def params(self) -> np.ndarray:
        return A.copy_from(self._s.params, self.n_params * 2, np.uint16, (self.n_params, 2))

    @property
    def outlier_ptr(self) -> np.ndarray:
        return A.copy_from(self._s.outlier_ptr, self._ptr_length, np.uint32)

    @property
    def outlier_index(self) -> np.ndarray:
        return A.copy_from(self._s.outlier_index, self.n_outliers, np.uint32)

    @property
    def outlier_value(self) -> np.ndarray:
        return A.copy_from(self._s.outlier_value, self.n_outliers, np.uint16)

    def unpacked_codes(self) -> np.ndarray:
        """The codes as one byte per element, ``[n_tokens][head_dim]`` (S5.2)."""
        return unpack_codes(self.codes, self.head_dim, self.bits)

    def dequantize(self) -> np.ndarray:
        """S4.5: the exact fp32 values the tensor stands for, ``[n_tokens][head_dim]``."""
        return dequantize_head(self)

    def copy(self) -> "QTensor":
        return QTensor._borrowed_copy(self._ptr)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array field under its golden label suffix (S16.7): precision, params, ..."""
        return {name: getattr(self, name) for name in
                ("precision", "fp16_slot", "fp16_rows", "codes", "params", "outlier_ptr", "outlier_index",
                 "outlier_value")}

    @classmethod
    def from_arrays(cls, *, role: Union[Role, str], scheme: Union[Scheme, str], bits: int, n_tokens: int,
                    head_dim: int, precision: Any, params: Any, codes: Any, fp16_rows: Any = None,
                    outlier_ptr: Any = None, outlier_index: Any = None, outlier_value: Any = None,
                    key_mode: Union[KeyMode, str] = KeyMode.CALIBRATED, group_size: int = 0,
                    codebook: Optional[Codebook] = None, fp16_slot: Any = None) -> "QTensor":
        """A tensor from a kernel's arrays, laid out as S4.4 (and the golden files) say.

        ``codes`` are packed rows ``[n_tokens][head_dim*bits/8]``; ``params`` ``[n_params][2]`` fp16
        bits; ``fp16_rows`` ``[n_fp16_rows][head_dim]`` fp16 bits in token order; outliers as CSR by
        token (values) or CSC by channel (keys). ``fp16_slot`` defaults to the slots the precision
        bytes imply (rows in token order). Only the shapes are checked here; whether the tensor is
        the reference's is for :mod:`kvq.testing` to judge.
        """
        role_v = Role.of(role)
        prec = A.integers(precision, "precision", np.uint8, (n_tokens,))
        par = A.integers(params, "params", np.uint16).reshape(-1, 2) if np.size(params) else np.zeros((0, 2), np.uint16)
        rows = (A.integers(fp16_rows, "fp16_rows", np.uint16).reshape(-1, head_dim)
                if fp16_rows is not None and np.size(fp16_rows) else np.zeros((0, head_dim), np.uint16))
        cod = A.integers(codes, "codes", np.uint8)
        n_ptr = n_tokens + 1 if role_v == Role.VALUES else head_dim + 1
        optr = (A.integers(outlier_ptr, "outlier_ptr", np.uint32, (n_ptr,)) if outlier_ptr is not None
                else np.zeros(n_ptr, np.uint32))
        oidx = (A.integers(outlier_index, "outlier_index", np.uint32).ravel() if outlier_index is not None
                else np.zeros(0, np.uint32))
        oval = (A.integers(outlier_value, "outlier_value", np.uint16).ravel() if outlier_value is not None
                else np.zeros(0, np.uint16))
        if oidx.size != oval.size:
            raise ValueError(f"outlier_index has {oidx.size} entries, outlier_value {oval.size}")
        if fp16_slot is None:
            slot = np.full(n_tokens, 0xFFFFFFFF, np.uint32)
            fp16_tokens = np.flatnonzero(prec != int(Precision.QUANTIZED))
            slot[fp16_tokens] = np.arange(fp16_tokens.size, dtype=np.uint32)
        else:
            slot = A.integers(fp16_slot, "fp16_slot", np.uint32, (n_tokens,))
        header = L.QTensor()
        header.role = int(role_v)
        header.key_mode = int(KeyMode.of(key_mode))
        header.scheme = int(Scheme.of(scheme))
        header.bits = bits
        header.n_tokens = n_tokens
        header.head_dim = head_dim
        header.group_size = group_size
        if codebook is not None:
            header.codebook = codebook._c
        header.n_fp16_rows = rows.shape[0]
        header.row_bytes = head_dim * bits // 8
        header.n_params = par.shape[0]
        header.n_outliers = oidx.size
        if cod.size != n_tokens * header.row_bytes:
            raise ValueError(f"codes: {cod.size} bytes; {n_tokens} packed rows of {header.row_bytes} bytes "
                             f"are {n_tokens * header.row_bytes}")
        out = C.POINTER(L.QTensor)()
        call("kvq_qtensor_alloc", C.byref(header), C.byref(out))
        t = out.contents
        for pointer, array in ((t.precision, prec), (t.fp16_slot, slot), (t.fp16_rows, rows), (t.codes, cod),
                               (t.params, par), (t.outlier_ptr, optr), (t.outlier_index, oidx),
                               (t.outlier_value, oval)):
            A.copy_into(pointer, np.ascontiguousarray(array))
        return cls._own(out)

    def __repr__(self) -> str:
        return (f"QTensor({self.role.name.lower()}, {self.scheme.name.lower()} {self.bits}-bit, "
                f"{self.n_tokens} tokens x {self.head_dim} channels, {self.n_fp16_rows} fp16 rows, "
                f"{self.n_outliers} outliers)")


def _modality(modality: Any, n_tokens: int) -> Optional[np.ndarray]:
    if modality is None:
        return None
    return A.integers(modality, "modality", np.uint8, (n_tokens,))


def quantize_head(config: HeadConfig, x: Any, modality: Any = None) -> QTensor:
    """S4: quantize one head slice ``x[n_tokens][head_dim]`` (keys or values, as config says)."""
    a = A.float32(x, "x", (-1, -1))
    n_tokens, head_dim = a.shape
    mod = _modality(modality, n_tokens)
    cfg, keep = config._to_c()
    out = C.POINTER(L.QTensor)()
    call("kvq_quantize_head", C.byref(cfg), A.ptr(a, C.c_float), n_tokens, head_dim, A.ptr(mod, C.c_uint8),
         C.byref(out))
    del keep
    return _take(out)


def dequantize_head(qt: QTensor) -> np.ndarray:
    """S4.5: the exact fp32 values of a quantized head slice."""
    out = np.empty((qt.n_tokens, qt.head_dim), dtype=np.float32)
    call("kvq_dequantize_head", qt._ptr, A.ptr(out, C.c_float))
    return out


def _positions(positions: Any, n_tokens: int) -> np.ndarray:
    if positions is None:
        return np.arange(n_tokens, dtype=np.uint32)
    return A.integers(positions, "key_positions", np.uint32, (n_tokens,))


def _attention_args(keys: QTensor, values: QTensor, key_positions: Any, rope: Optional[Rope], q: Any):
    qa = A.float32(q, "q")
    if qa.ndim == 1:
        qa = qa.reshape(1, -1)
    A.check_shape(qa, "q", (-1, keys.head_dim))
    pos = _positions(key_positions, keys.n_tokens)
    r = (rope or Rope())._to_c()
    return qa, pos, r


def attention_decode(keys: QTensor, values: QTensor, q: Any, q_position: int, key_positions: Any = None,
                     rope: Optional[Rope] = None) -> np.ndarray:
    """S11: decode attention of ``q[n_q][head_dim]`` (pre-RoPE, GQA heads sharing this KV head) over
    the quantized cache; RoPE (S9) is applied to q and to the pre-RoPE keys. ``key_positions``
    defaults to 0, 1, 2, ... Returns ``[n_q][head_dim]`` fp32."""
    qa, pos, r = _attention_args(keys, values, key_positions, rope, q)
    out = np.empty_like(qa)
    call("kvq_attention_decode", keys._ptr, values._ptr, A.ptr(pos, C.c_uint32), C.byref(r), A.ptr(qa, C.c_float),
         qa.shape[0], q_position, A.ptr(out, C.c_float))
    return out


# S12.4: the precision profiles of decode attention, as kvq_attention_profile numbers them.
ATTENTION_PROFILES = {"fp32": 0, "fp16": 1, "bf16": 2}


def attention_error_bound(keys: QTensor, values: QTensor, q: Any, q_position: int, key_positions: Any = None,
                          rope: Optional[Rope] = None, profile: str = "fp32") -> np.ndarray:
    """S12.3, S12.4: the per-element bound ``|got - reference| <= bound`` an attention in the arithmetic of
    ``profile`` ("fp32": S12.3; "fp16", "bf16": 16-bit operands with fp32 accumulation) must meet."""
    if profile not in ATTENTION_PROFILES:
        raise ValueError(f"profile {profile!r} is not one of {', '.join(ATTENTION_PROFILES)} (S12.4)")
    qa, pos, r = _attention_args(keys, values, key_positions, rope, q)
    out = np.empty_like(qa)
    call("kvq_attention_error_bound_profile", keys._ptr, values._ptr, A.ptr(pos, C.c_uint32), C.byref(r),
         A.ptr(qa, C.c_float), qa.shape[0], q_position, ATTENTION_PROFILES[profile], A.ptr(out, C.c_float))
    return out


def rope_apply(rope: Rope, x: Any, position: int) -> np.ndarray:
    """S9.4: one vector rotated to ``position``."""
    a = A.float32(x, "x", (-1,))
    out = np.empty_like(a)
    r = rope._to_c()
    call("kvq_rope_apply", C.byref(r), a.size, position, A.ptr(a, C.c_float), A.ptr(out, C.c_float))
    return out


# ---- calibration (S6.6, S6.7, S6.9) ----------------------------------------------------------------
def calibrate_channel_ranges(x: Any, outlier_ppm: int = 10000) -> np.ndarray:
    """S6.9: per-channel key ranges ``[head_dim, 2]`` (lo, hi) from samples ``x[n_samples][head_dim]``."""
    a = A.float32(x, "x", (-1, -1))
    out = np.empty((a.shape[1], 2), dtype=np.float32)
    call("kvq_calibrate_channel_ranges", A.ptr(a, C.c_float), a.shape[0], a.shape[1], outlier_ppm,
         out.ctypes.data_as(C.POINTER(L.ChannelRange)))
    return out


def calibrate_codebook(z: Any, weights: Any = None, bits: int = 4, iterations: int = 25,
                       q_norm: bool = False) -> Codebook:
    """S6.6 (and S6.7 with q_norm): Fisher-weighted k-means over normalized samples z in [-1, 1]."""
    za = A.float32(z, "z").ravel()
    wa = None if weights is None else A.float32(weights, "weights").ravel()
    if wa is not None and wa.size != za.size:
        raise ValueError(f"weights: {wa.size} values for {za.size} samples")
    params = L.KmeansParams(bits, iterations, 1 if q_norm else 0)
    out = L.Codebook()
    call("kvq_calibrate_codebook", A.ptr(za, C.c_float), A.ptr(wa, C.c_float), za.size, C.byref(params),
         C.byref(out))
    return Codebook(out)


def calibration_samples(config: HeadConfig, x: Any, fisher: Any = None,
                        modality: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """S6.6: the normalized samples z and weights w a head slice gives codebook calibration."""
    a = A.float32(x, "x", (-1, -1))
    n_tokens, head_dim = a.shape
    f = None if fisher is None else A.float32(fisher, "fisher", (n_tokens, head_dim))
    mod = _modality(modality, n_tokens)
    z = np.empty(a.size, dtype=np.float32)
    w = np.empty(a.size, dtype=np.float32)
    n = C.c_size_t()
    cfg, keep = config._to_c()
    call("kvq_calibration_samples", C.byref(cfg), A.ptr(a, C.c_float), A.ptr(f, C.c_float), n_tokens, head_dim,
         A.ptr(mod, C.c_uint8), A.ptr(z, C.c_float), A.ptr(w, C.c_float), C.byref(n))
    del keep
    return z[: n.value].copy(), w[: n.value].copy()


# ---- outliers, policy, packing (S5, S7, S10) --------------------------------------------------------
def outlier_count(n: int, outlier_ppm: int) -> tuple[int, int, int]:
    """S7.1: (total, upper, lower) outliers of a group of n elements."""
    c = lib.kvq_outlier_count_for(n, outlier_ppm)
    return int(c.total), int(c.upper), int(c.lower)


def select_outliers(x: Any, outlier_ppm: int, eligible: Any = None) -> np.ndarray:
    """S7.2: 1 for each outlier of the vector x (0/1 uint8)."""
    a = A.float32(x, "x", (-1,))
    e = None if eligible is None else A.integers(eligible, "eligible", np.uint8, (a.size,))
    out = np.zeros(a.size, dtype=np.uint8)
    call("kvq_select_outliers", A.ptr(a, C.c_float), a.size, 1, A.ptr(e, C.c_uint8), outlier_ppm,
         A.ptr(out, C.c_uint8))
    return out


def token_precision(policy: TokenPolicy, modality: Any, n_before: int = 0, hp_before: int = 0) -> np.ndarray:
    """S10.3: the precision (kvq_precision) of each new token under the policy."""
    mod = A.integers(modality, "modality", np.uint8, (-1,))
    out = np.zeros(mod.size, dtype=np.uint8)
    p = policy._to_c()
    call("kvq_token_precision", C.byref(p), A.ptr(mod, C.c_uint8), n_before, hp_before, mod.size,
         A.ptr(out, C.c_uint8))
    return out


def pack_codes(codes: Any, bits: int) -> np.ndarray:
    """S5.2: rows of codes ``[rows][n]`` (one per byte) packed LSB-first, ``[rows][n*bits/8]``."""
    c = A.integers(codes, "codes", np.uint8)
    if c.ndim == 1:
        c = c.reshape(1, -1)
    rows, n = c.shape
    if (n * bits) % 8:
        raise ValueError(f"codes: {n} codes of {bits} bits are not whole bytes (S5.1)")
    if c.size and int(c.max()) >> bits:
        raise ValueError(f"codes: a value above {(1 << bits) - 1} is not a {bits}-bit code")
    nb = lib.kvq_packed_bytes(n, bits)
    out = np.zeros((rows, nb), dtype=np.uint8)
    for r in range(rows):
        lib.kvq_pack_codes(A.ptr(c[r], C.c_uint8), n, bits, A.ptr(out[r], C.c_uint8))
    return out


def unpack_codes(packed: Any, n: int, bits: int) -> np.ndarray:
    """S5.2: packed rows back to one code per byte, ``[rows][n]``."""
    p = A.integers(packed, "packed", np.uint8)
    if p.ndim == 1:
        p = p.reshape(1, -1)
    nb = lib.kvq_packed_bytes(n, bits)
    if (n * bits) % 8 or p.shape[1] != nb:
        raise ValueError(f"packed: rows of {p.shape[1]} bytes do not hold {n} codes of {bits} bits")
    out = np.zeros((p.shape[0], n), dtype=np.uint8)
    for r in range(p.shape[0]):
        lib.kvq_unpack_codes(A.ptr(np.ascontiguousarray(p[r]), C.c_uint8), n, bits, A.ptr(out[r], C.c_uint8))
    return out


# ---- the generator (S14) ----------------------------------------------------------------------------
class SynthProfile(_Named):
    """kvq_synth_profile (S14.3, S14.6)."""
    STRESS = 0
    REALISTIC = 1


def synth_kv(n_tokens: int, head_dim: int, seed: int, n_outlier_channels: int = 2, tail_probability: float = 0.01,
             sink_token: int = 1, image_run: int = 0, text_run: int = 0,
             profile: Union[SynthProfile, str] = SynthProfile.STRESS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """S14.3 / S14.6: synthetic (keys, values, modality) of one head; the same bits as ``kvq synth``.

    ``profile="stress"`` (the default, S14.3) exaggerates outliers for conformance;
    ``profile="realistic"`` (S14.6) follows a real model's statistics; use it with
    ``n_outlier_channels=10, tail_probability=8e-6``.
    """
    p = L.SynthParams(n_tokens, head_dim, seed, n_outlier_channels, tail_probability, sink_token, image_run,
                      text_run)
    keys = np.empty((n_tokens, head_dim), dtype=np.float32)
    values = np.empty_like(keys)
    modality = np.empty(n_tokens, dtype=np.uint8)
    call("kvq_synth_kv_profile", C.byref(p), int(SynthProfile.of(profile)), A.ptr(keys, C.c_float),
         A.ptr(values, C.c_float), A.ptr(modality, C.c_uint8))
    return keys, values, modality


# The suggested parameters of the realistic profile (S14.6).
REALISTIC = {"n_outlier_channels": 10, "tail_probability": 8e-6, "profile": "realistic"}
