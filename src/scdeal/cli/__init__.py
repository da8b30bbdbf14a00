"""The ``scdeal`` command line: a thin wrapper over the Python API.

Each sub-command lives in its own module exposing ``register(subparsers)``; that function adds
its parser and sets ``func`` (called with the parsed arguments, returns an exit code).
Errors the user can fix are :class:`scdeal.errors.ScdealError` and print as one line; any
other exception also prints one line unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .. import __version__
from ..errors import ScdealError

# Sub-command modules, in the order they appear in ``scdeal --help``.
_COMMANDS = ("run", "predict", "screen", "demo", "data", "benchmark", "explain", "report",
             "stability", "cache")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scdeal",
        description="Predict single-cell drug response by transfer learning from GDSC cell lines.",
    )
    parser.add_argument("--version", action="version", version=f"scdeal {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or info messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import importlib

    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"._{name}", __name__)
        except ModuleNotFoundError as exc:  # command not built yet
            if exc.name and exc.name.endswith(f"._{name}"):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # --quiet and --debug are accepted anywhere on the line, not only before the command.
    flags = {f for f in ("--quiet", "--debug") if f in argv}
    args = parser.parse_args([a for a in argv if a not in flags])
    args.quiet = args.quiet or "--quiet" in flags
    args.debug = args.debug or "--debug" in flags
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except ScdealError as exc:
        if args.debug:
            raise
        print(f"scdeal: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("scdeal: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one clear line unless --debug
        if args.debug:
            raise
        print(f"scdeal: error: {type(exc).__name__}: {exc} (run with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
