"""Judge a kernel's outputs, in memory, with the tolerance classes of S12 and the diagnostics of
``kvq conform``.

The judging is the C code of the conformance runner (``tools/conform/judge_*.c``, compiled into the
package's library), so a difference is described exactly as ``kvq conform`` describes it: the field
(golden label), the element (flat index and place), got and expected with their bits, the distance
in ulps, and the rule it breaks.

* class E (S12.1): :func:`judge_exact`, and every field of a quantized tensor but its codes;
* class B (S12.2): codes one step from the reference's, accepted only within the decision boundary
  window of S12.2 (:func:`judge_qtensor`, given the inputs ``x``);
* class A (S12.3): attention within ``kvq_attention_error_bound`` (:func:`judge_attention`).

:func:`judge_case` judges the outputs of a golden case (:mod:`kvq.golden`) as
``kvq conform --check-outputs`` judges files; :func:`check_case` raises :class:`ConformanceError`
(an AssertionError, so pytest shows the diagnostic) instead of returning. numpy arrays and torch
tensors (on any device) are accepted wherever an array is.

Precision profiles (S12.4): :func:`judge_attention` takes ``profile``; "fp32" (the default) is S12.3's
bound for an fp32 implementation, "fp16" and "bf16" the bounds of 16-bit operands with fp32
accumulation (tensor-core kernels).
"""
from __future__ import annotations

import ctypes as C
from dataclasses import dataclass
from dataclasses import field as _field
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np

from . import _arrays as A
from . import _lib as L
from . import core as K
from ._lib import lib
from .golden import GoldenCase

__all__ = ["Judgement", "ConformanceError", "judge_exact", "judge_qtensor", "judge_attention", "judge_case",
           "check_case", "assert_exact", "assert_qtensor", "assert_attention", "PROFILES"]

# Precision profiles of the attention bound (S12.3, S12.4).
PROFILES = tuple(K.ATTENTION_PROFILES)

_TENSOR_FIELDS = ("precision", "params", "codes", "fp16_rows", "outlier_ptr", "outlier_index", "outlier_value")


@dataclass
class Judgement:
    """The verdict on one output: passed, or the first failure described as ``kvq conform`` does."""

    passed: bool
    case: str = ""
    field: str = ""
    index: int = -1
    where: str = ""
    got: str = ""
    expected: str = ""
    ulps: Optional[int] = None
    detail: str = ""
    boundary_accepted: int = 0         # codes != the reference's that S12.2 accepts
    worst_ratio: Optional[float] = None  # attention: max |got - reference| / bound
    notes: list = _field(default_factory=list)

    def __bool__(self) -> bool:
        return self.passed

    @classmethod
    def _from_diag(cls, d: L.ConformDiag, **kw: Any) -> "Judgement":
        return cls(False, field=d.field.decode(), index=int(d.index), where=d.where.decode(), got=d.got.decode(),
                   expected=d.expected.decode(), ulps=int(d.ulps) if d.has_ulps else None,
                   detail=d.detail.decode(), **kw)

    def report(self) -> str:
        """The diagnostic lines of ``kvq conform`` (field, element, got, expected, ulps, why)."""
        if self.passed:
            extra = []
            if self.boundary_accepted:
                extra.append(f"{self.boundary_accepted} boundary codes accepted (S12.2)")
            if self.worst_ratio is not None:
                extra.append(f"worst attention error {self.worst_ratio:.3g} of its bound")
            return f"PASS {self.case}" + (f" ({'; '.join(extra)})" if extra else "")
        lines = [f"FAIL {self.case}" if self.case else "FAIL", f"  field:    {self.field}"]
        if self.index >= 0 or self.where:
            element = f"index {self.index}" if self.index >= 0 else ""
            if self.where:
                element = f"{element} ({self.where})" if element else self.where
            lines.append(f"  element:  {element}")
        if self.got:
            lines.append(f"  got:      {self.got}")
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.ulps is not None:
            lines.append(f"  ulps:     {self.ulps}")
        if self.detail:
            lines.append(f"  why:      {self.detail}")
        if self.notes:
            lines.append(f"  notes:    {'; '.join(self.notes)}")
        return "\n".join(lines)

    __str__ = report

    def raise_if_failed(self) -> "Judgement":
        if not self.passed:
            raise ConformanceError(self)
        return self


class ConformanceError(AssertionError):
    """An output failed its tolerance class; ``judgement`` has the details."""

    def __init__(self, judgement: Judgement) -> None:
        super().__init__(judgement.report())
        self.judgement = judgement


def _b(text: Optional[str]) -> Optional[bytes]:
    return None if text is None else text.encode()


def _failure(field_name: str, got: str, expected: str, detail: str, index: int = -1, where: str = "") -> Judgement:
    return Judgement(False, field=field_name, index=index, where=where, got=got, expected=expected, detail=detail)


# ---- class E ------------------------------------------------------------------------------------
def judge_exact(got: Any, expected: Any, field: str = "output", row_length: int = 0, row_word: Optional[str] = None,
                col_word: Optional[str] = None) -> Judgement:
    """Class E (S12.1): bit-identical arrays. float32 and uint8 are judged by the runner's C code;
    other integer arrays element by element with the same wording."""
    e = A.as_numpy(expected)
    g = A.as_numpy(got)
    if g.shape != e.shape and g.size != e.size:
        return _failure(field, f"{g.size} elements (shape {list(g.shape)})", f"{e.size} elements (shape {list(e.shape)})",
                        "class E (S12.1): the output has another size than the reference's.")
    d = L.ConformDiag()
    if e.dtype == np.float32:
        ge = np.ascontiguousarray(g.reshape(e.shape), dtype=np.float32)
        if g.dtype != np.float32:
            return _failure(field, f"dtype {g.dtype}", "dtype float32", "class E (S12.1): fp32 bits are compared.")
        ok = lib.judge_floats_exact(field.encode(), A.ptr(e, C.c_float), A.ptr(ge, C.c_float), e.size, row_length,
                                    _b(row_word), _b(col_word), C.byref(d))
    elif e.dtype == np.uint8:
        ge = A.integers(g.reshape(e.shape), field, np.uint8)
        ok = lib.judge_bytes_exact(field.encode(), A.ptr(e, C.c_uint8), A.ptr(ge, C.c_uint8), e.size, row_length,
                                   _b(row_word), _b(col_word), C.byref(d))
    else:
        ge = g.reshape(e.shape)
        diff = np.flatnonzero(ge.ravel() != e.ravel())
        if diff.size == 0:
            return Judgement(True, field=field)
        i = int(diff[0])
        where = (f"{row_word} {i // row_length}, {col_word} {i % row_length}" if row_length and row_word
                 else f"element {i}")
        return _failure(field, f"{ge.ravel()[i]}", f"{e.ravel()[i]}",
                        f"class E (S12.1): must be identical; {diff.size} of {e.size} elements differ.", i, where)
    return Judgement(True, field=field) if ok else Judgement._from_diag(d)


# ---- classes E and B for a quantized tensor ------------------------------------------------------
def _strip(label: str, prefix: str) -> str:
    return label[len(prefix) + 1:] if prefix and label.startswith(prefix + "_") else label


def _tensor_from(got: Union[K.QTensor, Mapping[str, Any]], expected: K.QTensor, prefix: str) -> K.QTensor:
    """A QTensor from a kernel's arrays, shaped like the reference's header (S4.4)."""
    if isinstance(got, K.QTensor):
        return got
    arrays = {_strip(k, prefix): v for k, v in got.items()}
    missing = [f for f in ("precision", "params", "codes") if f not in arrays]
    if missing:
        raise KeyError(", ".join(f"{prefix}_{m}" if prefix else m for m in missing))
    return K.QTensor.from_arrays(
        role=expected.role, scheme=expected.scheme, bits=expected.bits, n_tokens=expected.n_tokens,
        head_dim=expected.head_dim, key_mode=expected.key_mode, group_size=expected.group_size,
        codebook=expected.codebook, **{k: A.as_numpy(arrays[k]) for k in _TENSOR_FIELDS if k in arrays})


def _labels(prefix: Optional[str]) -> L.QtLabels:
    labels = L.QtLabels()
    if prefix is None:
        lib.qt_labels_for_groups(C.byref(labels))
    else:
        lib.qt_labels_for(C.byref(labels), prefix.encode())
    return labels


def judge_qtensor(got: Union[K.QTensor, Mapping[str, Any]], expected: K.QTensor, x: Any = None,
                  prefix: str = "q", dequantized: Any = None) -> Judgement:
    """A kernel's quantized head slice against the reference's, field by field (S4.4): class E for
    the header, precision, fp16 rows, parameters and outliers; class B for the codes, which needs the
    inputs ``x[n_tokens][head_dim]`` (without x the codes must be identical).

    ``got`` is a :class:`~kvq.QTensor` or a mapping of arrays by golden label (``q_params``, ...,
    or the short names ``params``, ...). ``dequantized``, when given, must equal
    ``kvq_dequantize_head`` of the kernel's own tensor (exact given its codes, S4.5).
    ``prefix`` names the fields in diagnostics ("q", "k", "v", "final_k", ...).
    """
    try:
        tensor = _tensor_from(got, expected, prefix)
    except (KeyError, ValueError, TypeError) as exc:
        return _failure(f"{prefix}_header (tensor_info)" if prefix else "header", "arrays that do not form a tensor",
                        "the fields of S4.4 in the reference's shapes", f"{exc}")
    xa = None
    if x is not None:
        xa = A.float32(x, "x", (expected.n_tokens, expected.head_dim))
    labels = _labels(prefix)
    verdict = L.QtJudgement()
    d = L.ConformDiag()
    ok = lib.judge_qtensor(C.byref(labels), expected._ptr, tensor._ptr, A.ptr(xa, C.c_float), C.byref(verdict),
                           C.byref(d))
    accepted = int(verdict.boundary_accepted)
    if not ok:
        return Judgement._from_diag(d, boundary_accepted=accepted)
    if dequantized is not None:
        field_name = labels.dequantized.decode()
        try:
            own = tensor.dequantize()
        except Exception as exc:  # kvq rejects the tensor the arrays describe
            return _failure(labels.header.decode(), type(exc).__name__, "a consistent qtensor",
                            f"kvq_dequantize_head rejects the tensor (S4.4): {exc}.")
        j = judge_exact(A.as_numpy(dequantized).astype(np.float32, copy=False), own, field_name, expected.head_dim,
                        "token", "channel")
        if not j:
            j.boundary_accepted = accepted
            return j
    return Judgement(True, boundary_accepted=accepted)


# ---- class A ------------------------------------------------------------------------------------
def _bound(keys: K.QTensor, values: K.QTensor, q: Any, q_position: int, key_positions: Any, rope: K.Rope,
           profile: str) -> np.ndarray:
    if profile in PROFILES:
        return K.attention_error_bound(keys, values, q, q_position, key_positions, rope, profile)
    raise ValueError(f"profile {profile!r} is not known to this library; it knows {', '.join(PROFILES)}")


def _judge_bounded(field_name: str, got: np.ndarray, reference: np.ndarray, bound: np.ndarray,
                   row_length: int) -> Judgement:
    g = np.ascontiguousarray(A.as_numpy(got), dtype=np.float32)
    if g.size != reference.size:
        return _failure(field_name, f"{g.size} elements", f"{reference.size} elements",
                        "class A (S12.3): the output has another size than the reference's.")
    r = np.ascontiguousarray(reference, dtype=np.float32)
    b = np.ascontiguousarray(bound, dtype=np.float32)
    worst = C.c_double(0.0)
    d = L.ConformDiag()
    ok = lib.judge_bounded(field_name.encode(), A.ptr(r, C.c_float), A.ptr(g, C.c_float), A.ptr(b, C.c_float), r.size,
                           row_length, b"query head", b"channel", C.byref(worst), C.byref(d))
    if ok:
        return Judgement(True, field=field_name, worst_ratio=float(worst.value))
    return Judgement._from_diag(d, worst_ratio=float(worst.value))


def judge_attention(got: Any, keys: K.QTensor, values: K.QTensor, q: Any, q_position: int, key_positions: Any = None,
                    rope: Optional[K.Rope] = None, profile: str = "fp32", field: str = "out") -> Judgement:
    """Class A (S12.3): a kernel's decode attention ``got[n_q][head_dim]`` over the quantized cache
    (keys, values) must lie within the bound of ``profile`` of the reference's output, element by
    element. On failure the reference is also tried with the other RoPE pairings, as the runner does."""
    rope = rope or K.Rope()
    reference = K.attention_decode(keys, values, q, q_position, key_positions, rope)
    bound = _bound(keys, values, q, q_position, key_positions, rope, profile)
    j = _judge_bounded(field, got, reference, bound, keys.head_dim)
    if not j:
        _pairing_hint(j, got, keys, values, q, q_position, key_positions, rope, profile)
    return j


def _pairing_hint(j: Judgement, got: Any, keys: K.QTensor, values: K.QTensor, q: Any, q_position: int,
                  key_positions: Any, rope: K.Rope, profile: str) -> None:
    g = np.ascontiguousarray(A.as_numpy(got), dtype=np.float32).ravel()
    for pairing in K.RopePairing:
        if pairing == K.RopePairing.of(rope.pairing):
            continue
        other = K.Rope(pairing, rope.base)
        try:
            ref = K.attention_decode(keys, values, q, q_position, key_positions, other)
            bound = _bound(keys, values, q, q_position, key_positions, other, profile)
        except Exception:
            continue
        if g.size == ref.size and _judge_bounded("out", g, ref, bound, keys.head_dim).passed:
            j.detail += (f" Hint: the output matches the reference computed with RoPE pairing "
                         f"{pairing.name.lower()} instead of {K.RopePairing.of(rope.pairing).name.lower()}.")
            return


# ---- golden cases -------------------------------------------------------------------------------
def _tensor_outputs(outputs: Mapping[str, Any], prefix: str) -> Dict[str, Any]:
    return {k: v for k, v in outputs.items() if k.startswith(prefix + "_")}


def judge_case(case: GoldenCase, outputs: Mapping[str, Any]) -> Judgement:
    """The outputs of a golden case, by golden label, judged as ``kvq conform --check-outputs``
    judges the files of that name (docs/CLI.md):

    ======================= =======================================================================
    ``pack_*``              ``packed``
    ``uniform_*``, ``nuq_*`` ``params``, ``codes`` (one per byte), ``decoded``
    quantize_head cases     ``q_precision``, ``q_params``, ``q_codes`` (packed), ``q_fp16_rows``,
                            ``q_outlier_*`` (and optionally ``q_dequantized``); or ``q``: a QTensor
    outlier_selection_ties  ``is_outlier``
    ``attention_*``         ``out``; optionally the ``k_*`` / ``v_*`` fields of your own cache
    cache_append_attend     ``out`` ``[steps][n_q][head_dim]``; optionally ``final_k_*`` / ``final_v_*``
    ======================= =======================================================================
    """
    j = _judge_case(case, outputs)
    j.case = case.name
    return j


def check_case(case: GoldenCase, outputs: Mapping[str, Any]) -> Judgement:
    """:func:`judge_case`, raising :class:`ConformanceError` on failure."""
    return judge_case(case, outputs).raise_if_failed()


def _need(outputs: Mapping[str, Any], *labels: str) -> Optional[Judgement]:
    missing = [label for label in labels if label not in outputs]
    if not missing:
        return None
    return _failure("missing outputs", f"{len(missing)} of {len(labels)} outputs missing", "every output of the case",
                    f"Not given: {', '.join(missing)} (name them like the golden files; see docs/CLI.md).")


def _judge_case(case: GoldenCase, outputs: Mapping[str, Any]) -> Judgement:
    op = case.operation
    if op == "pack_codes":
        miss = _need(outputs, "packed")
        if miss is not None:
            return miss
        expected = case.expected("packed")
        return judge_exact(outputs["packed"], expected, "packed", expected.shape[1], "row", "byte")
    if op == "quantize_groups":
        miss = _need(outputs, "params", "codes", "decoded")
        if miss is not None:
            return miss
        expected = case.reference_tensor()
        codes = A.integers(outputs["codes"], "codes", np.uint8)
        if codes.size and int(codes.max()) >> expected.bits:
            i = int(np.flatnonzero(codes.ravel() >> expected.bits)[0])
            return _failure("codes", f"code {codes.ravel()[i]}", f"a {expected.bits}-bit code",
                            f"codes of {expected.bits} bits are 0 .. {(1 << expected.bits) - 1} (S3.4).", i)
        got = {"precision": np.zeros(expected.n_tokens, np.uint8), "params": outputs["params"],
               "codes": K.pack_codes(codes.reshape(expected.n_tokens, expected.head_dim), expected.bits)}
        return _judge_groups(got, expected, case.array("x"), outputs["decoded"])
    if op == "quantize_head":
        return _judge_tensor_outputs(outputs, "q", case.reference_tensor(), case.array("x"), required=True)
    if op == "select_outliers":
        miss = _need(outputs, "is_outlier")
        if miss is not None:
            return miss
        expected = case.expected("is_outlier")
        got = A.integers(outputs["is_outlier"], "is_outlier", np.uint8).reshape(expected.shape)
        for row in range(expected.shape[0]):
            j = judge_exact(got[row], expected[row], f"is_outlier[row {row}]")
            if not j:
                j.detail += (" S7.2: the K = floor((ppm*n + 500000)/10^6) most extreme elements, ceil(K/2) from the "
                             "top, ties broken by the lower index.")
                return j
        return Judgement(True)
    if op == "attention_decode":
        miss = _need(outputs, "out")
        if miss is not None:
            return miss
        keys, values = case.reference_tensors()
        accepted = 0
        own = []
        for prefix, ref, x in (("k", keys, case.array("keys")), ("v", values, case.array("values"))):
            given = _tensor_outputs(outputs, prefix)
            if not given:
                own.append(ref)
                continue
            j = _judge_tensor_outputs(outputs, prefix, ref, x, required=False)
            if not j:
                return j
            accepted += j.boundary_accepted
            own.append(_tensor_from(given, ref, prefix))
        q, q_position = case.array("q"), int(case.params["q_position"])
        positions = case.array("positions")
        if accepted:
            # codes moved within S12.2's windows: the reference recomputed on the kernel's own cache
            j = judge_attention(outputs["out"], own[0], own[1], q, q_position, positions, case.rope())
        else:
            j = _judge_bounded("out", outputs["out"], case.expected("out"), case.expected("bound"), keys.head_dim)
        j.boundary_accepted = accepted
        return j
    if op == "cache":
        miss = _need(outputs, "out")
        if miss is not None:
            return miss
        accepted = 0
        for prefix, role, x in (("final_k", "keys", case.array("keys")), ("final_v", "values", case.array("values"))):
            if _tensor_outputs(outputs, prefix):
                ref = _final_reference(case, prefix)
                j = _judge_tensor_outputs(outputs, prefix, ref, x, required=False)
                if not j:
                    return j
                accepted += j.boundary_accepted
        expected, bound = case.expected("out"), case.expected("bound")
        got = A.as_numpy(outputs["out"])
        if got.size != expected.size:
            return _failure("out", f"{got.size} elements", f"{expected.size} elements ({list(expected.shape)})",
                            "class A (S12.3): one output per append step.")
        got = got.reshape(expected.shape)
        for step in range(expected.shape[0]):
            j = _judge_bounded(f"out[step {step}]", got[step], expected[step], bound[step], expected.shape[-1])
            if not j:
                j.boundary_accepted = accepted
                return j
        return Judgement(True, boundary_accepted=accepted)
    raise ValueError(f"{case.name}: a {op} case is reference-only (kvq golden --verify checks it); "
                     f"kernels are judged on {', '.join(('pack_codes', 'quantize_groups', 'quantize_head', 'select_outliers', 'attention_decode', 'cache'))}")


def _final_reference(case: GoldenCase, prefix: str) -> K.QTensor:
    """The golden final tensor of the cache case (the reference cache's state after every append)."""
    arrays = {f: case.expected(f"{prefix}_{f}") for f in _TENSOR_FIELDS}
    role = "keys" if prefix.endswith("k") else "values"
    cfg = case.head_config(role)
    p = case.params[role]
    d = int(case.params["head_dim"])
    group = p.get("group_size", 0)
    if role == "values" and group == 0:
        group = d  # S4.1: a value group of 0 means one group of head_dim; S4.4 stores head_dim
    return K.QTensor.from_arrays(role=role, scheme=p["scheme"], bits=p["bits"], n_tokens=arrays["precision"].size,
                                 head_dim=d, key_mode=cfg.key_mode, group_size=group,
                                 codebook=cfg.quantizer.codebook, **arrays)


def _judge_groups(got: Mapping[str, Any], expected: K.QTensor, x: np.ndarray, decoded: Any) -> Judgement:
    try:
        tensor = _tensor_from(got, expected, "")
    except (KeyError, ValueError, TypeError) as exc:
        return _failure("params", "arrays that do not form groups", "[48][2] fp16 params and [48][32] codes", f"{exc}")
    labels = _labels(None)
    verdict = L.QtJudgement()
    d = L.ConformDiag()
    xa = A.float32(x, "x")
    if not lib.judge_qtensor(C.byref(labels), expected._ptr, tensor._ptr, A.ptr(xa, C.c_float), C.byref(verdict),
                             C.byref(d)):
        return Judgement._from_diag(d, boundary_accepted=int(verdict.boundary_accepted))
    j = judge_exact(A.as_numpy(decoded).astype(np.float32, copy=False), tensor.dequantize(), "decoded",
                    expected.head_dim, "group", "element")
    j.boundary_accepted = int(verdict.boundary_accepted)
    return j


def _judge_tensor_outputs(outputs: Mapping[str, Any], prefix: str, expected: K.QTensor, x: np.ndarray,
                          required: bool) -> Judgement:
    if isinstance(outputs.get(prefix), K.QTensor):
        return judge_qtensor(outputs[prefix], expected, x, prefix)
    labels = [f"{prefix}_{f}" for f in _TENSOR_FIELDS]
    miss = _need(outputs, *labels)
    if miss is not None:
        return miss
    return judge_qtensor(_tensor_outputs(outputs, prefix), expected, x, prefix,
                         dequantized=outputs.get(f"{prefix}_dequantized"))


# ---- assert_* ------------------------------------------------------------------------------------
def assert_exact(got: Any, expected: Any, field: str = "output") -> None:
    """:func:`judge_exact`, raising :class:`ConformanceError` on failure."""
    judge_exact(got, expected, field).raise_if_failed()


def assert_qtensor(got: Union[K.QTensor, Mapping[str, Any]], expected: K.QTensor, x: Any = None,
                   prefix: str = "q") -> None:
    """:func:`judge_qtensor`, raising :class:`ConformanceError` on failure."""
    judge_qtensor(got, expected, x, prefix).raise_if_failed()


def assert_attention(got: Any, keys: K.QTensor, values: K.QTensor, q: Any, q_position: int, key_positions: Any = None,
                     rope: Optional[K.Rope] = None, profile: str = "fp32") -> None:
    """:func:`judge_attention`, raising :class:`ConformanceError` on failure."""
    judge_attention(got, keys, values, q, q_position, key_positions, rope, profile).raise_if_failed()
