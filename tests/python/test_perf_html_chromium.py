"""The HTML report in a real browser: headless Chromium (Debian's `chromium`, which `make test`
installs when it can) loads the page with no network, and the charts must have drawn: the inline
SVG nodes survive in the DOM, and the screenshot shows the bar and lane colours where the charts are."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import perf_fixture
import pytest
from hbdk_sim.perf_report import COLOURS, PerfReport

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it as root "
                                                          "on Debian: apt-get install chromium)")
WIDTH, HEIGHT = 1400, 2000


def _chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
           "--hide-scrollbars", "--force-device-scale-factor=1", f"--user-data-dir={cwd / 'profile'}", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def _decode_png(data: bytes) -> np.ndarray:
    """An 8-bit RGB or RGBA, non-interlaced PNG as an (H, W, 3) uint8 array."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat, header = 8, [], None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
    bpp = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8).reshape(height, 1 + width * bpp)
    out = np.zeros((height, width * bpp), dtype=np.uint8)
    prev = np.zeros(width * bpp, dtype=np.uint8)
    for y in range(height):
        f, line = raw[y, 0], raw[y, 1:]
        if f == 0:
            cur = line.copy()
        elif f == 1:  # Sub: a running sum per channel, modulo 256
            cur = np.cumsum(line.reshape(width, bpp).astype(np.int64), axis=0).astype(np.uint8).reshape(-1)
        elif f == 2:
            cur = line + prev
        elif f in (3, 4):  # Average and Paeth depend on the decoded left byte: one byte at a time
            cur_l = bytearray(line.tobytes())
            up = prev.tobytes()
            for i in range(len(cur_l)):
                a = cur_l[i - bpp] if i >= bpp else 0
                b = up[i]
                if f == 3:
                    cur_l[i] = (cur_l[i] + ((a + b) >> 1)) & 0xFF
                else:
                    c = up[i - bpp] if i >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                    cur_l[i] = (cur_l[i] + pred) & 0xFF
            cur = np.frombuffer(bytes(cur_l), dtype=np.uint8)
        else:
            raise ValueError(f"bad PNG filter {f} on row {y}")
        out[y] = cur
        prev = cur
    return out.reshape(height, width, bpp)[:, :, :3]


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)


def _mask(img: np.ndarray, hex_colour: str, tol: int = 6) -> np.ndarray:
    return (np.abs(img.astype(np.int16) - _rgb(hex_colour)) <= tol).all(axis=2)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[Path, PerfReport]:
    d = tmp_path_factory.mktemp("perf_html")
    report = PerfReport.from_estimate(perf_fixture.estimate(), model="fixture", program=perf_fixture.program())
    path = d / "fixture.perf.html"
    path.write_text(report.to_html(), encoding="utf-8")
    return path, report


def test_svg_nodes_survive_in_the_dom(page):
    path, report = page
    run = _chromium("--dump-dom", path.as_uri(), cwd=path.parent)
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    assert len(re.findall(r"<svg\b", dom)) == 2
    assert len(re.findall(r'<g class="row"', dom)) == len(report.layers)
    assert len(re.findall(r'<rect class="ev ', dom)) == len(report.timeline)
    assert len(re.findall(r"<tr>", dom)) == 1 + len(report.layers)


def test_screenshot_shows_the_charts(page):
    path, report = page
    shot = path.parent / "shot.png"
    run = _chromium(f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", path.as_uri(), cwd=path.parent)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    img = _decode_png(shot.read_bytes())
    assert img.shape == (HEIGHT, WIDTH, 3)
    assert img.std() > 10, "the screenshot is blank"

    def bar_rows(colour: str, min_run: int = 40) -> np.ndarray:
        """Rows holding a horizontal run of `colour` at least `min_run` pixels long: a chart bar, not a
        legend swatch or a glyph."""
        mask = _mask(img, colour)
        rows = []
        for y in np.nonzero(mask.any(axis=1))[0]:
            edges = np.diff(np.concatenate(([0], mask[y].astype(np.int8), [0])))
            starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
            if (ends - starts).max() >= min_run:
                rows.append(y)
        return np.array(rows, dtype=int)

    # The layer chart: compute bars on both units and a stall segment, starting right of the labels.
    mac, vec, stall = (bar_rows(COLOURS[k]) for k in ("mac_array", "vector", "stall"))
    assert len(mac) and len(vec) and len(stall), "no chart bars drawn"
    first_bar = mac.min()
    assert stall.min() == first_bar  # conv1's stall continues its compute bar on the same row
    cols = np.nonzero(_mask(img[first_bar:first_bar + 10], COLOURS["mac_array"]).any(axis=0))[0]
    assert cols.min() > 250, "bars start right of the layer labels"
    chart_bottom = stall.max()
    chart_vec = vec[vec < first_bar + 20 * len(report.layers)]
    assert len(chart_vec), "the vector-unit layer's bar is missing"

    # The timeline below it: MAC array, vector and DMA lanes, top to bottom.
    dma = bar_rows(COLOURS["dma"])
    lanes_mac = mac[mac > chart_bottom + 60]
    lanes_vec = vec[vec > chart_bottom + 60]
    assert len(lanes_mac) and len(lanes_vec) and len(dma), "no timeline lanes drawn"
    assert lanes_mac.max() < lanes_vec.min() and lanes_vec.max() < dma.min()
    assert dma.min() > chart_bottom
