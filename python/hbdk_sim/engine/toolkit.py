"""What every command-line tool shares: one-line errors with exit status 2 instead of tracebacks
(a model the march rejects is the tools' status 1), and the usual `--config` / `--opts` arguments."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hbdk_sim import _core
from hbdk_sim.errors import FILE_ERRORS, UserError

# What a user can cause and fix from the message: the UserError family, the core's own errors (a
# malformed .hbir, .hbm or march file; a model the compiler refuses) and the OS errors of a path the
# user named. Anything else, a KeyError or TypeError included, is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, _core.HbirError, *FILE_ERRORS)

EXIT_USER_ERROR = 2

_OUT_OF_MEMORY = "out of memory: the inputs are larger than this machine can hold; use a smaller size"


def _is_allocation_failure(e: BaseException) -> bool:
    # torch reports a failed CPU allocation as a RuntimeError, not a MemoryError.
    return isinstance(e, RuntimeError) and ("DefaultCPUAllocator" in str(e) or "not enough memory" in str(e))


def _one_line(message: str) -> str:
    """The message as one line. An error raised in a DataLoader worker arrives with the worker's
    traceback inside its text ("Caught DatasetError in DataLoader worker process 0. Original Traceback
    ... DatasetError: <message>"): only its last line, the original message, is kept."""
    if "Original Traceback" in message:
        last = [line for line in message.splitlines() if line.strip()][-1]
        kind, sep, rest = last.partition(": ")
        message = rest if sep and kind.replace(".", "").replace("_", "").isalnum() else last
    return " ".join(message.split())


def run_tool(name: str, main: Callable[[], int | None]) -> None:
    """Run `main`; a user error prints `name: error: message` (one line) and exits 2, Ctrl-C exits 130."""
    try:
        code = main()
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        sys.exit(130)
    except USER_ERRORS as e:
        message = _one_line(str(e))
        if message.startswith("error: "):  # the compiler's messages carry their own prefix
            message = message[len("error: "):]
        print(f"{name}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except (MemoryError, RuntimeError) as e:
        if not isinstance(e, MemoryError) and not _is_allocation_failure(e):
            raise
        print(f"{name}: error: {_OUT_OF_MEMORY}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    sys.exit(code or 0)


class ToolParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (`prog: error: ... (see --help)`) with exit status 2;
    `prog` defaults to the script's name without `.py`, as run_tool names the tool."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("prog", Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else None)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def count_arg(low: int, high: int) -> Callable[[str], int]:
    """An argparse `type` for an integer flag in [low, high]: anything else is a one-line usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, got {text!r}")
        return value

    return parse


def config_parser(description: str) -> argparse.ArgumentParser:
    parser = ToolParser(description=description)
    parser.add_argument("--config", required=True, help="the task config file (models/<task>/<name>.py)")
    parser.add_argument("--opts", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. data_root=./data image_size=[128,256] float_epochs=3")
    return parser
