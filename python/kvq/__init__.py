"""kvq: KV-cache quantization (a spec, its C reference, a golden set and conformance judges).

The package binds the C reference library (libkvq_python, built by ``pip install .``) through
ctypes; every result is the C library's. Start with docs/PYTHON.md. Main entry points:

* :func:`quantize_head`, :func:`dequantize_head`, :func:`attention_decode` (S4, S11);
* :func:`calibrate_channel_ranges`, :func:`calibrate_codebook`, :func:`calibration_samples` (S6);
* :func:`read_kvt` / :func:`write_kvt`, :func:`read_kvc` / :func:`write_kvc`,
  :func:`read_kvqz` / :func:`write_kvqz` (S16);
* :mod:`kvq.golden` (the golden set as objects), :mod:`kvq.testing` (judge your kernel's arrays with
  the tolerance classes of S12) and the pytest plugin (:mod:`kvq.pytest_plugin`);
* ``python -m kvq eval``: fidelity on a real model (docs/FIDELITY.md).

Errors raise :class:`kvq.errors.KvqError` subclasses named after the kvq status.
"""
from __future__ import annotations

from importlib import metadata as _metadata

from . import errors
from .core import *  # noqa: F401,F403
from .core import __all__ as _core_all
from .errors import KvqError
from .files import *  # noqa: F401,F403
from .files import __all__ as _files_all

try:
    __version__ = _metadata.version("kvq")
except _metadata.PackageNotFoundError:  # imported from a source tree
    __version__ = "0+unknown"

__all__ = ["errors", "KvqError", "__version__", *_core_all, *_files_all]
