"""The ctypes binding over libkvq_python (python/CMakeLists.txt).

Every kvq semantic lives in C: this module only declares the C structs and functions, loads the
library, checks that the declarations match the compiled layout (kvq_python_layout), and turns a
failed status into a Python exception (kvq.errors). The rest of the package calls ``call()``.
"""
from __future__ import annotations

import ctypes as C
import os
from pathlib import Path
from typing import Any, Callable

from . import errors

_LIBRARY_NAME = "libkvq_python.so"


# ---- the C structs (kvq.h, kvq_io.h, tools/conform/conform.h and judge.h) ----------------------
class GroupParams(C.Structure):
    _fields_ = [("a", C.c_uint16), ("b", C.c_uint16)]


class Codebook(C.Structure):
    _fields_ = [("bits", C.c_uint32), ("signpost", C.c_float * 16), ("threshold", C.c_float * 15)]


class Quantizer(C.Structure):
    _fields_ = [("scheme", C.c_int), ("bits", C.c_uint32), ("codebook", C.POINTER(Codebook))]


class OutlierCount(C.Structure):
    _fields_ = [("total", C.c_uint32), ("upper", C.c_uint32), ("lower", C.c_uint32)]


class TokenPolicy(C.Structure):
    _fields_ = [("rule", C.c_int), ("budget_ppm", C.c_uint32), ("n_sinks", C.c_uint32),
                ("recent_window", C.c_uint32)]


class ChannelRange(C.Structure):
    _fields_ = [("lo", C.c_float), ("hi", C.c_float)]


class HeadConfig(C.Structure):
    _fields_ = [("role", C.c_int), ("quantizer", Quantizer), ("key_mode", C.c_int),
                ("group_size", C.c_uint32), ("outlier_ppm", C.c_uint32),
                ("channel_range", C.POINTER(ChannelRange)), ("policy", TokenPolicy),
                ("beyond_range", C.c_int),  # spec 1.2.0 (S7.3): outliers 0, clamp 1
                ("n_channel_range", C.c_uint32)]  # spec 1.3.0 (S4.2): entries of channel_range


class QTensor(C.Structure):
    _fields_ = [("role", C.c_int), ("key_mode", C.c_int), ("scheme", C.c_int), ("bits", C.c_uint32),
                ("n_tokens", C.c_uint32), ("head_dim", C.c_uint32), ("group_size", C.c_uint32),
                ("codebook", Codebook), ("precision", C.POINTER(C.c_uint8)),
                ("fp16_slot", C.POINTER(C.c_uint32)), ("n_fp16_rows", C.c_uint32),
                ("fp16_rows", C.POINTER(C.c_uint16)), ("row_bytes", C.c_size_t),
                ("codes", C.POINTER(C.c_uint8)), ("n_params", C.c_uint32),
                ("params", C.POINTER(GroupParams)), ("n_outliers", C.c_uint32),
                ("outlier_ptr", C.POINTER(C.c_uint32)), ("outlier_index", C.POINTER(C.c_uint32)),
                ("outlier_value", C.POINTER(C.c_uint16))]


class KmeansParams(C.Structure):
    _fields_ = [("bits", C.c_uint32), ("iterations", C.c_uint32), ("q_norm", C.c_uint32)]


class Rope(C.Structure):
    _fields_ = [("pairing", C.c_int), ("base", C.c_float)]


class Rng(C.Structure):
    _fields_ = [("state", C.c_uint64)]


class SynthParams(C.Structure):
    _fields_ = [("n_tokens", C.c_uint32), ("head_dim", C.c_uint32), ("seed", C.c_uint64),
                ("n_outlier_channels", C.c_uint32), ("tail_probability", C.c_float),
                ("sink_token", C.c_uint32), ("image_run", C.c_uint32), ("text_run", C.c_uint32)]


class KvFile(C.Structure):
    _fields_ = [("n_layers", C.c_uint32), ("n_heads", C.c_uint32), ("n_tokens", C.c_uint32),
                ("head_dim", C.c_uint32), ("dtype", C.c_int), ("flags", C.c_uint32),
                ("spec_major", C.c_uint16), ("spec_minor", C.c_uint16), ("spec_patch", C.c_uint16),
                ("keys", C.POINTER(C.c_float)), ("values", C.POINTER(C.c_float)),
                ("modality", C.POINTER(C.c_uint8)), ("positions", C.POINTER(C.c_uint32))]


class Calibration(C.Structure):
    _fields_ = [("n_layers", C.c_uint32), ("n_heads", C.c_uint32), ("head_dim", C.c_uint32),
                ("flags", C.c_uint32), ("outlier_ppm", C.c_uint32),
                ("key_range", C.POINTER(ChannelRange)), ("key_codebook", C.POINTER(Codebook)),
                ("value_codebook", C.POINTER(Codebook))]


class QFile(C.Structure):
    _fields_ = [("n_layers", C.c_uint32), ("n_heads", C.c_uint32), ("head_dim", C.c_uint32),
                ("n_tokens", C.c_uint32), ("tensor", C.POINTER(C.POINTER(QTensor)))]


class ConformDiag(C.Structure):
    _fields_ = [("field", C.c_char * 96), ("index", C.c_longlong), ("where", C.c_char * 128),
                ("got", C.c_char * 96), ("expected", C.c_char * 96), ("has_ulps", C.c_bool),
                ("ulps", C.c_longlong), ("detail", C.c_char * 1024)]


class QtLabels(C.Structure):
    _fields_ = [(name, C.c_char * 64) for name in
                ("header", "precision", "fp16_slot", "fp16_rows", "params", "codes", "outlier_ptr",
                 "outlier_index", "outlier_value", "dequantized")]


class QtJudgement(C.Structure):
    _fields_ = [("boundary_accepted", C.c_uint32), ("codes_differ", C.c_bool)]


class _LayoutEntry(C.Structure):
    _fields_ = [("type", C.c_char_p), ("field", C.c_char_p), ("offset", C.c_size_t), ("size", C.c_size_t)]


# The C name of each mirrored struct.
_MIRRORED = {
    "kvq_group_params": GroupParams, "kvq_codebook": Codebook, "kvq_quantizer": Quantizer,
    "kvq_outlier_count": OutlierCount, "kvq_token_policy": TokenPolicy,
    "kvq_channel_range": ChannelRange, "kvq_head_config": HeadConfig, "kvq_qtensor": QTensor,
    "kvq_kmeans_params": KmeansParams, "kvq_rope": Rope, "kvq_rng": Rng,
    "kvq_synth_params": SynthParams, "kvq_kvfile": KvFile, "kvq_calibration": Calibration,
    "kvq_qfile": QFile, "conform_diag": ConformDiag, "qt_labels": QtLabels,
    "qt_judgement": QtJudgement,
}

P = C.POINTER
_f32p, _u8p, _u16p, _u32p = P(C.c_float), P(C.c_uint8), P(C.c_uint16), P(C.c_uint32)
_st = C.c_int  # kvq_status

# name: (restype, argtypes)
_FUNCTIONS: dict[str, tuple[Any, list[Any]]] = {
    "kvq_status_name": (C.c_char_p, [C.c_int]),
    "kvq_last_error": (C.c_char_p, []),
    "kvq_fp16_from_fp32": (C.c_uint16, [C.c_float]),
    "kvq_fp16_round_down": (C.c_uint16, [C.c_float]),
    "kvq_fp16_round_up": (C.c_uint16, [C.c_float]),
    "kvq_fp32_from_fp16": (C.c_float, [C.c_uint16]),
    "kvq_quantizer_check": (_st, [P(Quantizer)]),
    "kvq_group_params_from_range": (GroupParams, [P(Quantizer), C.c_float, C.c_float]),
    "kvq_encode": (C.c_uint32, [P(Quantizer), GroupParams, C.c_float]),
    "kvq_decode": (C.c_float, [P(Quantizer), GroupParams, C.c_uint32]),
    "kvq_decision_threshold": (C.c_float, [P(Quantizer), GroupParams, C.c_uint32]),
    "kvq_packed_bytes": (C.c_size_t, [C.c_uint32, C.c_uint32]),
    "kvq_pack_codes": (None, [_u8p, C.c_uint32, C.c_uint32, _u8p]),
    "kvq_unpack_codes": (None, [_u8p, C.c_uint32, C.c_uint32, _u8p]),
    "kvq_check_head_dim": (_st, [C.c_uint32, C.c_uint32]),
    "kvq_codebook_normalfloat": (_st, [C.c_uint32, P(Codebook)]),
    "kvq_codebook_from_signposts": (_st, [C.c_uint32, _f32p, P(Codebook)]),
    "kvq_outlier_count_for": (OutlierCount, [C.c_uint32, C.c_uint32]),
    "kvq_select_outliers": (_st, [_f32p, C.c_uint32, C.c_size_t, _u8p, C.c_uint32, _u8p]),
    "kvq_token_policy_default": (TokenPolicy, []),
    "kvq_token_precision": (_st, [P(TokenPolicy), _u8p, C.c_uint32, C.c_uint32, C.c_uint32, _u8p]),
    "kvq_quantize_head": (_st, [P(HeadConfig), _f32p, C.c_uint32, C.c_uint32, _u8p, P(P(QTensor))]),
    "kvq_dequantize_head": (_st, [P(QTensor), _f32p]),
    "kvq_qtensor_free": (None, [P(QTensor)]),
    "kvq_qtensor_alloc": (_st, [P(QTensor), P(P(QTensor))]),
    "kvq_qtensor_copy": (_st, [P(QTensor), P(P(QTensor))]),
    "kvq_calibrate_channel_ranges": (_st, [_f32p, C.c_uint32, C.c_uint32, C.c_uint32, P(ChannelRange)]),
    "kvq_calibrate_codebook": (_st, [_f32p, _f32p, C.c_size_t, P(KmeansParams), P(Codebook)]),
    "kvq_calibration_samples": (_st, [P(HeadConfig), _f32p, _f32p, C.c_uint32, C.c_uint32, _u8p,
                                      _f32p, _f32p, P(C.c_size_t)]),
    "kvq_rope_angle": (None, [P(Rope), C.c_uint32, C.c_uint32, C.c_uint32, _f32p, _f32p]),
    "kvq_rope_apply": (_st, [P(Rope), C.c_uint32, C.c_uint32, _f32p, _f32p]),
    "kvq_attention_decode": (_st, [P(QTensor), P(QTensor), _u32p, P(Rope), _f32p, C.c_uint32,
                                   C.c_uint32, _f32p]),
    "kvq_code_accepted": (C.c_int, [P(Quantizer), GroupParams, C.c_float, C.c_uint32, C.c_uint32]),
    "kvq_attention_error_bound": (_st, [P(QTensor), P(QTensor), _u32p, P(Rope), _f32p, C.c_uint32,
                                        C.c_uint32, _f32p]),
    "kvq_attention_error_bound_profile": (_st, [P(QTensor), P(QTensor), _u32p, P(Rope), _f32p, C.c_uint32,
                                                C.c_uint32, C.c_int, _f32p]),
    "kvq_rng_seed": (None, [P(Rng), C.c_uint64]),
    "kvq_rng_next_u64": (C.c_uint64, [P(Rng)]),
    "kvq_rng_uniform": (C.c_float, [P(Rng)]),
    "kvq_rng_normal": (C.c_float, [P(Rng)]),
    "kvq_synth_kv": (_st, [P(SynthParams), _f32p, _f32p, _u8p]),
    "kvq_synth_kv_profile": (_st, [P(SynthParams), C.c_int, _f32p, _f32p, _u8p]),
    # kvq_io.h
    "kvq_kvfile_create": (_st, [C.c_uint32, C.c_uint32, C.c_uint32, C.c_uint32, C.c_int, C.c_uint32,
                                P(P(KvFile))]),
    "kvq_kvfile_free": (None, [P(KvFile)]),
    "kvq_kvfile_write": (_st, [C.c_char_p, P(KvFile)]),
    "kvq_kvfile_read": (_st, [C.c_char_p, P(P(KvFile))]),
    "kvq_calibration_create": (_st, [C.c_uint32, C.c_uint32, C.c_uint32, C.c_uint32, C.c_uint32,
                                     P(P(Calibration))]),
    "kvq_calibration_free": (None, [P(Calibration)]),
    "kvq_calibration_write": (_st, [C.c_char_p, P(Calibration)]),
    "kvq_calibration_read": (_st, [C.c_char_p, P(P(Calibration))]),
    "kvq_qfile_create": (_st, [C.c_uint32, C.c_uint32, C.c_uint32, C.c_uint32, P(P(QFile))]),
    "kvq_qfile_free": (None, [P(QFile)]),
    "kvq_qfile_write": (_st, [C.c_char_p, P(QFile)]),
    "kvq_qfile_read": (_st, [C.c_char_p, P(P(QFile))]),
    # tools/conform (the judges of `kvq conform`)
    "qt_labels_for": (None, [P(QtLabels), C.c_char_p]),
    "qt_labels_for_groups": (None, [P(QtLabels)]),
    "judge_qtensor": (C.c_bool, [P(QtLabels), P(QTensor), P(QTensor), _f32p, P(QtJudgement),
                                 P(ConformDiag)]),
    "judge_floats_exact": (C.c_bool, [C.c_char_p, _f32p, _f32p, C.c_size_t, C.c_uint32, C.c_char_p,
                                      C.c_char_p, P(ConformDiag)]),
    "judge_bytes_exact": (C.c_bool, [C.c_char_p, _u8p, _u8p, C.c_size_t, C.c_uint32, C.c_char_p,
                                     C.c_char_p, P(ConformDiag)]),
    "judge_bounded": (C.c_bool, [C.c_char_p, _f32p, _f32p, _f32p, C.c_size_t, C.c_uint32, C.c_char_p,
                                 C.c_char_p, P(C.c_double), P(ConformDiag)]),
    "diag_clear": (None, [P(ConformDiag)]),
    # python/src/kvq_python_layout.c
    "kvq_python_layout": (P(_LayoutEntry), [P(C.c_size_t)]),
    "kvq_python_status_count": (C.c_uint, []),
    "kvq_python_spec_version": (C.c_char_p, []),
}


def _library_path() -> Path:
    """The shared library next to this file, or $KVQ_PYTHON_LIBRARY (a build tree's)."""
    override = os.environ.get("KVQ_PYTHON_LIBRARY")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent / _LIBRARY_NAME


def _check_layout(lib: C.CDLL) -> None:
    """Refuses a library whose structs differ from the declarations above."""
    count = C.c_size_t()
    table = lib.kvq_python_layout(C.byref(count))
    seen = set()
    problems = []
    for i in range(count.value):
        entry = table[i]
        type_name = entry.type.decode()
        cls = _MIRRORED.get(type_name)
        if cls is None:
            problems.append(f"{type_name} is not mirrored")
            continue
        if entry.field is None:
            seen.add(type_name)
            if C.sizeof(cls) != entry.size:
                problems.append(f"sizeof({type_name}) is {entry.size} in C, {C.sizeof(cls)} in ctypes")
            continue
        field = entry.field.decode()
        descriptor = getattr(cls, field, None)
        if descriptor is None:
            problems.append(f"{type_name}.{field} is missing in ctypes")
        elif descriptor.offset != entry.offset or descriptor.size != entry.size:
            problems.append(f"{type_name}.{field}: offset/size {entry.offset}/{entry.size} in C, "
                            f"{descriptor.offset}/{descriptor.size} in ctypes")
    for type_name, cls in _MIRRORED.items():
        if type_name not in seen:
            problems.append(f"{type_name} is not in the library's layout table")
        n_c = sum(1 for i in range(count.value)
                  if table[i].type.decode() == type_name and table[i].field is not None)
        if n_c != len(cls._fields_):
            problems.append(f"{type_name} has {n_c} fields in C, {len(cls._fields_)} in ctypes")
    if problems:
        raise ImportError("kvq: the ctypes declarations do not match libkvq_python: " + "; ".join(problems))


def _load() -> C.CDLL:
    path = _library_path()
    if not path.exists():
        raise ImportError(f"kvq: {path} not found (install the package with `pip install .`)")
    lib = C.CDLL(str(path))
    for name, (restype, argtypes) in _FUNCTIONS.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    _check_layout(lib)
    return lib


lib = _load()
errors._install(lib)


def call(name: str, *args: Any) -> None:
    """Calls a kvq function that returns kvq_status; raises its exception on failure."""
    fn: Callable[..., int] = getattr(lib, name)
    status = fn(*args)
    if status != 0:
        raise errors.from_status(status, lib.kvq_last_error().decode("utf-8", "replace"))
