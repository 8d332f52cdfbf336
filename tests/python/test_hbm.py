"""The .hbm format from Python: build from a quantized, fused module, load it back (graph, program,
I/O, perf summary, metadata, source hash), and refuse corrupted files with one HbmError each."""

from __future__ import annotations

import hashlib
import random
import struct
import zlib

import pytest
from hbdk_sim import _core, parse
from hbdk_sim.march import load_march

WEIGHTS = bytes((i * 7) % 31 for i in range(108))
BIAS = bytes((i * 3) % 17 for i in range(16))

TINY = f"""module @tiny {{
  func @main(%x: tensor<1x3x8x8xf32>) -> (tensor<1x4x4x4xf32>) {{
    %q = quantize(%x) : tensor<1x3x8x8xsi8, scale=0.05>
    %w = constant {{value = dense_resource<w>}} : tensor<4x3x3x3xsi8, scale=[0.01, 0.01, 0.02, 0.02], axis=0>
    %b = constant {{value = dense_resource<b>}} : tensor<4xsi32, scale=[0.0005, 0.0005, 0.001, 0.001], axis=0>
    %acc = conv2d(%q, %w, %b) {{stride = [1, 1], padding = [1, 1, 1, 1], dilation = [1, 1], groups = 1, bpu.group = 0, bpu.group_role = "anchor"}} : tensor<1x4x8x8xsi32, scale=[0.0005, 0.0005, 0.001, 0.001], axis=1> loc("conv1")
    %r = requantize(%acc) {{multiplier = [1073741824], shift = [35], axis = 1, bpu.group = 0, bpu.group_role = "requant"}} : tensor<1x4x8x8xsi8, scale=0.1>
    %y = relu(%r) {{bpu.group = 0, bpu.group_role = "activation"}} : tensor<1x4x8x8xsi8, scale=0.1>
    %p = max_pool2d(%y) {{kernel = [2, 2], stride = [2, 2]}} : tensor<1x4x4x4xsi8, scale=0.1>
    %o = dequantize(%p) : tensor<1x4x4x4xf32>
    return %o
  }}
}}

resources {{
  w = "0x{WEIGHTS.hex().upper()}"
  b = "0x{BIAS.hex().upper()}"
}}
"""

SECTIONS = ["graph", "constants", "program", "io", "perf", "metadata", "source_hash"]


@pytest.fixture(scope="module")
def good() -> bytes:
    return _core.build_hbm(parse(TINY, "tiny.hbir"), load_march("bpu_nano"), source_text=TINY,
                           source_name="tiny.hbir")


def entry(b: bytes, i: int) -> int:
    return struct.unpack_from("<I", b, 24)[0] + 24 * i


def section(b: bytes, i: int) -> tuple[int, int]:
    return struct.unpack_from("<QQ", b, entry(b, i) + 8)


def reseal(b: bytearray) -> bytearray:
    """Recompute the section CRCs and the file checksum so that content damage reaches the parsers."""
    for i in range(7):
        off, size = section(b, i)
        struct.pack_into("<I", b, entry(b, i) + 4, zlib.crc32(b[off:off + size]))
    struct.pack_into("<I", b, len(b) - 4, zlib.crc32(b[:-4]))
    return b


def rejected(data: bytes, message: str) -> None:
    with pytest.raises(_core.HbmError) as info:
        _core.load_hbm_bytes(bytes(data), "model.hbm")
    text = str(info.value)
    assert text.startswith("model.hbm: error: "), text
    assert "\n" not in text
    assert message in text, text


def test_round_trip(good: bytes, tmp_path):
    model = _core.load_hbm_bytes(good, "model.hbm")
    assert model.format_version == 1
    assert model.march == "bpu_nano"
    assert model.compiler_version == _core.__version__
    assert model.source_hash == hashlib.sha256(TINY.encode()).hexdigest()
    assert model.metadata["source_file"] == "tiny.hbir"
    assert model.metadata["source_hash_of"] == "input"
    assert model.inputs == [{"name": "x", "shape": [1, 3, 8, 8], "dtype": "f32", "quant_dtype": "si8",
                             "scales": [pytest.approx(0.05)], "axis": -1}]
    assert model.outputs[0]["shape"] == [1, 4, 4, 4]
    assert model.outputs[0]["scales"] == [pytest.approx(0.1)]
    assert model.perf_summary["macs"] == 4 * 8 * 8 * 27
    assert model.perf_summary["instructions"] == len(model.program) == 7
    assert [i["opcode"] for i in model.program] == [
        "load_activation", "quantize", "load_weights", "conv2d", "max_pool", "dequantize", "store_activation"]
    conv = model.program[3]
    assert conv["unit"] == "mac_array" and conv["post_ops"] == ["requantize", "clamp"]
    assert conv["layer"] == "conv1" and conv["macs"] == 6912
    assert conv["gemm"] == {"batch": 1, "m": 64, "n": 4, "k": 27}
    assert model.sram_plan["capacity_bytes"] == 512 * 1024
    # The graph is a Module that prints as the canonical input.
    assert model.module is model.module
    assert model.module.print() == parse(TINY).print() == model.graph_text
    # The same bytes from a file, and writing the loaded graph again.
    path = tmp_path / "tiny.hbm"
    path.write_bytes(good)
    assert _core.load_hbm(str(path)).program == model.program
    again = _core.build_hbm(model.module, load_march("bpu_nano"), source_text=TINY, source_name="tiny.hbir")
    assert again == good


def test_hash_of_graph_without_source(good: bytes):
    data = _core.build_hbm(parse(TINY), load_march("bpu_nano"))
    model = _core.load_hbm_bytes(data)
    assert model.metadata["source_hash_of"] == "graph"
    assert model.flags == 0
    assert model.source_hash != hashlib.sha256(TINY.encode()).hexdigest()


@pytest.mark.parametrize("cut", [0, 1, 7, 8, 20, 39, 40, 64, 200, 500, 1000, -100, -5, -4, -1])
def test_truncated(good: bytes, cut: int):
    data = good[:cut] if cut >= 0 else good[:len(good) + cut]
    rejected(data, "empty file" if not data else "truncated")


def test_header_damage(good: bytes):
    rejected(bytes(random.Random(1).randrange(256) for _ in range(500)), "not an .hbm file")
    rejected(b"module @m {}\n" * 10, "not an .hbm file")
    b = bytearray(good)
    struct.pack_into("<I", b, 8, 7)
    rejected(b, "unsupported format version 7")
    b = bytearray(good)
    struct.pack_into("<I", b, 12, 0x40)
    rejected(b, "unknown flags")
    b = bytearray(good)
    struct.pack_into("<I", b, 28, 0)
    rejected(b, "section count 0")
    rejected(good + b"\0\0\0\0", "trailing bytes")
    b = bytearray(good)
    b[-2] ^= 0x55
    rejected(b, "file checksum mismatch")


@pytest.mark.parametrize("index", range(7))
def test_flipped_byte_in_each_section(good: bytes, index: int):
    off, size = section(good, index)
    b = bytearray(good)
    b[off + size // 2] ^= 0x01
    rejected(b, f"section '{SECTIONS[index]}' is corrupt")


@pytest.mark.parametrize("index", range(7))
def test_bad_section_crc(good: bytes, index: int):
    b = bytearray(good)
    struct.pack_into("<I", b, entry(b, index) + 4, struct.unpack_from("<I", b, entry(b, index) + 4)[0] ^ 0x100)
    rejected(b, f"section '{SECTIONS[index]}' is corrupt")


def test_section_table_damage(good: bytes):
    b = bytearray(good)
    struct.pack_into("<Q", b, entry(b, 2) + 8, section(good, 1)[0])
    rejected(b, "overlap")
    b = bytearray(good)
    struct.pack_into("<Q", b, entry(b, 5) + 8, len(good) * 10)
    rejected(b, "section 'metadata' (offset")
    b = bytearray(good)
    struct.pack_into("<Q", b, entry(b, 1) + 16, 1 << 62)
    rejected(b, "lies outside the data area")
    b = bytearray(good)
    struct.pack_into("<I", b, entry(b, 3), 42)
    rejected(b, "unknown type 42")


def test_resealed_bad_contents(good: bytes):
    def sealed(index: int, at: int, value: int) -> bytearray:
        b = bytearray(good)
        b[section(good, index)[0] + at] = value
        return reseal(b)

    rejected(sealed(0, 0, ord("#")), "graph section does not parse")
    rejected(sealed(1, 3, 0x7F), "constant count")
    rejected(sealed(2, 3, 0x7F), "section 'program'")
    rejected(sealed(3, 8, ord("z")), "the I/O section describes input #0 as 'z'")
    rejected(sealed(4, 12, 0x01), "the perf summary records macs = 6913")
    rejected(sealed(5, 3, 0x7F), "metadata entry count")
    rejected(sealed(5, 8, 0xFF), "metadata key is not UTF-8 (byte 0xFF)")
    rejected(sealed(5, 9, 0xC3), "metadata key is not UTF-8 (byte 0xC3)")  # a lead byte without its continuation
    rejected(sealed(6, 0, 9), "unknown hash algorithm 9")


def test_random_damage_is_always_one_hbm_error(good: bytes):
    rng = random.Random(2024)
    for _ in range(300):
        b = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] ^= rng.randint(1, 255)
        if rng.random() < 0.3:
            del b[rng.randrange(len(b)):]
        with pytest.raises(_core.HbmError):
            _core.load_hbm_bytes(bytes(b))


def test_build_rejects_unlowerable_module():
    bad = TINY.replace(
        "%o = dequantize(%p) : tensor<1x4x4x4xf32>\n    return %o",
        "%o = dequantize(%p) : tensor<1x4x4x4xf32>\n    %s = sigmoid(%o) : tensor<1x4x4x4xf32>\n    return %s")
    with pytest.raises(_core.PassError, match="'sigmoid' op"):
        _core.build_hbm(parse(bad), load_march("bpu"))


def test_load_missing_file(tmp_path):
    with pytest.raises(_core.HbmError, match="cannot open"):
        _core.load_hbm(str(tmp_path / "missing.hbm"))
