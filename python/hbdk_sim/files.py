"""The user's files: written safely (never replacing an existing file unless asked, never leaving a
half-written one behind: the bytes go to a temporary file in the same folder, then are renamed) and
read with a size limit (a device or a huge file is refused before it fills the memory)."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from hbdk_sim.errors import InputFileError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def refuse_existing(paths: Iterable[str | os.PathLike], overwrite: bool,
                    hint: str = "pass overwrite=True (or --force) to replace it") -> None:
    """Raise FileExistsError for the first of `paths` that exists, unless `overwrite`. Called before
    any work, so a refusal costs nothing and leaves no half-written set of files."""
    if overwrite:
        return
    for path in paths:
        if Path(path).exists():
            raise FileExistsError(f"{path} exists; {hint}")


def write_file(path: str | os.PathLike, data: bytes, *, overwrite: bool = False) -> Path:
    """Write `data` to `path` atomically, with the permissions a plain open() would give.

    Raises FileExistsError when `path` exists and `overwrite` is false."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (or --force) to replace it")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        # mkstemp creates 0600; a user's output file should get the usual 0666 & ~umask.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# The most a model or data file may hold; larger ones are refused before they are read. A model's
# weights in hex text take twice their bytes, so this admits about 2 GB of weights.
MAX_INPUT_BYTES = 4 << 30


def read_bytes(path: str | os.PathLike, what: str = "file", limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a user's input file, read with a size limit: a regular file larger than `limit`
    and a device (/dev/zero, /dev/urandom) are refused with an InputFileError naming the path; a FIFO is
    read (it blocks until written, as any Unix tool's input does) up to `limit`."""
    path = Path(path)
    st = path.stat()  # FileNotFoundError / PermissionError name the path themselves
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{path}: is a directory, expected {what}")
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISSOCK(st.st_mode):
        raise InputFileError(path, f"is a device, not {what}; give the path of a regular file")
    if stat.S_ISREG(st.st_mode) and st.st_size > limit:
        raise InputFileError(path, f"{st.st_size:,} bytes is more than the {limit:,} bytes {what} may have")
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise InputFileError(path, f"more than the {limit:,} bytes {what} may have")
    return data
