"""A cycle-model result shaped like `_core.estimate_hbm`'s dict, built by a small in-order schedule
so the report tests do not depend on the estimator's numbers: five layers (two MAC-array convs, a
depthwise conv, a vector pool, a GEMM), each loading weights and activations over DMA and storing
its output when it does not stay in SRAM."""

from __future__ import annotations

# (layer, op, output shape, MACs, compute cycles, DMA cycles, DDR read, DDR write)
LAYERS = [
    ("conv1", "conv2d", [1, 32, 56, 56], 10_838_016, 1_490, 2_600, 81_000, 0),
    ("dw2", "conv2d", [1, 32, 56, 56], 903_168, 3_200, 300, 300, 0),
    ("conv3", "conv2d", [1, 64, 56, 56], 6_422_528, 890, 400, 2_048, 0),
    ("pool4", "avg_pool2d", [1, 64, 1, 1], 0, 1_600, 0, 0, 0),
    ("fc5", "gemm", [1, 1000], 64_000, 120, 90, 2_048, 1_000),
]
CLOCK_MHZ = 1000.0
PEAK_MACS_PER_CYCLE = 8192
DDR_BYTES_PER_CYCLE = 25.6


def estimate() -> dict:
    layers, timeline = [], []
    dma_free = mac_free = vec_free = 0
    instruction = 0
    for name, op, shape, macs, compute, dma, rd, wr in LAYERS:
        unit = "mac_array" if op in ("conv2d", "gemm") else "vector"
        ready = dma_free
        if dma:
            load_start = dma_free
            dma_free = load_start + dma
            timeline.append({"instruction": instruction, "unit": "dma", "start": load_start, "end": dma_free})
            instruction += 1
            ready = dma_free
        free = mac_free if unit == "mac_array" else vec_free
        prev_end = max(mac_free, vec_free)
        start = max(free, ready, prev_end)
        stall = max(0, ready - prev_end)
        end = start + compute
        timeline.append({"instruction": instruction, "unit": unit, "start": start, "end": end})
        instruction += 1
        if unit == "mac_array":
            mac_free = end
        else:
            vec_free = end
        roof = max(-(-macs // PEAK_MACS_PER_CYCLE), int((rd + wr) / DDR_BYTES_PER_CYCLE))
        util = macs / (compute * PEAK_MACS_PER_CYCLE) if macs else 0.0
        layers.append({"layer": name, "op": op, "output_shape": shape, "macs": macs, "compute_cycles": compute,
                       "memory_cycles": dma, "stall_cycles": stall, "total_cycles": end - prev_end,
                       "memory_bound": dma > compute, "utilization": util, "ddr_read_bytes": rd,
                       "ddr_write_bytes": wr, "roofline_cycles": roof})
    total = max(mac_free, vec_free, dma_free)
    macs = sum(x["macs"] for x in layers)
    rd = sum(x["ddr_read_bytes"] for x in layers)
    wr = sum(x["ddr_write_bytes"] for x in layers)
    latency_ms = total / (CLOCK_MHZ * 1e3)
    return {
        "march": "bpu", "clock_mhz": CLOCK_MHZ, "total_cycles": total,
        "compute_cycles": sum(x["compute_cycles"] for x in layers),
        "memory_cycles": sum(x["memory_cycles"] for x in layers),
        "stall_cycles": sum(x["stall_cycles"] for x in layers), "macs": macs, "ddr_read_bytes": rd,
        "ddr_write_bytes": wr, "on_chip_bytes": 602_112,
        "roofline_cycles": max(-(-macs // PEAK_MACS_PER_CYCLE), int((rd + wr) / DDR_BYTES_PER_CYCLE)),
        "latency_ms": latency_ms, "fps": 1e3 / latency_ms, "achieved_tops": 2 * macs / (latency_ms * 1e-3) / 1e12,
        "peak_tops": 2 * PEAK_MACS_PER_CYCLE * CLOCK_MHZ * 1e6 / 1e12,
        "mac_utilization": macs / (total * PEAK_MACS_PER_CYCLE), "layers": layers, "timeline": timeline,
    }


def program() -> list[dict]:
    """The `.hbm` program entries the timeline's instruction indices point at (opcode and layer only)."""
    out = []
    for name, op, *_rest in LAYERS:
        dma = _rest[2]
        if dma:
            out.append({"opcode": "load_weights", "layer": name})
        out.append({"opcode": op, "layer": name})
    return out
