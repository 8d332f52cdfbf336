"""Several cases in one text file, as mlir-opt's `--split-input-file` reads them: the cases are
separated by lines that hold only `// -----`; `hbdk-sim dump` and `opt` parse and process each on
its own (its errors keep the whole file's line numbers) and print the outputs separated by the
same line. With `--verify-diagnostics` a case states the error it must give on a line
`// expected-error: LINE:COL: error: MESSAGE` (lines counted from the case's first line), a case
without one must succeed, and the exit status is 1 when any case does otherwise. The C++ tests
read the same form (tests/cpp/text_cases.h).
"""

from __future__ import annotations

SPLIT_MARKER = "// -----"
EXPECTED_ERROR = b"// expected-error: "


def split_cases(data: bytes) -> list[tuple[int, bytes]]:
    """The cases of a split input: (line number of the case's first line, its bytes)."""
    parts, start, lines = [], 1, []
    for number, line in enumerate(data.split(b"\n"), 1):
        if line.rstrip(b"\r") == SPLIT_MARKER.encode():
            parts.append((start, b"\n".join(lines) + b"\n"))
            start, lines = number + 1, []
        else:
            lines.append(line)
    parts.append((start, b"\n".join(lines)))
    return parts


def expected_errors(part: bytes) -> list[str]:
    """The errors a case states, in order."""
    found = []
    for line in part.split(b"\n"):
        at = line.find(EXPECTED_ERROR)
        if at >= 0:
            found.append(line[at + len(EXPECTED_ERROR):].decode("utf-8", "replace").strip())
    return found
