"""The errors a user can cause and fix from their one-line message. The command line and the tools
print `name: error: <message>` and exit 2 for these (and for the C++ core's HbirError family and the
OS errors of a path the user named, FILE_ERRORS); any other exception is a bug in hbdk-sim and keeps
its traceback. A check of our own invariants therefore raises a plain exception, never one of these.

Each class also derives from the builtin error Python code would expect there (ValueError, or
TypeError for an object of the wrong kind), so `except ValueError` in a caller keeps working. Every
class but InputFileError takes one message: a DataLoader worker's error is rebuilt in the main
process from its message alone, so datasets and transforms raise only the one-message classes."""

from __future__ import annotations

import os


class UserError(Exception):
    """Something the user gave (a config, a file, an argument, a model) is wrong; the message says
    what and how to fix it."""


class ConfigError(UserError, ValueError):
    """A config file that cannot be read or run, an override that does not fit the config, or a
    config entry that is missing or names nothing (an unknown registry `type`, a keyword argument
    the built class does not take)."""


class UsageError(UserError, ValueError):
    """A value that a public function, a constructor (a model, transform, callback or trainer) or a
    tool flag does not take: out of range, the wrong shape, an unknown choice, a batch without the
    key it needs."""


class UsageTypeError(UsageError, TypeError):
    """A UsageError where the value is an object of the wrong kind (a string where a module is
    expected)."""


class UnsupportedModelError(UserError, ValueError):
    """A model that the toolchain cannot trace, quantize, run as an integer model or export: the
    message names the op or module and what is supported."""


class CheckpointError(UserError, ValueError):
    """A checkpoint file that cannot be loaded, holds the wrong kind of state, or does not fit the
    model it is loaded into."""


class DatasetError(UserError, ValueError):
    """A packed dataset that is missing, damaged, interrupted, foreign or of another format version,
    or a raw dataset whose files do not pair up."""


class InputFileError(UserError, ValueError):
    """A user's input file that cannot be taken as it is (a device, a file over the size limit):
    `path` and the `reason`."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(str(path), reason)  # both in args: the error pickles and unpickles whole
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


# The OS errors of a path the user named: the user's by nature, whoever raised them.
FILE_ERRORS: tuple[type[OSError], ...] = (FileNotFoundError, FileExistsError, NotADirectoryError,
                                          IsADirectoryError, PermissionError)
