// lower: turns the quantized, fused integer graph of @main into a BPU program (isa::Program in
// ctx.program) for ctx.march: one compute instruction per fused group, DMA loads and stores, output
// tiles that fit SRAM, and intermediates kept on chip where they fit. The module is not changed.
//
// Legal input (anything else is a PassError naming the op):
//   - the module has exactly one function, @main;
//   - `quantize` only reads a graph input (a function argument); `dequantize` results only feed
//     the return; f32 values exist nowhere else;
//   - every other op is integer: no f32 operand or result (but layer_norm's f32 constant weight
//     and bias, which it reads like weights), and every si8/si16 value that is not
//     a constant carries a scale;
//   - no batch_norm (fold-bn removes it) and no sigmoid/tanh/exp/leaky_relu (quantize turns them
//     into lut);
//   - `bpu.group` (when present) is an int; a group holds at most one MAC-array op and no op
//     outside it depends on one member while another member depends on it.
// Legal after lowering (checked before returning): every op of @main is covered by an instruction,
// the compute ops by exactly one compute instruction and each constant by a weight load.
//
// Algorithm:
//   1. Check the rules above, op by op.
//   2. Group: ops sharing a `bpu.group` value form one instruction, emitted where its last member
//      stands; the anchor is the group's conv2d/conv_transpose2d/linear/matmul (MAC array), else
//      the op the fuse pass marked `bpu.group_role = "anchor"`, else its first op (vector unit);
//      the other members become post-ops. Ungrouped ops stand alone.
//   3. For each group in order: free the SRAM of values no later group reads; decide whether its
//      outputs stay in SRAM (not graph outputs, and they fit); tile the output (batch x rows x
//      channels) so that double-buffered input windows, weights and output tiles fit the free
//      SRAM, evicting resident values to DDR when they do not; emit the weight and activation
//      loads, the compute instruction and the stores.
//
// The steps live in their own files, sharing lower_internal.h: 1 in lower_legality.cpp, the
// groups of 2 in lower_groups.cpp, the tiling of 3 in lower_tiling.cpp and its SRAM allocator in
// lower_sram.cpp; this file emits the instructions (3) and holds the pass.
#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "isa/program.h"
#include "march/march.h"
#include "passes/lower_internal.h"
#include "passes/pass.h"

namespace hbdk::passes {

namespace {

using isa::BufferRole;
using isa::Instruction;
using isa::Opcode;
using isa::Unit;
using namespace lowering;

std::string valueName(const ir::Function& fn, const ir::Value* v) {
  if (!v->name.empty()) return v->name;
  if (v->isArgument()) return "arg" + std::to_string(v->index);
  return std::string(v->owner->name()) + "." + std::to_string(fn.indexOf(v->owner)) + "." + std::to_string(v->index);
}

class Lowering {
 public:
  Lowering(const ir::Function& fn, const march::March& march, isa::Program& prog)
      : fn_(fn), march_(march), prog_(prog), sram_(march.sram.sizeBytes) {}

  void run() {
    groups_ = formGroups(fn_);
    for (size_t g = 0; g < groups_.size(); ++g)
      for (ir::Op* op : groups_[g].members) groupOf_[op] = g;
    for (size_t g = 0; g < groups_.size(); ++g)
      for (const ir::Value* v : groups_[g].inputs) {
        if (v->owner && groupOf_.at(v->owner) >= g)
          fail(*groups_[g].anchor, "reads %" + valueName(fn_, v) + " from a group emitted after it; bpu.group " +
                                       std::to_string(groups_[g].id) + " is not contiguous");
        lastUse_[v] = g;
      }
    for (const ir::Value* v : fn_.returns()) returned_.insert(v);

    prog_.march = march_.name;
    prog_.function = fn_.name;
    prog_.opCount = static_cast<uint32_t>(fn_.ops.size());
    prog_.sram.capacityBytes = march_.sram.sizeBytes;
    for (size_t i = 0; i < fn_.ops.size(); ++i) opIndex_[fn_.ops[i].get()] = static_cast<uint32_t>(i);
    for (size_t g = 0; g < groups_.size(); ++g) emitGroup(g);
    checkCovered();
  }

 private:
  struct Resident {
    int64_t offset;
    size_t region;
  };

  uint32_t index(const ir::Op* op) const { return opIndex_.at(op); }

  void closeRegion(const Resident& r, size_t lastInstruction) {
    prog_.sram.resident[r.region].lastInstruction = static_cast<uint32_t>(lastInstruction);
  }

  Instruction dma(Opcode opcode, const ir::Op& anchor, const ir::Value* v, const TilePlan& plan) {
    Instruction in;
    in.unit = Unit::Dma;
    in.opcode = opcode;
    in.opIndex = index(&anchor);
    in.group = -1;
    in.layer = layerName(anchor);
    in.inputElem = v->type.elem;
    in.outputShape = v->type.shape;
    in.tileCount = opcode == Opcode::LoadWeights ? plan.colTiles : plan.tiles;
    in.elements = v->type.numel();
    return in;
  }

  std::string layerName(const ir::Op& op) const {
    if (!op.loc.name.empty()) return op.loc.name;
    return valueName(fn_, op.result());
  }

  // Moves a resident value to DDR: a store now, and later readers load it.
  void evict(const ir::Value* v) {
    Resident r = resident_.at(v);
    Instruction st;
    st.unit = Unit::Dma;
    st.opcode = Opcode::StoreActivation;
    st.opIndex = index(v->owner);
    st.layer = layerName(*v->owner);
    st.inputElem = v->type.elem;
    st.outputShape = v->type.shape;
    st.tileShape = v->type.shape;
    st.elements = v->type.numel();
    st.bytesIn = st.bytesOut = st.ddrWriteBytes = bytesOf(v);
    st.sram.push_back({BufferRole::Output, r.offset, bytesOf(v), 1});
    push(std::move(st));
    closeRegion(r, prog_.instructions.size() - 1);
    prog_.sram.onChipBytes -= bytesOf(v);
    prog_.sram.spilledBytes += bytesOf(v);
    sram_.release(r.offset);
    resident_.erase(v);
  }

  void push(Instruction in) {
    prog_.instructions.push_back(std::move(in));
    lastInstruction_ = prog_.instructions.size() - 1;
  }

  bool wantsResident(const ir::Value* v) const { return !returned_.count(v) && lastUse_.count(v); }

  void emitGroup(size_t gi) {
    const Group& g = groups_[gi];
    const ir::Op& anchor = *g.anchor;
    // Values no group from here on reads give their SRAM back.
    for (auto it = resident_.begin(); it != resident_.end();) {
      auto last = lastUse_.find(it->first);
      if (last == lastUse_.end() || last->second < gi) {
        sram_.release(it->second.offset);
        it = resident_.erase(it);
      } else {
        ++it;
      }
    }

    TileSpace space = tileSpaceOf(g);
    for (Operand& o : space.operands) o.resident = !o.constant && resident_.count(o.value);
    std::vector<std::optional<int64_t>> outAt(space.outputs.size());
    // Outputs that later groups read try to stay on chip.
    for (size_t i = 0; i < space.outputs.size(); ++i)
      if (wantsResident(space.outputs[i])) {
        outAt[i] = sram_.allocate(bytesOf(space.outputs[i]));
        space.outputResident[i] = outAt[i].has_value();
      }
    std::optional<TilePlan> plan = chooseTiles(space, sram_.largestFree());
    if (!plan) {
      for (size_t i = 0; i < outAt.size(); ++i)
        if (outAt[i]) sram_.release(*outAt[i]);
      outAt.assign(outAt.size(), std::nullopt);
      space.outputResident.assign(space.outputs.size(), false);
      plan = chooseTiles(space, sram_.largestFree());
    }
    // Still no room: evict resident values, those this group does not read first, largest first.
    while (!plan && !resident_.empty()) {
      const ir::Value* victim = nullptr;
      bool victimRead = true;
      for (const auto& [v, r] : resident_) {
        bool read = std::find(g.inputs.begin(), g.inputs.end(), v) != g.inputs.end();
        if (!victim || (victimRead && !read) || (read == victimRead && bytesOf(v) > bytesOf(victim))) {
          victim = v;
          victimRead = read;
        }
      }
      evict(victim);
      for (Operand& o : space.operands) o.resident = !o.constant && resident_.count(o.value);
      plan = chooseTiles(space, sram_.largestFree());
    }
    if (!plan) {
      TilePlan smallest = planFor(space, 1, 1);
      fail(anchor, "does not fit the SRAM of march '" + march_.name + "' even in 1-row, 1-channel tiles: needs " +
                       std::to_string(smallest.need()) + " bytes, has " + std::to_string(march_.sram.sizeBytes));
    }
    // need() > 0 fits the largest free range by construction; nothing to allocate otherwise.
    std::optional<int64_t> blockAt = plan->need() > 0 ? sram_.allocate(plan->need()) : std::optional<int64_t>(0);
    if (!blockAt) fail(anchor, "lost its SRAM block between tiling and allocation");
    int64_t block = *blockAt;
    int64_t inAt = block, wAt = inAt + alignUp(plan->inBytes) * plan->inCount,
            oAt = wAt + alignUp(plan->weightBytes) * plan->weightCount;

    std::vector<int64_t> tileShape = space.spatial ? std::vector<int64_t>{1, plan->tc, plan->th, space.width}
                                                   : std::vector<int64_t>{plan->th, plan->tc * space.rowElems};
    // Loads: weights (loaded once when the channels are not split, else per batch item), then the
    // activations that are not in SRAM.
    if (!g.constants.empty()) {
      Instruction ld;
      ld.unit = Unit::Dma;
      ld.opcode = Opcode::LoadWeights;
      ld.opIndex = index(&anchor);
      ld.layer = layerName(anchor);
      ld.inputElem = g.constants.front()->result()->type.elem;
      int64_t bytes = 0, elems = 0;
      for (const ir::Op* c : g.constants) {
        ld.ops.push_back(index(c));
        bytes += bytesOf(c->result());
        elems += c->result()->type.numel();
      }
      ld.outputShape = {bytes};
      ld.tileShape = {ceilDiv(bytes, plan->colTiles)};
      ld.tileCount = plan->colTiles > 1 ? plan->colTiles * space.outer : 1;
      ld.elements = elems;
      int64_t reload = plan->colTiles > 1 ? space.outer : 1;
      ld.bytesIn = ld.bytesOut = ld.ddrReadBytes = bytes * reload;
      ld.sram.push_back({BufferRole::Weights, wAt, alignUp(plan->weightBytes), plan->weightCount});
      push(std::move(ld));
    }
    int64_t readBytes = 0;
    for (const Operand& o : space.operands) {
      int64_t perTile = operandTileBytes(space, o, plan->th, plan->tc);
      int64_t total = o.feed == Feed::Window  ? perTile * plan->tiles
                      : o.feed == Feed::Whole ? bytesOf(o.value)
                                              : bytesOf(o.value);
      readBytes += total;
      if (o.constant || o.resident) continue;
      bool whole = o.feed == Feed::Whole || o.feed == Feed::WholeByCols;
      Instruction ld = dma(Opcode::LoadActivation, anchor, o.value, *plan);
      ld.tileShape = {perTile};
      ld.tileCount = whole ? std::max<int64_t>(1, plan->colTiles) : plan->tiles;
      ld.bytesIn = ld.bytesOut = ld.ddrReadBytes = total;
      ld.sram.push_back({whole ? BufferRole::Weights : BufferRole::Input, whole ? wAt : inAt,
                         alignUp(whole ? plan->weightBytes : plan->inBytes),
                         whole ? plan->weightCount : plan->inCount});
      push(std::move(ld));
    }

    // The compute instruction.
    Instruction in;
    in.unit = isMacOp(anchor) ? Unit::MacArray : Unit::Vector;
    in.opcode = *opcodeFor(anchor);
    in.opIndex = index(&anchor);
    in.group = g.id;
    in.layer = layerName(anchor);
    for (ir::Op* op : g.members) {
      in.ops.push_back(index(op));
      if (op != &anchor) in.postOps.push_back(*opcodeFor(*op));
      if (op->def().macs) in.macs += op->def().macs(*op);
    }
    in.inputElem = anchor.numOperands() ? anchor.operand(0)->type.elem : anchor.result()->type.elem;
    in.outputShape = anchor.result()->type.shape;
    in.tileShape = tileShape;
    in.tileCount = plan->tiles;
    setGemm(in, anchor);
    for (const auto& r : anchor.results) in.elements += r->type.numel();
    in.bytesIn = readBytes;
    for (const ir::Value* v : g.outputs) in.bytesOut += bytesOf(v);
    if (plan->inBytes) in.sram.push_back({BufferRole::Input, inAt, alignUp(plan->inBytes), plan->inCount});
    if (plan->weightBytes) in.sram.push_back({BufferRole::Weights, wAt, alignUp(plan->weightBytes), plan->weightCount});
    if (plan->outBytes) in.sram.push_back({BufferRole::Output, oAt, alignUp(plan->outBytes), plan->outCount});
    for (size_t i = 0; i < space.outputs.size(); ++i)
      if (outAt[i]) in.sram.push_back({BufferRole::Output, *outAt[i], bytesOf(space.outputs[i]), 1});
    push(std::move(in));
    size_t computeAt = lastInstruction_;
    for (const Operand& o : space.operands)
      if (o.resident) closeRegion(resident_.at(o.value), computeAt);
    prog_.sram.peakBytes = std::max(prog_.sram.peakBytes, sram_.usedBytes());

    // Outputs: on chip, or stored to DDR.
    for (size_t i = 0; i < space.outputs.size(); ++i) {
      const ir::Value* v = space.outputs[i];
      if (outAt[i]) {
        resident_[v] = {*outAt[i], prog_.sram.resident.size()};
        prog_.sram.resident.push_back({valueName(fn_, v), *outAt[i], bytesOf(v), static_cast<uint32_t>(computeAt),
                                       static_cast<uint32_t>(computeAt)});
        prog_.sram.onChipBytes += bytesOf(v);
        continue;
      }
      Instruction st = dma(Opcode::StoreActivation, anchor, v, *plan);
      st.tileShape = tileShape;
      st.bytesIn = st.bytesOut = st.ddrWriteBytes = bytesOf(v);
      st.sram.push_back({BufferRole::Output, oAt, alignUp(plan->outBytes), plan->outCount});
      push(std::move(st));
      if (!returned_.count(v) && lastUse_.count(v)) prog_.sram.spilledBytes += bytesOf(v);
    }
    if (plan->need() > 0) sram_.release(block);
  }

  static void setGemm(Instruction& in, const ir::Op& a) {
    const ir::Shape& out = a.result()->type.shape;
    switch (a.def().traits.tile) {
      case ir::TileClass::ConvWindow: {
        const ir::Shape& w = a.operand(1)->type.shape;
        int64_t groups = a.getInt("groups");
        in.gemmBatch = out[0] * groups;
        in.gemmM = out[2] * out[3];
        in.gemmN = out[1] / groups;
        in.gemmK = w[1] * w[2] * w[3];
        return;
      }
      case ir::TileClass::DeconvWindow: {
        const ir::Shape& in4 = a.operand(0)->type.shape;
        const ir::Shape& w = a.operand(1)->type.shape;
        int64_t groups = a.getInt("groups");
        in.gemmBatch = in4[0] * groups;
        in.gemmM = in4[2] * in4[3];
        in.gemmN = w[1] * w[2] * w[3];
        in.gemmK = in4[1] / groups;
        return;
      }
      case ir::TileClass::Gemm:
        in.gemmBatch = 1;
        in.gemmM = product(out, 0, out.size() - 1);
        in.gemmN = out.back();
        in.gemmK = a.operand(1)->type.shape[1];
        return;
      case ir::TileClass::BatchedGemm:
        in.gemmBatch = product(out, 0, out.size() - 2);
        in.gemmM = out[out.size() - 2];
        in.gemmN = out.back();
        in.gemmK = a.operand(0)->type.shape.back();
        return;
      default: return;  // vector-unit ops have no GEMM shape
    }
  }

  void checkCovered() const {
    std::vector<int> computed(fn_.ops.size(), 0), loaded(fn_.ops.size(), 0);
    for (const Instruction& in : prog_.instructions)
      for (uint32_t o : in.ops) (in.unit == Unit::Dma ? loaded : computed)[o]++;
    for (size_t i = 0; i < fn_.ops.size(); ++i) {
      const ir::Op& op = *fn_.ops[i];
      if (op.is("constant") ? loaded[i] == 0 : computed[i] != 1)
        throw ir::PassError(op.diag("is left over after lowering: it belongs to " +
                                    std::to_string(computed[i] + loaded[i]) + " instructions"));
    }
  }

  const ir::Function& fn_;
  const march::March& march_;
  isa::Program& prog_;
  SramAllocator sram_;
  std::vector<Group> groups_;
  std::map<const ir::Op*, size_t> groupOf_;
  std::map<const ir::Op*, uint32_t> opIndex_;
  std::map<const ir::Value*, size_t> lastUse_;  // last group reading the value
  std::set<const ir::Value*> returned_;
  std::map<const ir::Value*, Resident> resident_;
  size_t lastInstruction_ = 0;
};

class LowerPass : public Pass {
 public:
  const char* name() const override { return "lower"; }
  const char* summary() const override {
    return "lower the quantized, fused graph to BPU instructions (MAC array, vector unit, DMA) with SRAM tiling";
  }

  PassStatistics run(ir::Module& m, PassContext& ctx) override {
    if (!ctx.march) throw ir::PassError("error: pass 'lower' needs a march (--march)");
    if (!ctx.program) throw ir::PassError("error: pass 'lower' needs a program to fill (PassContext::program)");
    if (ctx.march->sram.sizeBytes <= 0)
      throw ir::PassError("error: march '" + ctx.march->name + "' has no SRAM to lower into");
    if (m.functions.size() != 1 || m.functions[0]->name != "main")
      throw ir::PassError("error: pass 'lower' expects a module with exactly one function, @main, but module @" +
                          m.name + " has " + std::to_string(m.functions.size()));
    const ir::Function& fn = *m.functions[0];
    checkLegal(fn);
    isa::Program prog;
    Lowering(fn, *ctx.march, prog).run();
    *ctx.program = std::move(prog);

    PassStatistics stats;
    for (const auto& [key, value] : isa::programTotals(*ctx.program))
      if (key != "sram_capacity_bytes") stats[key] = value;
    stats["resident_values"] = static_cast<int64_t>(ctx.program->sram.resident.size());
    return stats;
  }
};

}  // namespace

std::unique_ptr<Pass> createLowerPass() { return std::make_unique<LowerPass>(); }

}  // namespace hbdk::passes
