// The cycle model (docs/perf_model.md states it; this file is its only implementation):
//   cost    MAC array: systolic cycles of every output tile, scaled for int16, with the fused
//           vector epilogue overlapped tile by tile; depthwise convs on the depthwise datapath at
//           depthwise_macs_per_cycle, with the same epilogue; vector unit: element-ops * width / (lanes * rate);
//           DMA: DDR latency + bytes / min(DDR bytes per cycle, engines * bytes per cycle).
//   order   compute instructions issue in program order (one compute stream over the MAC array
//           and the vector unit); DMA transfers run on one queue in program order, except that a
//           layer's stores are queued after the next layer's weight loads (prefetch first).
//   overlap units consume transfers in bandwidth-delay chunks as they land (compute overlaps its
//           own loads and stores); a double-buffered load may start while the previous compute
//           still runs, a single-buffered one waits for the last user of its SRAM.
// Everything is closed form per instruction: no loop runs per cycle or per tile.
#include "perf/cycle_model.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "perf/systolic.h"

namespace hbdk::perf {

namespace {

using isa::Instruction;
using isa::Opcode;
using isa::Unit;

int64_t ceilDiv(int64_t a, int64_t b) { return b <= 0 ? a : (a + b - 1) / b; }

int64_t elemBytes(ir::ElemType t) { return std::max<int64_t>(1, static_cast<int64_t>(ir::elemTypeBytes(t))); }

// What the march gives the model, resolved once.
struct Machine {
  const march::March& m;
  double ddrBytesPerCycle = 0;  // DDR alone: the roofline's memory slope
  double dmaBytesPerCycle = 0;  // what a transfer achieves: min(DDR, DMA engines)
  int64_t peakInt8 = 0;

  explicit Machine(const march::March& march) : m(march) {
    if (march.clockMHz <= 0) throw ir::Error("march '" + march.name + "' has no clock");
    ddrBytesPerCycle = march.ddr.bandwidthGBps * 1e9 / (march.clockMHz * 1e6);
    dmaBytesPerCycle = std::min(ddrBytesPerCycle,
                                static_cast<double>(march.dma.engines) * static_cast<double>(march.dma.bytesPerCycle));
    if (!(dmaBytesPerCycle > 0)) throw ir::Error("march '" + march.name + "' has no DDR/DMA bandwidth");
    peakInt8 = peakMacs("int8");
  }

  int64_t peakMacs(const std::string& precision) const {
    return rateOf(m.macArray.macsPerCycle, "macs_per_cycle", precision);
  }
  int64_t depthwisePeakMacs(const std::string& precision) const {
    return rateOf(m.macArray.depthwiseMacsPerCycle, "depthwise_macs_per_cycle", precision);
  }
  int64_t rateOf(const std::map<std::string, int64_t>& table, const char* field, const std::string& precision) const {
    auto it = table.find(precision);
    if (it == table.end() || it->second <= 0)
      throw ir::Error("expected march '" + m.name + "' to give mac_array." + field + "." + precision +
                      " but it has none");
    return it->second;
  }

  // A unit consumes a transfer chunk by chunk as it lands: one chunk is what the DMA moves in one
  // DDR latency (the bandwidth-delay product), so the consumer is signalled once per latency.
  int64_t chunks(int64_t bytes) const {
    double chunk = std::max(64.0, dmaBytesPerCycle * static_cast<double>(std::max<int64_t>(1, m.ddr.latencyCycles)));
    return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(static_cast<double>(bytes) / chunk)));
  }
  int64_t transferCycles(int64_t bytes) const {
    if (bytes <= 0) return 0;
    return m.ddr.latencyCycles + static_cast<int64_t>(std::ceil(static_cast<double>(bytes) / dmaBytesPerCycle));
  }
  // The data phase of one tile of a transfer, without the latency (paid once per instruction).
  int64_t dataCycles(int64_t bytes) const {
    return bytes <= 0 ? 0 : static_cast<int64_t>(std::ceil(static_cast<double>(bytes) / dmaBytesPerCycle));
  }
};

std::string precisionOf(const Instruction& in) { return in.inputElem == ir::ElemType::SI16 ? "int16" : "int8"; }

// ---- vector unit ------------------------------------------------------------------------------

int64_t rate(const Machine& mc, Opcode op, const ir::Op* graphOp) {
  const auto& table = mc.m.vectorUnit.opsPerCyclePerLane;
  auto it = table.find(isa::opcodeName(op));
  if (it == table.end() && graphOp) it = table.find(std::string(graphOp->name()));
  return it == table.end() ? 1 : std::max<int64_t>(1, it->second);
}

int64_t vectorCycles(const Machine& mc, Opcode op, const ir::Op* graphOp, int64_t elementOps, int64_t width) {
  if (elementOps <= 0) return 0;
  return ceilDiv(elementOps * width, mc.m.vectorUnit.lanes * rate(mc, op, graphOp));
}

// Element-ops of a vector-unit instruction (or of a post-op fused into one: `g` is then that
// post-op's graph op, `elements` the group's outputs), by the opcode's VectorWork. Without the
// graph op, a windowed or reducing opcode falls back to the operand elements it reads per output.
int64_t vectorWork(const Instruction& in, Opcode op, const ir::Op* g, int64_t elements) {
  int64_t width = elemBytes(in.inputElem);
  int64_t ratio = std::max<int64_t>(1, ceilDiv(in.bytesIn, std::max<int64_t>(1, in.elements * width)));
  const ir::Value* x = g && g->numOperands() ? g->operand(0) : nullptr;
  switch (isa::vectorWorkOf(op)) {
    case isa::VectorWork::View: return 0;
    case isa::VectorWork::PerElement: return elements;
    case isa::VectorWork::Softmax:
    case isa::VectorWork::Normalize: return 3 * elements;
    case isa::VectorWork::Window:
      if (g && g->hasAttr("kernel")) {
        const auto& k = g->getInts("kernel");
        return elements * k.at(0) * (k.size() > 1 ? k[1] : k[0]);
      }
      return elements * ratio;
    case isa::VectorWork::Plane:
      if (x && x->type.rank() == 4) return elements * x->type.shape[2] * x->type.shape[3];
      return elements * ratio;
    case isa::VectorWork::Axis:
      if (x && g->hasAttr("axis")) {
        int64_t axis = g->getInt("axis");
        if (axis < 0) axis += static_cast<int64_t>(x->type.rank());
        if (axis >= 0 && axis < static_cast<int64_t>(x->type.rank()))
          return elements * x->type.shape[static_cast<size_t>(axis)];
      }
      return elements * ratio;
    case isa::VectorWork::SortNetwork:
      // A k-wide insertion network per input element: ceil(log2 k) + 1 compare stages.
      if (x && g->hasAttr("k")) {
        int64_t k = std::max<int64_t>(1, g->getInt("k")), stages = 1;
        while ((int64_t{1} << (stages - 1)) < k) ++stages;
        return x->type.numel() * stages;
      }
      return ceilDiv(in.bytesIn, width) * 2;
    case isa::VectorWork::Interpolate: {
      bool bilinear = g && g->hasAttr("mode") && g->attr("mode") == ir::Attribute(std::string("bilinear"));
      return elements * (bilinear ? 4 : 1);
    }
    case isa::VectorWork::NotVector: break;
  }
  return elements;  // a MAC-array anchor's requantize epilogue is charged per element too
}

// ---- MAC array --------------------------------------------------------------------------------

// Splits `total` into `parts` pieces of `full` (the last one takes the rest): {full, last, parts}.
struct Split {
  int64_t full, last, parts;
};
Split split(int64_t total, int64_t share, int64_t of) {
  int64_t full = std::max<int64_t>(1, ceilDiv(total * share, std::max<int64_t>(1, of)));
  full = std::min(full, total);
  int64_t parts = ceilDiv(total, full);
  return {full, total - (parts - 1) * full, parts};
}

// Systolic cycles of the instruction's output tiles as lowered: rows of the output split into row
// tiles (the GEMM's m), channels into column tiles (n, or groups for a grouped conv), outer items
// (batch) repeated. At most four distinct tile shapes, so four calls.
int64_t macArrayCycles(const Machine& mc, const Instruction& in) {
  const auto& mac = mc.m.macArray;
  if (in.gemmM <= 0 || in.gemmN <= 0 || in.gemmK <= 0 || in.gemmBatch <= 0)
    throw ir::Error("expected a MAC-array instruction (" + in.layer + ") with positive GEMM dims but got batch=" +
                    std::to_string(in.gemmBatch) + " m=" + std::to_string(in.gemmM) + " n=" + std::to_string(in.gemmN) +
                    " k=" + std::to_string(in.gemmK));
  int64_t rows = in.gemmM, cols = in.gemmN, th = rows, tc = cols;
  if (in.tileShape.size() == 4 && in.outputShape.size() == 4) {
    rows = in.outputShape[2];
    cols = in.outputShape[1];
    th = in.tileShape[2];
    tc = in.tileShape[1];
  } else if (in.tileShape.size() == 2) {
    th = in.tileShape[0];
    tc = in.tileShape[1];
  }
  int64_t rowTiles = ceilDiv(rows, std::max<int64_t>(1, th)), colTiles = ceilDiv(cols, std::max<int64_t>(1, tc));
  int64_t outer = 1;
  if (rowTiles * colTiles > 0 && in.tileCount % (rowTiles * colTiles) == 0) {
    outer = std::max<int64_t>(1, in.tileCount / (rowTiles * colTiles));
  } else {  // not a tiling this model understands: the layer as one tile
    th = rows;
    tc = cols;
  }
  if (in.gemmBatch % outer != 0) outer = 1, th = rows, tc = cols;
  int64_t groups = in.gemmBatch / outer;

  Split m = split(in.gemmM, th, rows);
  Split n = groups > 1 ? Split{in.gemmN, in.gemmN, 1} : split(in.gemmN, tc, cols);
  Split g = groups > 1 ? split(groups, tc, cols) : Split{1, 1, 1};
  // The tiles run back to back as one pass: SCALE-Sim's one-cycle offset (systolic.h) is counted
  // once per GEMM as in the untiled layer, so a split on fold boundaries costs exactly the same.
  int64_t cycles = groups * (m.parts * n.parts - 1);
  for (int mi = 0; mi < 2; ++mi)
    for (int ni = 0; ni < 2; ++ni)
      for (int gi = 0; gi < 2; ++gi) {
        int64_t count = (mi ? 1 : m.parts - 1) * (ni ? 1 : n.parts - 1) * (gi ? 1 : g.parts - 1);
        if (count <= 0) continue;
        GemmShape shape{mi ? m.last : m.full, ni ? n.last : n.full, in.gemmK};
        cycles += count * systolicComputeCycles(shape, mac.rows, mac.cols, mac.dataflow, gi ? g.last : g.full);
      }
  cycles *= outer;
  // The array runs int16 at macs_per_cycle.int16 / int8 of its int8 rate.
  std::string precision = precisionOf(in);
  int64_t peak = mc.peakMacs(precision);
  if (precision != "int8") cycles = ceilDiv(cycles * mc.peakInt8, peak);
  return std::max(cycles, ceilDiv(in.macs, peak));
}

// A depthwise convolution (groups = input channels = output channels > 1, the march constraints'
// meaning) runs on the depthwise datapath. The graph op says it exactly; without the graph the
// GEMM dims do: one output channel per group for conv2d (its input channels per group are not in
// the instruction, so a grouped conv with Cout = groups is taken as depthwise), one input and one
// output channel per group for conv_transpose2d.
bool isDepthwise(const Instruction& in, const ir::Op* g) {
  if (in.opcode != Opcode::Conv2d && in.opcode != Opcode::ConvTranspose2d) return false;
  if (g && g->hasAttr("groups") && g->numOperands() && g->operand(0)->type.rank() == 4 &&
      g->result()->type.rank() == 4) {
    int64_t groups = g->getInt("groups");
    return groups > 1 && groups == g->operand(0)->type.shape[1] && groups == g->result()->type.shape[1];
  }
  if (in.outputShape.size() != 4 || in.outputShape[0] <= 0 || in.gemmBatch % in.outputShape[0] != 0) return false;
  int64_t groups = in.gemmBatch / in.outputShape[0];
  if (groups <= 1 || groups != in.outputShape[1]) return false;
  return in.opcode == Opcode::Conv2d ? in.gemmN == 1 : in.gemmK == 1;
}

// The depthwise datapath's throughput: every MAC at its rate, no systolic fill or drain.
int64_t depthwiseCycles(const Machine& mc, const Instruction& in) {
  return ceilDiv(in.macs, mc.depthwisePeakMacs(precisionOf(in)));
}

// The MAC-array unit's peak for this instruction: the depthwise datapath's or the array's.
int64_t peakFor(const Machine& mc, const Instruction& in, const ir::Op* g) {
  return isDepthwise(in, g) ? mc.depthwisePeakMacs(precisionOf(in)) : mc.peakMacs(precisionOf(in));
}

// ---- per instruction --------------------------------------------------------------------------

struct Costed {
  int64_t cycles = 0;     // compute: the instruction's span with no stalls; DMA: the transfer
  int64_t macCycles = 0;  // MAC array only
  int64_t vecCycles = 0;  // vector unit (fused epilogue for a MAC-array instruction)
};

Costed costOf(const Machine& mc, const Instruction& in, const ir::Function* graph) {
  Costed c;
  if (in.unit == Unit::Dma) {
    c.cycles = mc.transferCycles(in.ddrReadBytes + in.ddrWriteBytes);
    return c;
  }
  auto graphOp = [&](uint32_t index) -> const ir::Op* {
    return graph && index < graph->ops.size() ? graph->ops[index].get() : nullptr;
  };
  const ir::Op* anchor = graphOp(in.opIndex);
  int64_t width = elemBytes(in.inputElem);
  // Post-ops: in.ops lists the anchor and its members in function order; post-op i is the i-th
  // member that is not the anchor.
  std::vector<const ir::Op*> postGraphOps;
  for (uint32_t o : in.ops)
    if (o != in.opIndex) postGraphOps.push_back(graphOp(o));
  int64_t post = 0;
  for (size_t i = 0; i < in.postOps.size(); ++i) {
    Opcode op = in.postOps[i];
    // After the MAC array, requantize reads the si32 accumulators; everything after it the
    // activation precision.
    int64_t w = in.unit == Unit::MacArray && op == Opcode::Requantize ? 4 : width;
    const ir::Op* g = i < postGraphOps.size() ? postGraphOps[i] : nullptr;
    post += vectorCycles(mc, op, g, vectorWork(in, op, g, in.elements), w);
  }
  if (in.unit == Unit::MacArray) {
    c.macCycles = isDepthwise(in, anchor) ? depthwiseCycles(mc, in) : macArrayCycles(mc, in);
    c.vecCycles = post;
    // A two-stage pipeline over the tiles: the slower stage runs throughout, the faster one adds
    // its last tile.
    int64_t tiles = std::max<int64_t>(1, in.tileCount);
    c.cycles = std::max(c.macCycles, post) + ceilDiv(std::min(c.macCycles, post), tiles);
  } else {
    c.vecCycles = vectorCycles(mc, in.opcode, anchor, vectorWork(in, in.opcode, anchor, in.elements), width) + post;
    c.cycles = c.vecCycles;
  }
  return c;
}

struct Range {
  int64_t lo, hi, end;
};

// The SRAM addresses that compute instructions have used, each with the end of the latest compute
// that used it. Compute ends never decrease in compute order, so painting a range replaces what it
// covers, and the latest end over a query range is the largest among the segments it meets:
// O(log n) per call plus the segments met, where a list of every earlier range was O(n).
class SramUse {
 public:
  void paint(int64_t lo, int64_t hi, int64_t end) {
    if (lo >= hi) return;
    auto it = segs_.lower_bound(lo);
    if (it != segs_.begin()) {
      auto p = std::prev(it);
      if (p->second.hi > lo) {  // straddles lo: keep its head, and its tail beyond hi
        if (p->second.hi > hi) segs_.emplace(hi, p->second);
        p->second.hi = lo;
      }
    }
    while (it != segs_.end() && it->first < hi) {
      if (it->second.hi > hi) {  // straddles hi: keep its tail
        Seg tail = it->second;
        segs_.erase(it);
        segs_.emplace(hi, tail);
        break;
      }
      it = segs_.erase(it);
    }
    segs_[lo] = Seg{hi, end};
  }
  // The latest end of a use overlapping [lo, hi), or 0.
  int64_t latestEnd(int64_t lo, int64_t hi) const {
    int64_t best = 0;
    auto it = segs_.upper_bound(lo);
    if (it != segs_.begin()) {
      auto p = std::prev(it);
      if (p->first < hi && p->second.hi > lo) best = p->second.end;
    }
    for (; it != segs_.end() && it->first < hi; ++it) best = std::max(best, it->second.end);
    return best;
  }

 private:
  struct Seg {
    int64_t hi, end;
  };
  std::map<int64_t, Seg> segs_;  // by first address; disjoint
};

}  // namespace

PerfResult estimate(const isa::Program& program, const march::March& march) {
  return estimate(program, march, nullptr);
}

PerfResult estimate(const isa::Program& program, const march::March& march, const ir::Function* graph) {
  if (program.march != march.name)
    throw ir::Error("expected a program lowered for march '" + march.name + "' but got one for '" + program.march +
                    "'");
  if (graph && graph->ops.size() != program.opCount)
    throw ir::Error("expected the program's function with " + std::to_string(program.opCount) +
                    " ops but the graph has " + std::to_string(graph->ops.size()));
  Machine mc(march);
  const auto& ins = program.instructions;
  size_t n = ins.size();

  std::vector<Costed> cost(n);
  for (size_t i = 0; i < n; ++i) cost[i] = costOf(mc, ins[i], graph);

  // Attach every DMA instruction to a compute instruction (its layer): a store right after a
  // compute that produced its value belongs to it (post), everything else to the next compute (pre).
  std::vector<long> layerOf(n, -1);
  std::vector<bool> post(n, false);
  std::vector<size_t> computes;
  std::vector<long> computeOfOp(program.opCount, -1);
  {
    long lastCompute = -1;
    bool loadSince = false;
    std::vector<size_t> pending;
    for (size_t i = 0; i < n; ++i) {
      const Instruction& in = ins[i];
      if (in.unit != Unit::Dma) {
        layerOf[i] = static_cast<long>(i);
        for (size_t p : pending) layerOf[p] = static_cast<long>(i);
        pending.clear();
        lastCompute = static_cast<long>(i);
        loadSince = false;
        computes.push_back(i);
        for (uint32_t o : in.ops)
          if (o < program.opCount) computeOfOp[o] = static_cast<long>(i);
        continue;
      }
      bool isStore = in.opcode == Opcode::StoreActivation;
      const auto& lastOps = lastCompute >= 0 ? ins[static_cast<size_t>(lastCompute)].ops : std::vector<uint32_t>{};
      if (isStore && lastCompute >= 0 && !loadSince &&
          std::find(lastOps.begin(), lastOps.end(), in.opIndex) != lastOps.end()) {
        layerOf[i] = lastCompute;
        post[i] = true;
      } else {
        pending.push_back(i);
        loadSince |= !isStore;
      }
    }
    for (size_t p : pending) layerOf[p] = lastCompute;  // trailing DMA (none after lowering)
  }

  std::vector<std::vector<size_t>> preLoads(n);  // the loads feeding each compute instruction
  for (size_t i = 0; i < n; ++i)
    if (ins[i].unit == Unit::Dma && ins[i].opcode != Opcode::StoreActivation && layerOf[i] >= 0)
      preLoads[static_cast<size_t>(layerOf[i])].push_back(i);

  PerfResult r;
  r.march = march.name;
  r.clockMHz = march.clockMHz;
  r.timeline.resize(n);
  std::vector<int64_t> start(n, 0), end(n, 0);
  // SRAM used by the compute instructions placed so far: the last one's ranges apart, since a
  // double-buffered load may fill the half that compute is not reading.
  SramUse earlier;
  std::vector<Range> last;
  int64_t dmaFree = 0, streamEnd = 0;

  // Resident regions count as used by their producer and their last reader.
  std::vector<std::vector<std::pair<int64_t, int64_t>>> regionsAt(n);
  for (const isa::SramRegion& reg : program.sram.resident) {
    if (reg.firstInstruction < n) regionsAt[reg.firstInstruction].push_back({reg.offset, reg.offset + reg.bytes});
    if (reg.lastInstruction < n) regionsAt[reg.lastInstruction].push_back({reg.offset, reg.offset + reg.bytes});
  }

  auto place = [&](size_t i, int64_t s) {
    start[i] = std::max(dmaFree, s);
    end[i] = start[i] + cost[i].cycles;
    dmaFree = end[i];
  };
  // When a load may overwrite its SRAM: after the last compute that used an overlapping range; a
  // double-buffered load fills the half the previous compute is not reading.
  auto bufferReady = [&](const Instruction& in) {
    int64_t ready = 0;
    bool dbl = !in.sram.empty();
    for (const isa::SramBuffer& b : in.sram) dbl &= b.count >= 2;
    for (const isa::SramBuffer& b : in.sram) {
      int64_t lo = b.offset, hi = b.offset + b.bytes * b.count;
      ready = std::max(ready, earlier.latestEnd(lo, hi));
      if (dbl) continue;
      for (const Range& u : last)
        if (u.lo < hi && lo < u.hi) ready = std::max(ready, u.end);
    }
    return ready;
  };
  std::vector<size_t> pendingStores;
  auto flushStores = [&]() {
    for (size_t i : pendingStores) {
      size_t c = static_cast<size_t>(layerOf[i]);
      // Chunks leave as they are produced; the last one after the compute ends.
      int64_t bytes = ins[i].ddrReadBytes + ins[i].ddrWriteBytes, chunks = mc.chunks(bytes);
      int64_t firstReady = start[c] + ceilDiv(cost[c].cycles, chunks);
      int64_t lastChunk = march.ddr.latencyCycles + mc.dataCycles(ceilDiv(bytes, chunks));
      place(i, std::max(firstReady, end[c] + lastChunk - cost[i].cycles));
    }
    pendingStores.clear();
  };

  for (size_t i = 0; i < n; ++i) {
    const Instruction& in = ins[i];
    if (in.unit == Unit::Dma) {
      if (in.opcode == Opcode::StoreActivation) {
        if (post[i]) {
          pendingStores.push_back(i);
        } else {  // an eviction: after its producer
          long producer = in.opIndex < program.opCount ? computeOfOp[in.opIndex] : -1;
          if (producer < 0 || static_cast<size_t>(producer) >= i)
            throw ir::Error("instruction " + std::to_string(i) + " stores a value no earlier instruction computes");
          place(i, end[static_cast<size_t>(producer)]);
        }
      } else {
        // Activation loads may read what the previous layer stored: its stores go first.
        if (in.opcode == Opcode::LoadActivation) flushStores();
        place(i, bufferReady(in));
      }
      continue;
    }
    flushStores();
    // Consumes its loads chunk by chunk: starts on the first chunk of each, and its last chunk
    // of work follows the last chunk of each.
    int64_t ready = streamEnd, lastLoadEnd = 0;
    for (size_t j : preLoads[i]) {
      int64_t bytes = ins[j].ddrReadBytes, chunks = mc.chunks(bytes);
      if (bytes <= 0) continue;
      ready = std::max(ready, start[j] + march.ddr.latencyCycles + mc.dataCycles(ceilDiv(bytes, chunks)));
      lastLoadEnd = std::max(lastLoadEnd, end[j] + ceilDiv(cost[i].cycles, chunks));
    }
    start[i] = ready;
    end[i] = std::max(ready + cost[i].cycles, lastLoadEnd);
    streamEnd = end[i];
    for (const Range& u : last) earlier.paint(u.lo, u.hi, u.end);
    last.clear();
    for (const isa::SramBuffer& b : in.sram) last.push_back({b.offset, b.offset + b.bytes * b.count, end[i]});
    for (const auto& [lo, hi] : regionsAt[i]) last.push_back({lo, hi, end[i]});
  }
  flushStores();

  for (size_t i = 0; i < n; ++i) r.timeline[i] = {static_cast<uint32_t>(i), ins[i].unit, start[i], end[i]};

  // Layers.
  auto opOf = [&](const Instruction& in) -> const ir::Op* {
    return graph && in.opIndex < graph->ops.size() ? graph->ops[in.opIndex].get() : nullptr;
  };
  std::vector<long> layerIndex(n, -1);
  int64_t prevEnd = 0;
  for (size_t c : computes) {
    const Instruction& in = ins[c];
    LayerPerf l;
    l.layer = in.layer;
    l.op = isa::opcodeName(in.opcode);
    l.outputShape = in.outputShape;
    l.macs = in.macs;
    l.computeCycles = cost[c].cycles;
    l.stallCycles = std::max<int64_t>(0, end[c] - cost[c].cycles - prevEnd);
    prevEnd = end[c];
    l.start = start[c];
    l.end = end[c];
    l.instruction = static_cast<uint32_t>(c);
    if (in.unit == Unit::MacArray) {
      int64_t peak = peakFor(mc, in, opOf(in));
      l.utilization = static_cast<double>(in.macs) / (static_cast<double>(cost[c].cycles) * static_cast<double>(peak));
    }
    layerIndex[c] = static_cast<long>(r.layers.size());
    r.layers.push_back(std::move(l));
  }
  for (size_t i = 0; i < n; ++i) {
    const Instruction& in = ins[i];
    r.ddrReadBytes += in.ddrReadBytes;
    r.ddrWriteBytes += in.ddrWriteBytes;
    if (in.unit != Unit::Dma) continue;
    r.memoryCycles += cost[i].cycles;
    if (layerOf[i] < 0) continue;
    LayerPerf& l = r.layers[static_cast<size_t>(layerIndex[static_cast<size_t>(layerOf[i])])];
    l.memoryCycles += cost[i].cycles;
    l.ddrReadBytes += in.ddrReadBytes;
    l.ddrWriteBytes += in.ddrWriteBytes;
    if (cost[i].cycles > 0) {
      l.start = std::min(l.start, start[i]);
      l.end = std::max(l.end, end[i]);
    }
  }
  double macTerm = 0;
  for (LayerPerf& l : r.layers) {
    const Instruction& in = ins[l.instruction];
    l.totalCycles = l.end - l.start;
    l.memoryBound = l.memoryCycles > l.computeCycles;
    int64_t peak = in.unit == Unit::MacArray ? peakFor(mc, in, opOf(in)) : mc.peakInt8;
    int64_t computeBound = ceilDiv(l.macs, peak);
    int64_t memoryBound =
        static_cast<int64_t>(std::ceil(static_cast<double>(l.ddrReadBytes + l.ddrWriteBytes) / mc.ddrBytesPerCycle));
    l.rooflineCycles = std::max(computeBound, memoryBound);
    macTerm += static_cast<double>(l.macs) / static_cast<double>(peak);
    r.computeCycles += l.computeCycles;
    r.stallCycles += l.stallCycles;
    r.macs += l.macs;
  }
  for (size_t i = 0; i < n; ++i) r.totalCycles = std::max(r.totalCycles, end[i]);
  r.onChipBytes = program.sram.onChipBytes;
  r.rooflineCycles = std::max(
      static_cast<int64_t>(std::ceil(macTerm)),
      static_cast<int64_t>(std::ceil(static_cast<double>(r.ddrReadBytes + r.ddrWriteBytes) / mc.ddrBytesPerCycle)));
  r.latencyMs = static_cast<double>(r.totalCycles) / (march.clockMHz * 1e3);
  r.fps = r.latencyMs > 0 ? 1e3 / r.latencyMs : 0;
  r.peakTops = march.peakTops("int8");
  r.achievedTops = r.latencyMs > 0 ? 2.0 * static_cast<double>(r.macs) / (r.latencyMs * 1e-3) / 1e12 : 0;
  r.macUtilization = r.totalCycles > 0 ? static_cast<double>(r.macs) /
                                             (static_cast<double>(r.totalCycles) * static_cast<double>(mc.peakInt8))
                                       : 0;
  return r;
}

}  // namespace hbdk::perf
