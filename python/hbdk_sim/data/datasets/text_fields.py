"""Numbers in the text files of the raw dataset layouts (CarFusion's bb/gt lines, MOT's gt.txt), read
with one clear error naming the place (`where`, e.g. "file:line") and the field."""

from __future__ import annotations

import math

from hbdk_sim.errors import DatasetError


def parse_number(text: str, where: str, what: str) -> float:
    """`text` as a finite float."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DatasetError(f"{where}: {what} {text.strip()!r} is not a finite number; fix the line")
    return value


def parse_integer(text: str, where: str, what: str) -> int:
    """`text` as an integer (written as one, or as a float with no fraction, "3.0")."""
    value = parse_number(text, where, what)
    if value != int(value):
        raise DatasetError(f"{where}: {what} {text.strip()!r} is not an integer; fix the line")
    return int(value)
