"""The `hbdk-sim` command line.

Exit codes: 0 success; 1 the model is rejected (it fails verification after a pass, or a
constraint check); 2 a usage or input-file error (bad flags, unreadable or malformed file).
Every error is one line on stderr; no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence

from hbdk_sim import _core
from hbdk_sim.ir import load, save, summarize

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A user-facing failure: `message` is printed as one line, `code` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def _load(path: str) -> _core.Module:
    try:
        return load(path)
    except FileNotFoundError:
        raise CliError(f"{path}: error: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: error: is a directory, expected an .hbir file") from None
    except OSError as e:
        raise CliError(f"{path}: error: cannot read: {e.strerror}") from None
    except _core.HbirError as e:
        # A file that does not parse or verify is bad input, not a rejected model.
        raise CliError(str(e)) from None


def _split_names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _check_pass_names(names: list[str]) -> None:
    known = [n for n, _ in _core.passes()] + [p["name"] for p in _core.pipelines()]
    for n in names:
        if n not in known:
            close = difflib.get_close_matches(n, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise CliError(f"error: unknown pass or pipeline '{n}'{hint} (see `hbdk-sim passes`)")


def _write_module(module: _core.Module, out: str | None, force: bool) -> None:
    if out is None or out == "-":
        sys.stdout.write(module.print())
        return
    try:
        save(module, out, overwrite=force)
    except FileExistsError:
        raise CliError(f"{out}: error: file exists; pass --force to overwrite it") from None
    except OSError as e:
        raise CliError(f"{out}: error: cannot write: {e.strerror}") from None


# ---- subcommands ---------------------------------------------------------------------------------


def cmd_dump(args: argparse.Namespace) -> int:
    module = _load(args.file)
    if args.summary:
        print(summarize(module).format())
    else:
        sys.stdout.write(module.print())
    return EXIT_OK


def cmd_opt(args: argparse.Namespace) -> int:
    names = _split_names(args.passes)
    if not names:
        raise CliError("error: --passes needs at least one pass or pipeline name")
    _check_pass_names(names)
    _check_pass_names(args.print_ir_after or [])
    module = _load(args.file)
    before = summarize(module) if args.summary else None
    try:
        result = module.run_pipeline(
            names,
            verify_each=not args.no_verify_each,
            print_ir_after_all=args.print_ir_after_all,
            print_ir_after=args.print_ir_after or [],
        )
    except _core.HbirError as e:
        raise CliError(str(e), EXIT_REJECTED) from None
    sys.stderr.write(result["ir_dumps"])
    if args.time_passes:
        sys.stderr.write(result["report"])
    if before is not None:
        after = summarize(module)
        print(f"before:\n{before.format()}\nafter:\n{after.format()}", file=sys.stderr)
    _write_module(module, args.output, args.force)
    return EXIT_OK


def cmd_ops(args: argparse.Namespace) -> int:
    table = _core.op_table()
    width = max(len(d["name"]) for d in table)
    for d in table:
        print(f"{d['name']:<{width}}  {d['summary']}")
    return EXIT_OK


def cmd_passes(args: argparse.Namespace) -> int:
    print("passes:")
    entries = _core.passes()
    width = max(len(n) for n, _ in entries)
    for name, summary in entries:
        print(f"  {name:<{width}}  {summary}")
    print("pipelines:")
    for p in _core.pipelines():
        print(f"  {p['name']}: {', '.join(p['passes'])}  -- {p['summary']}")
    return EXIT_OK


# ---- argument parsing ----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliError(f"{self.prog}: error: {message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hbdk-sim", description="hbdk-sim: HBIR tools, compiler and simulator for the BPU.")
    p.add_argument("--version", action="version", version=f"hbdk-sim {_core.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    d = sub.add_parser("dump", help="print an .hbir file in canonical text form")
    d.add_argument("file", help="an .hbir file")
    d.add_argument("--summary", action="store_true", help="print ops by kind, parameters and MACs instead")
    d.set_defaults(func=cmd_dump)

    o = sub.add_parser("opt", help="run passes on an .hbir file (like mlir-opt)")
    o.add_argument("file", help="an .hbir file")
    o.add_argument("--passes", required=True, help="comma-separated pass or pipeline names, e.g. default")
    o.add_argument("-o", "--output", help="output .hbir file (default: stdout)")
    o.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    o.add_argument("--print-ir-after-all", action="store_true", help="print the IR after every pass (stderr)")
    o.add_argument("--print-ir-after", action="append", metavar="NAME",
                   help="print the IR after pass NAME (stderr); repeatable")
    o.add_argument("--time-passes", action="store_true", help="report wall time per pass (stderr)")
    o.add_argument("--no-verify-each", action="store_true", help="verify only at the end, not after every pass")
    o.add_argument("--summary", action="store_true", help="print the module summary before and after (stderr)")
    o.set_defaults(func=cmd_opt)

    sub.add_parser("ops", help="list the HBIR ops").set_defaults(func=cmd_ops)
    sub.add_parser("passes", help="list passes and pipelines").set_defaults(func=cmd_passes)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return args.func(args)
    except CliError as e:
        print(str(e), file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("hbdk-sim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
