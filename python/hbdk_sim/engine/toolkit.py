"""What every command-line tool shares: one-line errors with a non-zero exit instead of
tracebacks, and the usual `--config` / `--opts` arguments."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

# Errors a user can cause (bad config, missing file, unsupported model...) and fix from the message.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, TypeError, FileNotFoundError, FileExistsError,
                                                NotADirectoryError, PermissionError)


def _user_errors() -> tuple[type[BaseException], ...]:
    errors = list(USER_ERRORS)
    try:
        from hbdk_sim import _core

        errors.append(_core.HbirError)
        errors.append(_core.HbmError)
        errors.append(_core.MarchError)
    except ImportError:
        pass
    return tuple(errors)


def run_tool(name: str, main: Callable[[], int | None]) -> None:
    """Run `main`; a user error prints `name: error: message` (one line) and exits 1, Ctrl-C exits 130."""
    try:
        code = main()
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        sys.exit(130)
    except _user_errors() as e:
        message = " ".join((str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)).split())
        if message.startswith("error: "):  # the compiler's messages carry their own prefix
            message = message[len("error: "):]
        print(f"{name}: error: {message}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code or 0)


def config_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True, help="the task config file (models/<task>/<name>.py)")
    parser.add_argument("--opts", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. data_root=./data image_size=[128,256] float_epochs=3")
    return parser
