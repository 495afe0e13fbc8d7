"""``python -m kvq COMMAND``: the Python side of the kvq tool (today: ``eval``)."""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("usage: python -m kvq eval [options]   fidelity on a real model (docs/FIDELITY.md);\n"
              "       python -m kvq eval --help       its options")
        return 0 if argv else 2
    if argv[0] == "eval":
        from .eval.cli import main as eval_main

        return eval_main(argv[1:])
    print(f"python -m kvq: unknown command {argv[0]!r} (the C tool `kvq` has the others)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
