"""Writing the user's files safely: never replace an existing file unless asked, and never leave a
half-written one behind (the bytes go to a temporary file in the same folder, then are renamed)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


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
