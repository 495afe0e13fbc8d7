"""kvq's errors as Python exceptions.

Every C function that can fail returns a ``kvq_status`` (spec S13) and leaves a message in
``kvq_last_error()``. The binding raises :class:`KvqError` (or the subclass named after the status,
e.g. :class:`BadArgumentError` for ``KVQ_ERR_BAD_ARGUMENT``) carrying both::

    try:
        kvq.read_kvt("missing.kvt")
    except kvq.errors.IoError as e:
        print(e.status_name, e.message)   # KVQ_ERR_IO  missing.kvt: cannot open ...
"""
from __future__ import annotations

from typing import Any

__all__ = ["KvqError"]


class KvqError(Exception):
    """A kvq call failed: ``status`` (the S13 code), ``status_name`` and ``message``."""

    status: int
    status_name: str
    message: str

    def __init__(self, status: int, status_name: str, message: str) -> None:
        super().__init__(f"{status_name}: {message}")
        self.status = status
        self.status_name = status_name
        self.message = message


# status code -> exception class; filled by _install() from the library's own names.
_BY_STATUS: dict[int, type[KvqError]] = {}


def _class_name(status_name: str) -> str:
    """KVQ_ERR_BAD_ARGUMENT -> BadArgumentError."""
    words = status_name.removeprefix("KVQ_ERR_").split("_")
    return "".join(w.capitalize() for w in words) + "Error"


def _install(lib: Any) -> None:
    """One subclass of KvqError per status the library defines (S13.1)."""
    for status in range(1, lib.kvq_python_status_count()):
        name = lib.kvq_status_name(status).decode()
        cls = type(_class_name(name), (KvqError,), {"__doc__": f"kvq status {name} ({status})."})
        cls.__module__ = __name__
        _BY_STATUS[status] = cls
        globals()[cls.__name__] = cls
        __all__.append(cls.__name__)


def from_status(status: int, message: str) -> KvqError:
    """The exception for a failed call's status and message."""
    from ._lib import lib

    name = lib.kvq_status_name(status).decode()
    cls = _BY_STATUS.get(status, KvqError)
    return cls(status, name, message)
