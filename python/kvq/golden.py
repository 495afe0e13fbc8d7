"""The golden set (S16.7) as Python objects.

The wheel carries the golden set of the commit it was built from (``kvq/golden/``); pass another
directory (or set ``$KVQ_GOLDEN_DIR``) to use a different one::

    import kvq.golden
    golden = kvq.golden.load()
    case = golden["attention_d128_n300_half_gqa4"]
    case.level, case.operation, case.params["rope"]
    q = case.array("q")                       # an input, as numpy
    keys, values = case.reference_tensors()   # the reference's quantized cache of the case
    case.expected("out")                      # the golden output

Each case knows its level (the one ``kvq conform`` gives it, docs/CLI.md), the configuration it was
made with (:meth:`GoldenCase.head_config`, :meth:`GoldenCase.rope`) and, through the reference, the
results a kernel must reproduce. :mod:`kvq.testing` judges a kernel's outputs against them.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from . import core as K

__all__ = ["GoldenFile", "GoldenCase", "GoldenSet", "load", "default_dir", "BACKEND_OPERATIONS"]

_DTYPES = {"f32": np.float32, "u8": np.uint8, "u16": np.uint16, "u32": np.uint32, "u64": np.uint64,
           "i32": np.int32}

# Operations a kernel (a backend) performs; the others are reference-only (kvq golden --verify).
BACKEND_OPERATIONS = ("pack_codes", "quantize_groups", "quantize_head", "select_outliers", "attention_decode",
                      "cache")


def default_dir() -> Path:
    """$KVQ_GOLDEN_DIR, else the golden set installed with the package."""
    env = os.environ.get("KVQ_GOLDEN_DIR")
    return Path(env) if env else Path(__file__).resolve().parent / "golden"


@dataclass(frozen=True)
class GoldenFile:
    """One file of a case (S16.7): its label, tolerance class and, for arrays, dtype and shape."""

    label: str
    cls: str            # "input", "exact", "boundary", "bounded", "reference"
    file: str
    kind: str           # "array", "kvt", "kvc", "kvqz", "status"
    dtype: Optional[str]
    shape: Tuple[int, ...]
    sha256: Optional[str]
    path: Optional[Path]
    status: Optional[str] = None  # kind "status": the kvq status name the operation must return

    def load(self, verify: bool = True) -> np.ndarray:
        """The array (raw little-endian, S16.7); verify=True checks the manifest's SHA-256 first."""
        if self.kind != "array" or self.path is None:
            raise ValueError(f"{self.label}: a {self.kind} entry, not an array (read files with kvq.read_*)")
        data = self.path.read_bytes()
        if verify and self.sha256 and hashlib.sha256(data).hexdigest() != self.sha256:
            raise ValueError(f"{self.path}: SHA-256 does not match the manifest")
        dtype = np.dtype(_DTYPES[self.dtype or "u8"]).newbyteorder("<")
        return np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(self.shape)


def _level_for(params: Dict[str, Any], policy: Dict[str, Any]) -> int:
    """The level `kvq conform` gives a quantize case (tools/conform/units.c)."""
    plain = (params.get("outlier_ppm", 1) == 0 and params.get("key_mode") != "calibrated"
             and policy.get("n_sinks", 1) == 0 and policy.get("recent_window", 1) == 0
             and policy.get("rule") == "quantize_all")
    if not plain:
        return 3
    return 2 if params.get("scheme") == "nuq" else 1


@dataclass
class GoldenCase:
    """A case of the golden set: name, operation, spec sections, parameters and files."""

    name: str
    operation: str
    section: str
    params: Dict[str, Any]
    files: Dict[str, GoldenFile] = field(default_factory=dict)

    # ---- what the case is
    @property
    def level(self) -> Optional[int]:
        """The conformance level (0-5) of the case's kernel operation; None when reference-only."""
        op, p = self.operation, self.params
        if op == "pack_codes":
            return 0
        if op == "quantize_groups":
            return 2 if p.get("scheme") == "nuq" else 1
        if op == "quantize_head":
            return _level_for(p, p.get("policy", {}))
        if op == "select_outliers":
            return 3
        if op == "attention_decode":
            return 4
        if op == "cache":
            return 5
        return None

    @property
    def is_backend_operation(self) -> bool:
        return self.operation in BACKEND_OPERATIONS

    def labels(self, cls: Optional[str] = None) -> List[str]:
        """The labels of the case's files, of one tolerance class when given."""
        return [f.label for f in self.files.values() if cls is None or f.cls == cls]

    def array(self, label: str) -> np.ndarray:
        """An array file of the case, by label."""
        try:
            return self.files[label].load()
        except KeyError:
            raise KeyError(f"case {self.name} has no file labelled {label!r}; it has {sorted(self.files)}") from None

    def expected(self, label: str) -> np.ndarray:
        """An output file (class exact, boundary or bounded) of the case."""
        f = self.files.get(label)
        if f is None or f.cls not in ("exact", "boundary", "bounded", "reference"):
            raise KeyError(f"case {self.name} has no output labelled {label!r}")
        return f.load()

    @property
    def inputs(self) -> Dict[str, np.ndarray]:
        """Every input array of the case by label."""
        return {f.label: f.load() for f in self.files.values() if f.cls == "input" and f.kind == "array"}

    # ---- the configuration it was made with
    def head_config(self, role: Optional[str] = None) -> K.HeadConfig:
        """The kvq_head_config of a quantize case, or of an attention/cache case's keys or values
        (role "keys" / "values")."""
        p = self.params
        if self.operation == "quantize_groups":
            cb = K.normalfloat(p["bits"]) if p.get("codebook") == "normalfloat" else None
            return K.HeadConfig(role="values", quantizer=K.Quantizer(p["scheme"], p["bits"], cb), group_size=0,
                                outlier_ppm=0, policy=K.TokenPolicy("quantize_all", 0, 0, 0))
        if self.operation in ("attention_decode", "cache"):
            if role not in ("keys", "values"):
                raise ValueError(f"{self.name}: say role='keys' or role='values'")
            sub = dict(p[role])
            sub["role"] = role
            policy = p["policy"]
            ranges = self.array("channel_range") if sub.get("key_mode") == "calibrated" else None
        elif self.operation == "quantize_head":
            sub, policy = p, p["policy"]
            ranges = self.array("channel_range") if p.get("key_mode") == "calibrated" else None
        else:
            raise ValueError(f"{self.name}: a {self.operation} case has no head configuration")
        bits = sub["bits"]
        cb = K.normalfloat(bits) if sub.get("codebook") == "normalfloat" else None
        key_mode = sub.get("key_mode", "online")
        return K.HeadConfig(role=sub["role"], quantizer=K.Quantizer(sub["scheme"], bits, cb),
                            key_mode=key_mode if key_mode in ("calibrated", "online") else "online",
                            group_size=sub.get("group_size", 0), outlier_ppm=sub.get("outlier_ppm", 0),
                            channel_range=ranges,
                            policy=K.TokenPolicy(policy["rule"], policy["budget_ppm"], policy["n_sinks"],
                                                 policy["recent_window"]),
                            beyond_range="clamp" if sub.get("beyond_range") == "clamp" else "outliers")

    def rope(self) -> K.Rope:
        """The RoPE of an attention or cache case."""
        r = self.params["rope"]
        return K.Rope(r["pairing"], float(r["base"]))

    # ---- the reference's results
    def reference_tensor(self) -> K.QTensor:
        """The reference's quantized tensor of a quantize_head / quantize_groups case."""
        mod = self.array("modality") if "modality" in self.files else None
        return K.quantize_head(self.head_config(), self.array("x"), mod)

    def reference_tensors(self) -> Tuple[K.QTensor, K.QTensor]:
        """The reference's (keys, values) of an attention case."""
        mod = self.array("modality")
        return (K.quantize_head(self.head_config("keys"), self.array("keys"), mod),
                K.quantize_head(self.head_config("values"), self.array("values"), mod))

    def __repr__(self) -> str:
        return f"GoldenCase({self.name!r}, {self.operation}, level {self.level})"


class GoldenSet:
    """The cases of a golden directory (manifest.json), in manifest order, by name."""

    def __init__(self, directory: Path, manifest: Dict[str, Any]) -> None:
        self.directory = directory
        self.spec_version: str = manifest.get("spec_version", "")
        self.cases: List[GoldenCase] = []
        for c in manifest["cases"]:
            files = {}
            for f in c.get("files", []):
                name = f.get("file")
                files[f["label"]] = GoldenFile(f["label"], f["class"], name or "", f.get("kind", "array"),
                                               f.get("dtype"), tuple(f.get("shape", ())), f.get("sha256"),
                                               directory / name if name else None, f.get("status"))
            self.cases.append(GoldenCase(c["case"], c["operation"], c.get("section", ""), c.get("params", {}), files))
        self._by_name = {c.name: c for c in self.cases}

    def __getitem__(self, name: str) -> GoldenCase:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no golden case {name!r} in {self.directory}") from None

    def __iter__(self) -> Iterator[GoldenCase]:
        return iter(self.cases)

    def __len__(self) -> int:
        return len(self.cases)

    def select(self, operation: Optional[Any] = None, level: Optional[Any] = None,
               pattern: Optional[str] = None) -> List[GoldenCase]:
        """Cases of an operation (or a tuple of them), a level (int, or (low, high)), and whose name
        matches a shell pattern (fnmatch)."""
        import fnmatch

        ops = (operation,) if isinstance(operation, str) else operation
        if isinstance(level, int):
            level = (level, level)
        out = []
        for c in self.cases:
            if ops is not None and c.operation not in ops:
                continue
            if level is not None and (c.level is None or not level[0] <= c.level <= level[1]):
                continue
            if pattern is not None and not fnmatch.fnmatchcase(c.name, pattern):
                continue
            out.append(c)
        return out


def load(directory: Optional[os.PathLike] = None) -> GoldenSet:
    """The golden set of a directory (default: :func:`default_dir`)."""
    d = Path(directory) if directory is not None else default_dir()
    manifest_path = d / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path} not found: no golden set there")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != "kvq-golden":
        raise ValueError(f"{manifest_path}: format {manifest.get('format')!r} is not 'kvq-golden'")
    return GoldenSet(d, manifest)
