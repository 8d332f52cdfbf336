// The cycle model: costs every instruction of a lowered program on its unit (MAC array, vector
// unit, DMA) from the march description, then schedules them in order, overlapping DMA with
// compute where the SRAM plan double-buffers, respecting data dependencies. The model is stated
// in docs/perf_model.md next to this code; every number it produces is deterministic.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/ir.h"
#include "isa/program.h"
#include "march/march.h"

namespace hbdk::perf {

// One instruction placed on its unit's timeline.
struct TimelineEvent {
  uint32_t instruction = 0;
  isa::Unit unit = isa::Unit::Vector;
  int64_t start = 0;  // cycle
  int64_t end = 0;    // cycle (exclusive)
};

// One layer: a compute instruction (a fused group or a single op) with the DMA that serves it.
struct LayerPerf {
  std::string layer;  // location name of the anchor op
  std::string op;     // opcode name of the compute instruction
  std::vector<int64_t> outputShape;
  int64_t macs = 0;
  int64_t computeCycles = 0;  // on the MAC array or vector unit, no stalls
  int64_t memoryCycles = 0;   // DMA cycles of the transfers this layer needs
  int64_t stallCycles = 0;    // cycles the compute unit waited for data beyond its own work
  int64_t totalCycles = 0;    // from the layer's first to its last cycle on the critical path
  bool memoryBound = false;   // memoryCycles > computeCycles
  double utilization = 0;     // macs / (computeCycles... see docs) for MAC-array layers, else 0
  int64_t ddrReadBytes = 0;
  int64_t ddrWriteBytes = 0;
  int64_t rooflineCycles = 0;  // max(macs / peak MACs per cycle, DDR bytes / DDR bytes per cycle)
  int64_t start = 0;           // first cycle of the layer's first event (DMA or compute)
  int64_t end = 0;             // end of its last event; totalCycles = end - start
  uint32_t instruction = 0;    // index of the compute instruction in the program
};

struct PerfResult {
  std::string march;
  double clockMHz = 0;
  int64_t totalCycles = 0;
  int64_t computeCycles = 0;
  int64_t memoryCycles = 0;
  int64_t stallCycles = 0;
  int64_t macs = 0;
  int64_t ddrReadBytes = 0;
  int64_t ddrWriteBytes = 0;
  int64_t onChipBytes = 0;     // intermediate bytes kept in SRAM instead of DDR (saved traffic)
  int64_t rooflineCycles = 0;  // whole-model lower bound
  double latencyMs = 0;
  double fps = 0;
  double achievedTops = 0;
  double peakTops = 0;
  double macUtilization = 0;
  std::vector<LayerPerf> layers;
  std::vector<TimelineEvent> timeline;
};

// Throws ir::Error when the program was lowered for another march or is inconsistent.
PerfResult estimate(const isa::Program& program, const march::March& march);
// The same, reading per-op work the instructions do not carry (pool kernels, resize mode, reduced
// axis lengths) from the lowered function `graph` (the program's @main); without it the model falls
// back to the documented estimates from instruction byte counts.
PerfResult estimate(const isa::Program& program, const march::March& march, const ir::Function* graph);

}  // namespace hbdk::perf
