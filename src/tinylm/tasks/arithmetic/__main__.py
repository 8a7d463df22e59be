"""`python -m tinylm.tasks.arithmetic VERB ...`: the `tinylm arithmetic` command on its own."""

from __future__ import annotations

import argparse
import sys

from tinylm.errors import TinyLMError
from tinylm.tasks.arithmetic.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinylm.tasks.arithmetic")
    register(parser.add_subparsers(dest="command", metavar="COMMAND"))
    args = parser.parse_args(["arithmetic", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except TinyLMError as e:
        print(f"tinylm: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
