"""The `hbdk-sim` command line.

Exit codes: 0 success; 1 the model is rejected (it fails verification after a pass, or a
constraint check); 2 a usage or input-file error (bad flags, unreadable or malformed file).
Every error is one line on stderr; no traceback reaches the user.

`dump` and `opt` take `--split-input-file` and `--verify-diagnostics`: several cases in one file,
their errors stated inline (hbdk_sim.text_cases says how).
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import math
import os
import shutil
import stat
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from hbdk_sim import _core, api
from hbdk_sim.errors import FILE_ERRORS, InputFileError, UserError
from hbdk_sim.files import MAX_INPUT_BYTES, read_bytes, write_file
from hbdk_sim.ir import load, parse, save, summarize
from hbdk_sim.march import list_marches, load_march
from hbdk_sim.text_cases import SPLIT_MARKER, expected_errors, split_cases

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
# Errors in what the user gave (a malformed file, NaN weights, a missing path): EXIT_USAGE. Any other
# exception is a bug and reaches the user with its traceback.
_INPUT_ERRORS = (UserError, _core.ParseError, _core.DataError, *FILE_ERRORS)


class CliError(UserError):
    """A user-facing failure: `message` is printed as one line, `code` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def _load(path: str) -> _core.Module:
    return _reading(path, lambda: load(path))


def _reading(path: str, read: Callable):
    """`read()`, its errors about the file `path` as one-line CliErrors."""
    try:
        return read()
    except FileNotFoundError:
        raise CliError(f"{path}: error: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: error: is a directory, expected an .hbir file") from None
    except OSError as e:
        raise CliError(f"{path}: error: cannot read: {e.strerror}") from None
    except InputFileError as e:  # a device or an oversized file
        raise CliError(f"{e.path}: error: {e.reason}") from None
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


# ---- several cases in one file (--split-input-file) ------------------------------------------------

def _run_cases(args: argparse.Namespace, process: Callable[[_core.Module], str]) -> int:
    """`process` on the file's module, or on each case's with --split-input-file; prints the text."""
    if not args.split_input_file:
        if args.verify_diagnostics:
            raise CliError("error: --verify-diagnostics needs --split-input-file")
        sys.stdout.write(process(_load(args.file)))
        return EXIT_OK
    data = _reading(args.file, lambda: read_bytes(args.file, "an .hbir file"))
    outputs, mismatches = [], []
    for start, part in split_cases(data):
        expected = expected_errors(part) if args.verify_diagnostics else []
        # Verified cases count lines from their own first line; otherwise errors name the file's lines.
        text = part if args.verify_diagnostics else b"\n" * (start - 1) + part
        try:
            outputs.append(process(_reading(args.file, lambda text=text: parse(text, args.file))))
        except CliError as e:
            if not args.verify_diagnostics:
                raise
            got = str(e).removeprefix(f"{args.file}:")
            outputs.append("")
            if got not in expected:
                want = f"expected error {expected[0]!r}" if expected else "expected no error"
                mismatches.append(f"{args.file}:{start}: case: {want} but got {got!r}")
            continue
        if expected:
            mismatches.append(f"{args.file}:{start}: case: expected error {expected[0]!r} but it succeeded")
    sys.stdout.write(f"{SPLIT_MARKER}\n".join(outputs))
    for line in mismatches:
        print(line, file=sys.stderr)
    return EXIT_REJECTED if mismatches else EXIT_OK


# ---- subcommands ---------------------------------------------------------------------------------


def cmd_dump(args: argparse.Namespace) -> int:
    return _run_cases(args, lambda module: f"{summarize(module).format()}\n" if args.summary else module.print())


def cmd_opt(args: argparse.Namespace) -> int:
    names = _split_names(args.passes)
    if not names:
        raise CliError("error: --passes needs at least one pass or pipeline name")
    _check_pass_names(names)
    _check_pass_names(args.print_ir_after or [])
    march = _march(args.march) if args.march else None
    if args.output not in (None, "-") and args.split_input_file:
        raise CliError("error: --split-input-file prints its cases on stdout; drop --output")
    if args.output not in (None, "-"):
        module = _run_passes(_load(args.file), names, march, args)
        _write_module(module, args.output, args.force)
        return EXIT_OK
    return _run_cases(args, lambda module: _run_passes(module, names, march, args).print())


def _run_passes(module: _core.Module, names: list[str], march: _core.March | None,
                args: argparse.Namespace) -> _core.Module:
    before = summarize(module) if args.summary else None
    try:
        result = module.run_pipeline(
            names,
            verify_each=not args.no_verify_each,
            print_ir_after_all=args.print_ir_after_all,
            print_ir_after=args.print_ir_after or [],
            march=march,
        )
    except _core.DataError as e:
        raise CliError(str(e)) from None
    except _core.HbirError as e:
        raise CliError(str(e), EXIT_REJECTED) from None
    sys.stderr.write(result["ir_dumps"])
    if args.time_passes:
        sys.stderr.write(result["report"])
    if before is not None:
        after = summarize(module)
        print(f"before:\n{before.format()}\nafter:\n{after.format()}", file=sys.stderr)
    return module


def _march(name: str) -> _core.March:
    try:
        return load_march(name)
    except _core.HbirError as e:  # MarchError, or a JSON ParseError with line:col
        raise CliError(str(e)) from None


def _model_path(path: str) -> str:
    p = Path(path)
    if not p.exists():
        raise CliError(f"{path}: error: no such file")
    if p.is_dir():
        raise CliError(f"{path}: error: is a directory, expected a model file")
    return path


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True))


def cmd_compile(args: argparse.Namespace) -> int:
    march = _march(args.march)
    source = Path(_model_path(args.file))
    if args.print_program and (args.output or args.json):
        raise CliError("error: --print-program prints the program instead of writing a binary; drop "
                       f"{'--output' if args.output else '--json'}")
    output = None if args.print_program else Path(args.output) if args.output else source.with_suffix(".hbm")
    try:
        result = api.compile(source, march, output, overwrite=args.force)
    except FileExistsError as e:
        raise CliError(f"error: {e}") from None
    except _core.ConstraintError as e:
        if args.json:
            _print_json({"ok": False, "march": march.name, "violations": e.violations})
        else:
            print(str(e), file=sys.stderr)
        return EXIT_REJECTED
    except InputFileError as e:
        raise CliError(f"{e.path}: error: {e.reason}") from None
    except _INPUT_ERRORS as e:
        raise CliError(str(e)) from None
    except _core.HbirError as e:
        raise CliError(str(e), EXIT_REJECTED) from None
    if args.time_passes:
        sys.stderr.write(result.pass_report)
    if args.print_program:
        sys.stdout.write(api.program_listing(result.hbm, result.perf))
    elif args.json:
        s = result.summary
        _print_json({"ok": True, "march": result.march, "output": str(result.output), "bytes": len(result.hbm),
                     "ops": s.num_ops, "ops_by_kind": dict(s.ops_by_kind), "parameters": s.parameters,
                     "macs": s.macs, "instructions": result.instructions,
                     "perf_files": [str(p) for p in result.perf_files],
                     "perf": result.perf.to_dict()["totals"] if result.perf else None})
    else:
        print(result.format())
    return EXIT_OK


def cmd_perf(args: argparse.Namespace) -> int:
    path = Path(_model_path(args.file))
    if path.suffix == ".hbm":
        model = _load_hbm(args.file)
        march = _march(args.march or model.march)
        if model.march != march.name:
            raise CliError(f"{path}: error: compiled for march '{model.march}', not '{march.name}'; "
                           f"recompile the .hbir for '{march.name}' or drop --march")
    else:
        march = _march(args.march or "bpu")
    html_out = Path(args.html) if args.html else None
    if html_out is not None and html_out.exists() and not args.force:
        raise CliError(f"{html_out}: error: file exists; pass --force to overwrite it")  # before the work
    try:
        report = api.compile_perf(path, march=march)
    except _core.ConstraintError as e:
        print(str(e), file=sys.stderr)
        return EXIT_REJECTED
    except InputFileError as e:
        raise CliError(f"{e.path}: error: {e.reason}") from None
    except (*_INPUT_ERRORS, _core.HbmError) as e:
        raise CliError(str(e)) from None
    except _core.HbirError as e:
        raise CliError(str(e), EXIT_REJECTED) from None
    if html_out is not None:
        try:
            write_file(html_out, report.to_html().encode("utf-8"), overwrite=args.force)
        except FileExistsError:
            raise CliError(f"{html_out}: error: file exists; pass --force to overwrite it") from None
        except OSError as e:
            raise CliError(f"{html_out}: error: cannot write: {e.strerror}") from None
    if args.json:
        sys.stdout.write(report.to_json())
    else:
        print(report.format(width=shutil.get_terminal_size((120, 24)).columns))
        if html_out is not None:
            print(f"wrote {html_out}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    march = _march(args.march)
    try:
        result = api.check(_model_path(args.file), march)
    except InputFileError as e:
        raise CliError(f"{e.path}: error: {e.reason}") from None
    except _INPUT_ERRORS as e:
        raise CliError(str(e)) from None
    except _core.HbirError as e:
        raise CliError(str(e), EXIT_REJECTED) from None
    if args.json:
        _print_json({"ok": result.ok, "march": result.march, "violations": result.violations})
    else:
        print(result.format(), file=sys.stdout if result.ok else sys.stderr)
    return EXIT_OK if result.ok else EXIT_REJECTED


def _load_hbm(path: str) -> _core.HbmModel:
    try:
        return api.load_hbm(_model_path(path))
    except InputFileError as e:  # a device or an oversized file
        raise CliError(f"{e.path}: error: {e.reason}") from None
    except OSError as e:
        raise CliError(f"{path}: error: cannot read: {e.strerror}") from None
    except _core.HbirError as e:
        raise CliError(str(e)) from None


def _read_npy(file: str) -> np.ndarray:
    """A .npy array, its header checked before any data is read: a malformed header, an object
    array, or a declared shape that the file does not hold (or that would not fit in
    files.MAX_INPUT_BYTES) is one error naming the file."""
    try:
        st = os.stat(file)
        if stat.S_ISDIR(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            raise CliError(f"{file}: error: not a regular file; give the path of a .npy file")
        with open(file, "rb") as f:
            if f.read(6) != b"\x93NUMPY":
                raise CliError(f"{file}: error: not a .npy file (save arrays with numpy.save)")
            f.seek(0)
            try:
                version = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran_order, dtype = read_header(f)
            except Exception as e:  # ValueError, SyntaxError, tokenize.TokenError: all a malformed header
                raise CliError(f"{file}: error: malformed .npy header ({type(e).__name__}: "
                               f"{' '.join(str(e).split())}); rewrite it with numpy.save") from None
            if dtype.hasobject:
                raise CliError(f"{file}: error: an object array; inputs are numeric arrays")
            nbytes = math.prod(shape) * dtype.itemsize
            held = st.st_size - f.tell() if stat.S_ISREG(st.st_mode) else None
            if nbytes > MAX_INPUT_BYTES or (held is not None and nbytes > held):
                holds = f", but the file holds {held:,}" if held is not None else ""
                raise CliError(f"{file}: error: the header declares shape {tuple(shape)} {dtype} "
                               f"({nbytes:,} bytes){holds}; the file is truncated or its header is wrong")
            data = f.read(nbytes)
    except OSError as e:
        raise CliError(f"{file}: error: cannot read: {e.strerror}") from None
    if len(data) != nbytes:
        raise CliError(f"{file}: error: the header declares {nbytes:,} bytes of data but the file holds {len(data):,}")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


def _read_input(spec: str, names: list[str]) -> tuple[str, np.ndarray]:
    name, sep, file = spec.partition("=")
    if not sep or not name or not file:
        raise CliError(f"error: --input expects NAME=FILE.npy but got '{spec}'")
    if name not in names:
        raise CliError(f"error: --input '{name}': the model has no input of that name (inputs: {', '.join(names)})")
    return name, _read_npy(file)


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The arrays as an .npz archive (what numpy.savez writes), whatever their names: savez's own
    keyword arguments would refuse an output named `file` or `allow_pickle`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


def cmd_run(args: argparse.Namespace) -> int:
    model = _load_hbm(args.file)
    out = Path(args.output)
    if out.exists() and not args.force:
        raise CliError(f"{out}: error: file exists; pass --force to overwrite it")  # before the work
    executor = api.Executor(model, optimized=not args.reference, threads=args.threads)
    inputs = dict(_read_input(spec, executor.input_names) for spec in args.input or [])
    try:
        outputs = executor.run(inputs)
    except (UserError, _core.HbirError) as e:
        raise CliError(f"{args.file}: error: {e}") from None
    out = Path(args.output)
    try:
        write_file(out, _npz_bytes(outputs), overwrite=args.force)
    except FileExistsError:
        raise CliError(f"{out}: error: file exists; pass --force to overwrite it") from None
    except OSError as e:
        raise CliError(f"{out}: error: cannot write: {e.strerror}") from None
    described = {n: {"shape": list(a.shape), "dtype": str(a.dtype)} for n, a in outputs.items()}
    if args.json:
        _print_json({"output": str(out), "outputs": described})
    else:
        for n, d in described.items():
            print(f"{n}: {d['dtype']}{d['shape']}")
        print(f"wrote {out}")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    model = _load_hbm(args.file)
    info = {
        "file": args.file,
        "format_version": model.format_version,
        "compiler_version": model.compiler_version,
        "march": model.march,
        "inputs": model.inputs,
        "outputs": model.outputs,
        "instructions": len(model.program),
        "perf_summary": model.perf_summary,
        "metadata": model.metadata,
        "source_hash": model.source_hash,
    }
    if args.json:
        _print_json(info)
        return EXIT_OK
    print(f"{args.file}: .hbm v{model.format_version}, compiled by hbdk-sim {model.compiler_version} "
          f"for march '{model.march}'")
    for kind in ("inputs", "outputs"):
        for desc in info[kind]:
            print(f"  {kind[:-1]:<6} {desc['name']}: {desc['dtype']}{desc['shape']} scale={desc['scales']}")
    print(f"  instructions {info['instructions']}")
    for k, v in model.perf_summary.items():
        print(f"  {k}: {v:,}" if isinstance(v, int) else f"  {k}: {v}")
    for k, v in model.metadata.items():
        print(f"  {k}: {v}")
    print(f"  source sha256 {model.source_hash}")
    return EXIT_OK


def cmd_marches(args: argparse.Namespace) -> int:
    rows = []
    for name in list_marches():
        m = load_march(name)
        rows.append({"name": m.name, "tops_int8": round(m.peak_tops, 1), "clock_mhz": m.clock_mhz,
                     "mac_array": f"{m.mac_array['rows']}x{m.mac_array['cols']}", "dataflow": m.mac_array["dataflow"],
                     "sram_kib": m.sram["size_bytes"] // 1024, "ddr_gbps": m.ddr["bandwidth_gbps"],
                     "description": m.description})
    if args.json:
        _print_json(rows)
        return EXIT_OK
    print(f"{'march':<10} {'TOPS':>6} {'MHz':>6} {'array':>8} {'dataflow':<18} {'SRAM KiB':>8} {'DDR GB/s':>8}")
    for r in rows:
        print(f"{r['name']:<10} {r['tops_int8']:>6} {r['clock_mhz']:>6g} {r['mac_array']:>8} {r['dataflow']:<18} "
              f"{r['sram_kib']:>8} {r['ddr_gbps']:>8g}")
    return EXIT_OK


def cmd_ops(args: argparse.Namespace) -> int:
    if args.coverage or args.json:
        from hbdk_sim import op_coverage

        repo = Path.cwd() if any(Path.cwd().glob(op_coverage.KERNEL_TESTS)) else None
        if args.json:
            print(json.dumps(op_coverage.coverage(repo), indent=2))
        else:
            print(op_coverage.coverage_markdown(repo), end="")
        return EXIT_OK
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


def _threads(text: str) -> int:
    try:
        threads: int | None = int(text)
    except ValueError:  # not a number: check_threads refuses it with the others
        threads = None
    try:
        return api.check_threads(threads)
    except UserError:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to {api.MAX_EXECUTOR_THREADS}, "
                                         f"got {text!r}") from None


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliError(f"{self.prog}: error: {message} (see --help)")


def _split_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split-input-file", action="store_true",
                        help=f"the file holds cases separated by '{SPLIT_MARKER}' lines; process each on its own")
    parser.add_argument("--verify-diagnostics", action="store_true",
                        help="with --split-input-file: each case's error must be its '// expected-error: ...' line")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hbdk-sim", description="hbdk-sim: HBIR tools, compiler and simulator for the BPU.")
    p.add_argument("--version", action="version", version=f"hbdk-sim {_core.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    d = sub.add_parser("dump", help="print an .hbir file in canonical text form")
    d.add_argument("file", help="an .hbir file")
    d.add_argument("--summary", action="store_true", help="print ops by kind, parameters and MACs instead")
    _split_flags(d)
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
    o.add_argument("--march", help="target march (name or JSON path), for fuse, check-constraints, lower")
    _split_flags(o)
    o.set_defaults(func=cmd_opt)

    c = sub.add_parser("compile", help="compile a calibrated .hbir model to an .hbm binary "
                                       "(and FILE.perf.json, FILE.perf.html beside it)")
    c.add_argument("file", help="an .hbir file (float with calibration scales, or quantized)")
    c.add_argument("--march", default="bpu", help="target march: a shipped name or a JSON path (default: bpu)")
    c.add_argument("-o", "--output", help="output .hbm file (default: FILE with suffix .hbm)")
    c.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    c.add_argument("--json", action="store_true", help="machine-readable summary on stdout")
    c.add_argument("--time-passes", action="store_true", help="report wall time per pass (stderr)")
    c.add_argument("--print-program", action="store_true",
                   help="print the lowered program with each instruction's tiling and scheduled cycles instead of "
                        "writing the .hbm")
    c.set_defaults(func=cmd_compile)

    pf = sub.add_parser("perf", help="estimate cycles, latency, fps and DDR traffic of a model on a march")
    pf.add_argument("file", help="an .hbm file, or an .hbir file (compiled first)")
    pf.add_argument("--march", help="target march: a shipped name or a JSON path (default: the .hbm's march, "
                                    "bpu for an .hbir)")
    pf.add_argument("--json", action="store_true", help="the full report as JSON on stdout instead of the table")
    pf.add_argument("--html", metavar="OUT.html", help="also write the self-contained HTML report here")
    pf.add_argument("--force", action="store_true", help="overwrite --html if it exists")
    pf.set_defaults(func=cmd_perf)

    k = sub.add_parser("check", help="check a model against a march's operator constraints (exit 1 if not)")
    k.add_argument("file", help="an .hbir file")
    k.add_argument("--march", default="bpu", help="target march: a shipped name or a JSON path (default: bpu)")
    k.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    k.set_defaults(func=cmd_check)

    r = sub.add_parser("run", help="run an .hbm bit-exactly on .npy inputs")
    r.add_argument("file", help="an .hbm file")
    r.add_argument("--input", action="append", metavar="NAME=FILE.npy", help="an input array; repeatable")
    r.add_argument("-o", "--output", default="out.npz", help="output .npz (default: out.npz)")
    r.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    r.add_argument("--reference", action="store_true", help="use the reference kernels only")
    r.add_argument("--threads", type=_threads, default=0,
                   help=f"worker threads, 0 to {api.MAX_EXECUTOR_THREADS} (default 0: one per hardware thread)")
    r.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    r.set_defaults(func=cmd_run)

    i = sub.add_parser("info", help="describe an .hbm file")
    i.add_argument("file", help="an .hbm file")
    i.add_argument("--json", action="store_true", help="machine-readable description on stdout")
    i.set_defaults(func=cmd_info)

    mh = sub.add_parser("marches", help="list the shipped marches and their key figures")
    mh.add_argument("--json", action="store_true", help="machine-readable list on stdout")
    mh.set_defaults(func=cmd_marches)

    ops = sub.add_parser("ops", help="list the HBIR ops (--coverage: what each has at every stage)")
    ops.add_argument("--coverage", action="store_true",
                     help="the op coverage matrix (kernels, quantize rule, instruction, marches, tracer, int_infer, "
                          "ONNX, bit-exact tests) as Markdown")
    ops.add_argument("--json", action="store_true", help="the coverage matrix as JSON")
    ops.set_defaults(func=cmd_ops)
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
    except UserError as e:
        print(f"hbdk-sim: error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("hbdk-sim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except MemoryError:
        print("hbdk-sim: error: out of memory; the input is larger than this machine can hold", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
