// Python access to the cycle model: estimate a loaded .hbm, or lower a quantized, fused module for a
// march and estimate it. Both return plain dicts (totals, "layers", "timeline") that the Python
// report (hbdk_sim.perf) formats.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/handles.h"
#include "bindings/hbm_model.h"
#include "isa/program.h"
#include "march/march.h"
#include "passes/pass.h"
#include "perf/cycle_model.h"

namespace py = pybind11;
using namespace hbdk;

namespace {

// The program's function in `m`, when its op indices can be trusted (same op count).
const ir::Function* graphOf(const ir::Module& m, const isa::Program& p) {
  for (const auto& fn : m.functions)
    if (fn->name == p.function && fn->ops.size() == p.opCount) return fn.get();
  return nullptr;
}

py::dict toPy(const perf::PerfResult& r, const isa::Program& program) {
  py::list layers, timeline;
  for (const perf::LayerPerf& l : r.layers) {
    py::dict d;
    d["layer"] = l.layer;
    d["op"] = l.op;
    d["unit"] = isa::unitName(program.instructions[l.instruction].unit);
    d["instruction"] = l.instruction;
    d["output_shape"] = l.outputShape;
    d["macs"] = l.macs;
    d["compute_cycles"] = l.computeCycles;
    d["memory_cycles"] = l.memoryCycles;
    d["stall_cycles"] = l.stallCycles;
    d["total_cycles"] = l.totalCycles;
    d["start"] = l.start;
    d["end"] = l.end;
    d["bound"] = l.memoryBound ? "memory" : "compute";
    d["utilization"] = l.utilization;
    d["ddr_read_bytes"] = l.ddrReadBytes;
    d["ddr_write_bytes"] = l.ddrWriteBytes;
    d["roofline_cycles"] = l.rooflineCycles;
    layers.append(d);
  }
  for (const perf::TimelineEvent& e : r.timeline) {
    const isa::Instruction& in = program.instructions[e.instruction];
    timeline.append(py::dict(py::arg("instruction") = e.instruction, py::arg("unit") = isa::unitName(e.unit),
                             py::arg("opcode") = isa::opcodeName(in.opcode), py::arg("layer") = in.layer,
                             py::arg("start") = e.start, py::arg("end") = e.end));
  }
  py::dict d;
  d["march"] = r.march;
  d["clock_mhz"] = r.clockMHz;
  d["total_cycles"] = r.totalCycles;
  d["compute_cycles"] = r.computeCycles;
  d["memory_cycles"] = r.memoryCycles;
  d["stall_cycles"] = r.stallCycles;
  d["macs"] = r.macs;
  d["ddr_read_bytes"] = r.ddrReadBytes;
  d["ddr_write_bytes"] = r.ddrWriteBytes;
  d["on_chip_bytes"] = r.onChipBytes;
  d["roofline_cycles"] = r.rooflineCycles;
  d["latency_ms"] = r.latencyMs;
  d["fps"] = r.fps;
  d["achieved_tops"] = r.achievedTops;
  d["peak_tops"] = r.peakTops;
  d["mac_utilization"] = r.macUtilization;
  d["layers"] = layers;
  d["timeline"] = timeline;
  return d;
}

}  // namespace

void bindPerf(py::module_& m) {
  m.def(
      "estimate_hbm",
      [](const bindings::PyHbmModel& h, const march::March& march) {
        const isa::Program& program = h.model.program;
        const ir::Function* graph = nullptr;
        if (py::isinstance<bindings::PyModule>(h.module))
          graph = graphOf(h.module.cast<const bindings::PyModule&>().m(), program);
        return toPy(perf::estimate(program, march, graph), program);
      },
      py::arg("hbm_model"), py::arg("march"),
      "Estimate the cycles of a loaded .hbm on `march` (the march it was compiled for): a dict of totals, "
      "'layers' and 'timeline'. See docs/perf_model.md.");
  m.def(
      "estimate_module",
      [](const bindings::PyModule& module, const march::March& march) {
        isa::Program program;
        passes::PassContext ctx;
        ctx.march = &march;
        ctx.program = &program;
        passes::createPass("lower")->run(module.m(), ctx);
        return toPy(perf::estimate(program, march, graphOf(module.m(), program)), program);
      },
      py::arg("module"), py::arg("march"),
      "Lower a quantized, fused module for `march` and estimate its cycles (as estimate_hbm). The module is "
      "unchanged.");
}
