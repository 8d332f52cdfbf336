"""Pins SCALE-Sim 3's compute cycles for the layers tests/cpp/test_systolic.cpp and
tests/python/test_systolic.py check hbdk::perf::systolicComputeCycles against.

SCALE-Sim is a test-only oracle living in its own virtual environment (its pins are in
requirements-scalesim.txt next to this file). This script is run by hand, never by `make test`:

    python3 -m venv build/scalesim-venv
    build/scalesim-venv/bin/pip install -r tests/perf/requirements-scalesim.txt
    build/scalesim-venv/bin/python tests/perf/gen_scalesim_reference.py [--jobs N]

It writes tests/perf/scalesim_reference.json. SCALE-Sim runs in "CALC" interface-bandwidth mode with
64 MiB SRAMs, so no layer stalls; the script refuses to pin a value with stall cycles. Each entry also
records the GEMM SCALE-Sim itself derived from the layer (its get_transformed_mnk_dimensions), so the
tests never re-derive SCALE-Sim's convolution conventions.

`--time LAYER` instead prints SCALE-Sim's wall time for pinned layers as JSON (the benchmark in
benchmarks/test_perf_estimator.py calls it in this venv).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

OUT = Path(__file__).with_name("scalesim_reference.json")
ARRAYS = [(32, 32), (64, 128)]
DATAFLOWS = ["os", "ws", "is"]

CONFIG = """[general]
run_name = pin

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: 65536
FilterSramSzkB: 65536
OfmapSramSzkB: 65536
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Dataflow: {dataflow}
Bandwidth: 10
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


@dataclass(frozen=True)
class Conv:
    """A conv given with its PyTorch-padded input size (ifmap_h/w). SCALE-Sim never pads, and it takes
    the output size as ceil((H - R + s) / s), one more than PyTorch's floor((H - R) / s) + 1 when the
    stride leaves rows over; so SCALE-Sim is given the padded input trimmed to the rows the conv reads,
    R + s * floor((H - R) / s), for which both conventions agree."""

    name: str
    model: str
    note: str
    ifmap_h: int
    ifmap_w: int
    filter_h: int
    filter_w: int
    channels: int
    filters: int
    stride: int
    depthwise: bool = False  # SCALE-Sim splits a layer whose name contains "DP" per channel

    def read_extent(self, size: int, kernel: int) -> int:
        return kernel + self.stride * ((size - kernel) // self.stride)

    def topology(self) -> tuple[str, str]:
        h, w = self.read_extent(self.ifmap_h, self.filter_h), self.read_extent(self.ifmap_w, self.filter_w)
        # A "DP" name makes SCALE-Sim run `channels` single-channel layers; the others must avoid "DP".
        name = ("DP_" if self.depthwise else "L_") + self.name.replace("DP", "dp")
        header = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
        row = f"{name}, {h}, {w}, {self.filter_h}, {self.filter_w}, {self.channels}, {self.filters}, {self.stride},\n"
        return header + row, "conv"

    def describe(self) -> dict:
        return {
            "ifmap_h": self.ifmap_h,
            "ifmap_w": self.ifmap_w,
            "scalesim_ifmap_h": self.read_extent(self.ifmap_h, self.filter_h),
            "scalesim_ifmap_w": self.read_extent(self.ifmap_w, self.filter_w),
            "out_h": (self.ifmap_h - self.filter_h) // self.stride + 1,
            "out_w": (self.ifmap_w - self.filter_w) // self.stride + 1,
            "filter_h": self.filter_h,
            "filter_w": self.filter_w,
            "channels": self.channels,
            "filters": self.filters,
            "stride": self.stride,
            "depthwise": self.depthwise,
        }


@dataclass(frozen=True)
class Gemm:
    name: str
    model: str
    note: str
    m: int
    n: int
    k: int

    def topology(self) -> tuple[str, str]:
        return f"Layer, M, N, K,\nL_{self.name}, {self.m}, {self.n}, {self.k},\n", "gemm"

    def describe(self) -> dict:
        return {"m": self.m, "n": self.n, "k": self.k}


# Layers of the five task models (UNet-MobileNetV1, FCOS/keypoint EfficientNetB0, MOTR EfficientNetB3,
# CenterPoint), at modest resolutions so SCALE-Sim finishes in minutes. Padded sizes are written out.
LAYERS = [
    Conv("stem_3x3_s2", "unet_mobilenetv1", "3->32 3x3 s2 p1 on 96x96 (padded to 98x98)", 98, 98, 3, 3, 3, 32, 2),
    Conv(
        "dw_3x3_s1",
        "unet_mobilenetv1",
        "depthwise 3x3 s1 p1, 32 ch on 48x48 (padded to 50x50)",
        50,
        50,
        3,
        3,
        32,
        1,
        1,
        depthwise=True,
    ),
    Conv("pw_1x1_64_128", "unet_mobilenetv1", "pointwise 1x1 64->128 on 24x24", 24, 24, 1, 1, 64, 128, 1),
    Conv("conv_7x7_s2", "centerpoint", "3->64 7x7 s2 p3 on 64x64 (padded to 70x70)", 70, 70, 7, 7, 3, 64, 2),
    Conv(
        "conv_3x3_256", "unet_mobilenetv1", "3x3 256->256 s1 p1 on 14x14 (padded to 16x16)", 16, 16, 3, 3, 256, 256, 1
    ),
    Conv(
        "convT_2x2_s2_as_conv",
        "unet_mobilenetv1",
        "conv_transpose 2x2 s2 64->32 on 16x16 = stride-1 2x2 conv over the zero-stuffed input "
        "(31x31) padded by k-1-p=1 on each side (33x33)",
        33,
        33,
        2,
        2,
        64,
        32,
        1,
    ),
    Conv(
        "convT_3x3_s2_as_conv",
        "centerpoint",
        "conv_transpose 3x3 s2 p1 op1 128->64 on 8x8 = stride-1 3x3 conv over the zero-stuffed input "
        "(15x15) padded by 1 before and 2 after (18x18)",
        18,
        18,
        3,
        3,
        128,
        64,
        1,
    ),
    Conv(
        "dw_5x5_s2",
        "fcos_efficientnetb0",
        "depthwise 5x5 s2 p2, 24 ch on 28x28 (padded to 32x32)",
        32,
        32,
        5,
        5,
        24,
        1,
        2,
        depthwise=True,
    ),
    Conv("pw_1x1_1152_192", "motr_efficientnetb3", "pointwise 1x1 1152->192 on 7x7", 7, 7, 1, 1, 1152, 192, 1),
    Conv("bev_3x3_64", "centerpoint", "3x3 64->64 s1 p1 on a 64x64 BEV map (padded to 66x66)", 66, 66, 3, 3, 64, 64, 1),
    Conv(
        "conv_3x3_s2_40_80",
        "fcos_efficientnetb0",
        "3x3 40->80 s2 p1 on 28x28 (padded to 30x30)",
        30,
        30,
        3,
        3,
        40,
        80,
        2,
    ),
    Conv("head_1x1_17", "keypoint_efficientnetb0", "heatmap head 1x1 64->17 on 32x32", 32, 32, 1, 1, 64, 17, 1),
    Gemm("linear_300x256x256", "motr_efficientnetb3", "transformer linear: 300 queries, 256->256", 300, 256, 256),
    Gemm("linear_1x1280x1000", "fcos_efficientnetb0", "classifier linear: 1 row, 1280->1000", 1, 1000, 1280),
    Gemm("matmul_qk_300x300x32", "motr_efficientnetb3", "attention Q.K^T of one head: 300x32 by 32x300", 300, 300, 32),
    Gemm("matmul_av_300x32x300", "motr_efficientnetb3", "attention A.V of one head: 300x300 by 300x32", 300, 32, 300),
]

# Small GEMMs on odd, non-square arrays: they pin the folding edge cases (partial folds, a dimension
# smaller than the array, a 1-wide array) that the model layers on power-of-two arrays do not reach.
ODD = [
    (Gemm("odd_10x7x13", "edge", "", 10, 7, 13), (8, 4)),
    (Gemm("odd_1x1x1", "edge", "", 1, 1, 1), (3, 5)),
    (Gemm("odd_33x5x2", "edge", "", 33, 5, 2), (1, 7)),
    (Gemm("odd_6x40x9", "edge", "", 6, 40, 9), (7, 1)),
    (Gemm("odd_17x17x17", "edge", "", 17, 17, 17), (16, 16)),
    (Gemm("odd_64x3x100", "edge", "", 64, 3, 100), (12, 9)),
    # The same tiny GEMM on both model arrays: the bigger array is slower (every fold pays its skew).
    (Gemm("tiny_1x1x1", "edge", "", 1, 1, 1), (32, 32)),
    (Gemm("tiny_1x1x1", "edge", "", 1, 1, 1), (64, 128)),
]


def run_scalesim(layer, rows: int, cols: int, dataflow: str) -> dict:
    """Runs one layer; returns SCALE-Sim's per-layer compute report summed over its layers."""
    from scalesim.scale_sim import scalesim

    with tempfile.TemporaryDirectory() as d:
        cfg, topo, lay = Path(d, "c.cfg"), Path(d, "t.csv"), Path(d, "l.csv")
        cfg.write_text(CONFIG.format(rows=rows, cols=cols, dataflow=dataflow))
        text, kind = layer.topology()
        topo.write_text(text)
        lay.write_text("Layer name,\n")  # no custom layouts; SCALE-Sim still opens the file
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            sim = scalesim(
                save_disk_space=True,
                verbose=False,
                config=str(cfg),
                topology=str(topo),
                layout=str(lay),
                input_type_gemm=kind == "gemm",
            )
            sim.run_scale(top_path=str(Path(d, "out")))
        seconds = time.perf_counter() - start
        reports = [o.get_compute_report_items() for o in sim.runner.single_layer_sim_object_list]
        mnk = sim.topo.get_transformed_mnk_dimensions()
    # Report items: total incl. DRAM prefetch, total compute cycles, stall cycles, utilizations.
    stalls = sum(int(r[2]) for r in reports)
    if stalls:
        raise SystemExit(f"{layer.name} {dataflow} {rows}x{cols}: SCALE-Sim reported {stalls} stall cycles")
    if any(x != mnk[0] for x in mnk):
        raise SystemExit(f"{layer.name}: SCALE-Sim layers disagree on M,N,K: {mnk}")
    # SCALE-Sim's "M" here counts output elements (pixels x filters); the array's M is pixels.
    m, n, k = mnk[0][0] // mnk[0][1], mnk[0][1], mnk[0][2]
    return {
        "compute_cycles": sum(int(r[1]) - int(r[2]) for r in reports),
        "stall_cycles": stalls,
        "scalesim_layers": len(reports),
        "gemm": {"m": m, "n": n, "k": k, "batch": len(reports)},
        "seconds": seconds,
    }


def _job(args):
    layer, rows, cols, dataflow = args
    res = run_scalesim(layer, rows, cols, dataflow)
    entry = {
        "name": layer.name,
        "model": layer.model,
        "kind": "conv" if isinstance(layer, Conv) else "gemm",
        "note": layer.note,
        "layer": layer.describe(),
        "rows": rows,
        "cols": cols,
        "dataflow": dataflow,
    }
    entry.update({k: v for k, v in res.items() if k != "seconds"})
    if isinstance(layer, Conv):
        d = entry["layer"]
        ch = 1 if layer.depthwise else layer.channels
        want = {
            "m": d["out_h"] * d["out_w"],
            "n": layer.filters,
            "k": layer.filter_h * layer.filter_w * ch,
            "batch": layer.channels if layer.depthwise else 1,
        }
    else:
        want = {"m": layer.m, "n": layer.n, "k": layer.k, "batch": 1}
    if res["gemm"] != want:
        raise SystemExit(f"{layer.name}: SCALE-Sim's GEMM {res['gemm']} is not the expected {want}")
    print(
        f"{layer.name:26s} {dataflow} {rows:3d}x{cols:<3d} {res['compute_cycles']:>9d} cycles ({res['seconds']:.1f} s)",
        file=sys.stderr,
        flush=True,
    )
    return entry


def generate(jobs: int) -> None:
    work = [(layer, r, c, df) for layer in LAYERS for (r, c) in ARRAYS for df in DATAFLOWS]
    work += [(layer, r, c, df) for layer, (r, c) in ODD for df in DATAFLOWS]
    with multiprocessing.Pool(jobs) as pool:
        entries = pool.map(_job, work, chunksize=1)
    doc = {
        "generator": "tests/perf/gen_scalesim_reference.py",
        "scalesim_version": metadata.version("scalesim"),
        "numpy_version": metadata.version("numpy"),
        "mode": "CALC interface bandwidth, 64 MiB SRAMs: no stalls; compute_cycles = SCALE-Sim's "
        "'Total Cycles' minus 'Stall Cycles' of its COMPUTE_REPORT, summed over its layers",
        "entries": entries,
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(entries)} entries to {OUT}", file=sys.stderr)


def time_layers(names: list[str], rows: int, cols: int, dataflow: str) -> None:
    import scalesim.scale_sim  # noqa: F401  (imported before timing: only the simulation is timed)

    by_name = {layer.name: layer for layer in LAYERS}
    out = {}
    for name in names:
        start = time.perf_counter()
        res = run_scalesim(by_name[name], rows, cols, dataflow)
        out[name] = {
            "seconds": time.perf_counter() - start,
            "compute_cycles": res["compute_cycles"],
            "gemm": res["gemm"],
        }
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=max(1, multiprocessing.cpu_count()))
    ap.add_argument("--time", nargs="+", metavar="LAYER", help="time SCALE-Sim on these pinned layers")
    ap.add_argument("--array", default="32x32", help="array for --time, ROWSxCOLS")
    ap.add_argument("--dataflow", default="os", choices=DATAFLOWS, help="dataflow for --time")
    args = ap.parse_args()
    if args.time:
        rows, cols = (int(x) for x in args.array.split("x"))
        time_layers(args.time, rows, cols, args.dataflow)
    else:
        generate(args.jobs)


if __name__ == "__main__":
    main()
