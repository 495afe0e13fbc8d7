"""A pytest plugin that runs a test once per golden case (installed with kvq, entry point pytest11).

A test that takes the fixture ``kvq_golden_case`` is parametrized over the golden cases that its
``kvq_golden`` marker selects (default: every case of a kernel operation), one test per case, named
after it::

    import pytest, kvq.testing

    @pytest.mark.kvq_golden(operation="attention_decode")
    def test_my_attention(kvq_golden_case):
        case = kvq_golden_case
        keys, values = case.reference_tensors()
        out = my_triton_attention(keys.dequantize(), values.dequantize(), case.array("q"), ...)
        kvq.testing.check_case(case, {"out": out})    # fails with kvq conform's diagnostic

Marker arguments: ``operation`` (a name or a tuple), ``level`` (an int or ``(low, high)``),
``pattern`` (fnmatch on the case name). Options: ``--kvq-golden DIR`` (another golden set),
``--kvq-level L`` or ``L-H`` (narrows every selection, like ``kvq conform --level``).
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import pytest


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("kvq", "kvq golden cases")
    group.addoption("--kvq-golden", default=None, metavar="DIR",
                    help="golden set directory for kvq_golden_case (default: the one installed with kvq)")
    group.addoption("--kvq-level", default=None, metavar="L[-H]",
                    help="only golden cases of these levels, e.g. 3 (L0-L3) or 4-4 (as kvq conform --level)")


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "kvq_golden(operation=None, level=None, pattern=None): parametrize the "
                                       "kvq_golden_case fixture over the selected golden cases")


def _levels(text: Optional[str]) -> Optional[Tuple[int, int]]:
    if text is None:
        return None
    parts = text.upper().replace("L", "").split("-")
    try:
        if len(parts) == 1:
            return (0, int(parts[0]))
        low, high = int(parts[0]), int(parts[1])
    except ValueError:
        raise pytest.UsageError(f"--kvq-level {text!r} is not L, L-H (levels 0-5)") from None
    return (low, high)


def pytest_generate_tests(metafunc: Any) -> None:
    if "kvq_golden_case" not in metafunc.fixturenames:
        return
    from . import golden

    marker = metafunc.definition.get_closest_marker("kvq_golden")
    kwargs = dict(marker.kwargs) if marker is not None else {}
    directory = metafunc.config.getoption("--kvq-golden")
    cases = golden.load(directory).select(operation=kwargs.get("operation", golden.BACKEND_OPERATIONS),
                                          level=kwargs.get("level"), pattern=kwargs.get("pattern"))
    levels = _levels(metafunc.config.getoption("--kvq-level"))
    if levels is not None:
        cases = [c for c in cases if c.level is not None and levels[0] <= c.level <= levels[1]]
    metafunc.parametrize("kvq_golden_case", cases, ids=[c.name for c in cases])
