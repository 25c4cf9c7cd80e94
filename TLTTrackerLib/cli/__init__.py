"""The ``tlt-tracker`` command line.

Each subcommand is one module in this package defining ``NAME`` (the subcommand), ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``; :func:`main` discovers them, so adding a command means
adding a file. Only this package configures logging and prints; the library logs through ``logging``.

Exit codes: 0 success, 2 bad input or environment (:class:`~TLTTrackerLib.errors.TLTError`, printed as one
``error: ...`` line), 130 interrupted, 141 (128 + SIGPIPE) when stdout was closed early (``| head``): no
traceback, nothing more is printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import pkgutil
import sys
from importlib import import_module
from types import ModuleType
from typing import Sequence

from .. import __version__
from ..errors import TLTError


def _commands() -> list[ModuleType]:
    mods = [import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    return sorted((m for m in mods if hasattr(m, "NAME")), key=lambda m: m.NAME)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tlt-tracker",
        description="Track lesions from a baseline CT to a follow-up CT (coordinates in LPS mm unless stated).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in _commands():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=(mod.__doc__ or mod.HELP).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # examples stay verbatim
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose >= 2 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if verbose < 2:
        logging.getLogger("TLTTrackerLib").setLevel(level if verbose else max(level, logging.INFO))


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--lesion -33.8,-54.8,-150`` -> ``--lesion=-33.8,-54.8,-150`` (argparse would take the value for an option)."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--lesion" and arg.startswith("-") and (arg[1:2].isdigit() or arg[1:2] == "."):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(_join_negative_values(list(sys.argv[1:] if argv is None else argv)))
        _configure_logging(args.verbose, args.quiet)
        code = int(args._run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below
        return code
    except TLTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 141


def _silence_stdout() -> None:
    """The reader of stdout went away: point stdout at /dev/null so that the interpreter's final flush
    does not raise a second BrokenPipeError at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout replaced by an object without a descriptor
        pass


if __name__ == "__main__":  # python -m TLTTrackerLib.cli
    raise SystemExit(main())
