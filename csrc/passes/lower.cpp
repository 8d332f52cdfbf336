// lower: turns the quantized, fused integer graph of @main into a BPU program (isa::Program in
// ctx.program) for ctx.march: one compute instruction per fused group, DMA loads and stores, output
// tiles that fit SRAM, and intermediates kept on chip where they fit. The module is not changed.
//
// Legal input (anything else is a PassError naming the op):
//   - the module has exactly one function, @main;
//   - `quantize` only reads a graph input (a function argument); `dequantize` results only feed
//     the return; f32 values exist nowhere else;
//   - every other op is integer: no f32 operand or result, and every si8/si16 value that is not
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
//      its first op (vector unit); the other members become post-ops. Ungrouped ops stand alone.
//   3. For each group in order: free the SRAM of values no later group reads; decide whether its
//      outputs stay in SRAM (not graph outputs, and they fit); tile the output (batch x rows x
//      channels) so that double-buffered input windows, weights and output tiles fit the free
//      SRAM, evicting resident values to DDR when they do not; emit the weight and activation
//      loads, the compute instruction and the stores.
#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "isa/program.h"
#include "march/march.h"
#include "passes/pass.h"

namespace hbdk::passes {

namespace {

using isa::BufferRole;
using isa::Instruction;
using isa::Opcode;
using isa::Unit;

constexpr int64_t kAlign = 64;  // SRAM buffers start on a 64-byte line

int64_t alignUp(int64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }
int64_t ceilDiv(int64_t a, int64_t b) { return b <= 0 ? a : (a + b - 1) / b; }
int64_t bytesOf(const ir::Value* v) { return static_cast<int64_t>(v->type.byteSize()); }

// The instruction that runs `op`, from its op-table traits; nullopt when it has none.
std::optional<Opcode> opcodeFor(const ir::Op& op) {
  const char* name = op.def().traits.opcode;
  return name ? isa::parseOpcode(name) : std::nullopt;
}

bool isMacOp(const ir::Op& op) {
  std::optional<Opcode> code = opcodeFor(op);
  return code && isa::unitOf(*code) == Unit::MacArray;
}

[[noreturn]] void fail(const ir::Op& op, const std::string& msg) { throw ir::PassError(op.diag(msg)); }

// ---- 1. legality ------------------------------------------------------------------------------

void checkValue(const ir::Op& op, const ir::Value* v, const std::string& what) {
  if (v->type.elem == ir::ElemType::F32)
    fail(op, "expected an integer " + what + " after quantization but got " + v->type.str() +
                 "; only quantize (at graph inputs) and dequantize (at graph outputs) may touch f32");
  if (!ir::isInteger(v->type.elem))
    fail(op, "expected an integer " + what + " but got " + v->type.str() + "; the BPU has no " +
                 ir::elemTypeName(v->type.elem) + " tensors");
  bool narrow = v->type.elem == ir::ElemType::SI8 || v->type.elem == ir::ElemType::SI16;
  bool constant = v->owner && v->owner->is("constant");
  if (narrow && !v->type.quant && !constant)
    fail(op, "expected a quantized " + what + " but " + v->type.str() + " has no scale");
}

// An f32 graph input read by anything but quantize, or a dequantize result read by an op, shows
// up as an f32 operand of an integer op, whose message names both rules.
void checkLegal(const ir::Function& fn) {
  for (const auto& opPtr : fn.ops) {
    const ir::Op& op = *opPtr;
    if (op.is("constant")) {
      if (!op.result()->hasUses()) fail(op, "is read by no op; run canonicalize before lowering");
      continue;
    }
    if (ir::quantRule(op) == ir::QuantRule::FoldFirst)
      fail(op, "has no BPU instruction; fold it into the preceding conv/linear (fold-bn) before lowering");
    if (ir::quantRule(op) == ir::QuantRule::Lut)
      fail(op, "has no BPU instruction; the quantize pass rewrites it into lut");
    if (op.is("quantize")) {
      if (!op.operand(0)->isArgument()) fail(op, "is only legal on a graph input, but its operand is computed");
      checkValue(op, op.result(), "result");
      continue;
    }
    if (op.is("dequantize")) {
      checkValue(op, op.operand(0), "operand");
      continue;
    }
    if (!opcodeFor(op)) fail(op, "has no BPU instruction");
    for (size_t i = 0; i < op.numOperands(); ++i) checkValue(op, op.operand(i), "operand #" + std::to_string(i));
    for (size_t i = 0; i < op.numResults(); ++i) checkValue(op, op.result(i), "result #" + std::to_string(i));
  }
  for (size_t i = 0; i < fn.returns().size(); ++i) {
    const ir::Value* v = fn.returns()[i];
    if (v->type.elem == ir::ElemType::F32 && !(v->owner && v->owner->is("dequantize")))
      throw ir::PassError("error: function @" + fn.name + " returns f32 result #" + std::to_string(i) +
                          " that is not produced by dequantize; graph outputs must come from the integer graph");
  }
}

// ---- 2. groups --------------------------------------------------------------------------------

struct Group {
  int64_t id = -1;
  std::vector<ir::Op*> members;  // function order
  ir::Op* anchor = nullptr;
  size_t last = 0;  // function index of the last member
  std::vector<ir::Op*> constants;
  std::vector<const ir::Value*> inputs;   // activations read from outside the group
  std::vector<const ir::Value*> outputs;  // member results read outside the group or returned
};

std::vector<Group> formGroups(const ir::Function& fn) {
  std::vector<Group> groups;
  std::map<int64_t, size_t> byId;
  for (size_t i = 0; i < fn.ops.size(); ++i) {
    ir::Op* op = fn.ops[i].get();
    if (op->is("constant")) continue;
    std::optional<int64_t> id;
    if (op->hasAttr("bpu.group")) {
      const ir::Attribute& a = op->attr("bpu.group");
      if (a.kind() != ir::AttrKind::Int) fail(*op, "expected an int 'bpu.group' but got " + a.str());
      id = a.asInt();
    }
    size_t g;
    if (id && byId.count(*id)) {
      g = byId[*id];
    } else {
      g = groups.size();
      groups.emplace_back();
      groups.back().id = id.value_or(-1);
      if (id) byId[*id] = g;
    }
    groups[g].members.push_back(op);
    groups[g].last = i;
  }
  std::stable_sort(groups.begin(), groups.end(), [](const Group& a, const Group& b) { return a.last < b.last; });

  for (Group& g : groups) {
    std::set<const ir::Op*> inGroup(g.members.begin(), g.members.end());
    for (ir::Op* op : g.members)
      if (isMacOp(*op)) {
        if (g.anchor) fail(*op, "shares bpu.group " + std::to_string(g.id) + " with another MAC-array op");
        g.anchor = op;
      }
    // The fuse pass names the anchor; it must be the MAC op where the group has one.
    for (ir::Op* op : g.members)
      if (op->hasAttr("bpu.group_role") && op->attr("bpu.group_role") == ir::Attribute("anchor")) {
        if (g.anchor && g.anchor != op)
          fail(*op, "is marked bpu.group_role \"anchor\" but the MAC-array op of its group is '" +
                        std::string(g.anchor->name()) + "'");
        g.anchor = op;
      }
    if (!g.anchor) g.anchor = g.members.front();
    for (ir::Op* op : g.members) {
      for (ir::Value* v : op->operands()) {
        if (v->owner && inGroup.count(v->owner)) continue;
        if (v->owner && v->owner->is("constant")) {
          if (std::find(g.constants.begin(), g.constants.end(), v->owner) == g.constants.end())
            g.constants.push_back(v->owner);
        } else if (std::find(g.inputs.begin(), g.inputs.end(), v) == g.inputs.end()) {
          g.inputs.push_back(v);
        }
      }
      for (const auto& r : op->results) {
        bool external = false;
        for (const ir::Use& u : r->uses()) external |= !u.user || !inGroup.count(u.user);
        if (external) g.outputs.push_back(r.get());
      }
    }
  }
  return groups;
}

// ---- 3a. tiling -------------------------------------------------------------------------------

// How an operand is read per output tile.
enum class Feed : uint8_t {
  Window,        // the spatial input window of the output rows and channels (conv, pool, resize)
  Rows,          // proportional to the tile's rows, all of its columns (linear/matmul lhs)
  Proportional,  // proportional to the tile (elementwise inputs of the output's shape)
  WholeByCols,   // the slice of the operand belonging to the tile's channels (weights, bias)
  Whole,         // the whole operand every tile (tables, broadcast operands, gather sources)
};

struct Operand {
  const ir::Value* value;
  Feed feed;
  bool constant;
  bool resident = false;  // already in SRAM (activations only)
  int64_t bytes;          // for Rows/Proportional: per outer item
};

// The output of a group seen as outer x rows x cols, with what every operand costs per tile.
struct TileSpace {
  int64_t outer = 1, rows = 1, cols = 1, width = 1;
  int64_t rowElems = 1;  // output elements per row and column (ops tiled by rows only)
  bool spatial = false;  // tile shape [1, tc, th, width] instead of [th, tc * rowElems]
  // Spatial input window (Feed::Window).
  enum class RowMap : uint8_t { Conv, ConvTranspose, Resize } rowMap = RowMap::Conv;
  int64_t inH = 1, inW = 1, inC = 1, inElemBytes = 1, kernel = 1, stride = 1, dilation = 1, outH = 1;
  bool channelwise = false;  // input channels follow the output channels (depthwise, pools)
  std::vector<Operand> operands;
  std::vector<const ir::Value*> outputs;
  std::vector<bool> outputResident;
};

struct TilePlan {
  int64_t th = 1, tc = 1, rowTiles = 1, colTiles = 1, tiles = 1;
  int64_t inBytes = 0, inCount = 1, weightBytes = 0, weightCount = 1, outBytes = 0, outCount = 1;
  int64_t need() const {
    return alignUp(inBytes) * inCount + alignUp(weightBytes) * weightCount + alignUp(outBytes) * outCount;
  }
};

int64_t windowRows(const TileSpace& s, int64_t th) {
  int64_t r = 0;
  switch (s.rowMap) {
    case TileSpace::RowMap::Conv: r = (th - 1) * s.stride + s.dilation * (s.kernel - 1) + 1; break;
    case TileSpace::RowMap::ConvTranspose: r = ceilDiv(th - 1 + s.dilation * (s.kernel - 1), s.stride) + 1; break;
    case TileSpace::RowMap::Resize: r = ceilDiv(th * s.inH, std::max<int64_t>(1, s.outH)) + 1; break;
  }
  return std::max<int64_t>(1, std::min(r, s.inH));
}

int64_t windowBytes(const TileSpace& s, int64_t th, int64_t tc) {
  int64_t ch = s.channelwise ? ceilDiv(tc * s.inC, s.cols) : s.inC;
  return ch * windowRows(s, th) * s.inW * s.inElemBytes;
}

int64_t operandTileBytes(const TileSpace& s, const Operand& o, int64_t th, int64_t tc) {
  switch (o.feed) {
    case Feed::Window: return windowBytes(s, th, tc);
    case Feed::Rows: return ceilDiv(o.bytes * th, s.rows);
    case Feed::Proportional: return ceilDiv(ceilDiv(o.bytes * th, s.rows) * tc, s.cols);
    case Feed::WholeByCols: return ceilDiv(o.bytes * tc, s.cols);
    case Feed::Whole: return o.bytes;
  }
  return o.bytes;
}

TilePlan planFor(const TileSpace& s, int64_t th, int64_t tc) {
  TilePlan p;
  p.th = th;
  p.tc = tc;
  p.rowTiles = ceilDiv(s.rows, th);
  p.colTiles = ceilDiv(s.cols, tc);
  p.tiles = s.outer * p.rowTiles * p.colTiles;
  for (const Operand& o : s.operands) {
    if (o.resident) continue;
    int64_t b = operandTileBytes(s, o, th, tc);
    (o.feed == Feed::WholeByCols || o.feed == Feed::Whole ? p.weightBytes : p.inBytes) += b;
  }
  for (size_t i = 0; i < s.outputs.size(); ++i)
    if (!s.outputResident[i]) p.outBytes += ceilDiv(ceilDiv(bytesOf(s.outputs[i]) / s.outer * th, s.rows) * tc, s.cols);
  p.inCount = p.outCount = p.tiles > 1 ? 2 : 1;
  p.weightCount = p.colTiles > 1 ? 2 : 1;
  return p;
}

// The plan with the fewest tiles whose buffers fit `budget`: for each channel split (halving), the
// most rows per tile that fit (the need grows with the rows).
std::optional<TilePlan> chooseTiles(const TileSpace& s, int64_t budget) {
  std::optional<TilePlan> best;
  for (int64_t tc = s.cols;; tc = ceilDiv(tc, 2)) {
    if (planFor(s, 1, tc).need() <= budget) {
      int64_t lo = 1, hi = s.rows;
      while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (planFor(s, mid, tc).need() <= budget)
          lo = mid;
        else
          hi = mid - 1;
      }
      TilePlan p = planFor(s, lo, tc);
      if (!best || p.tiles < best->tiles) best = p;
    }
    if (tc == 1) break;
  }
  return best;
}

int64_t product(const ir::Shape& s, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to && i < s.size(); ++i) p *= s[i];
  return p;
}

bool isWindow(ir::TileClass c) {
  return c == ir::TileClass::ConvWindow || c == ir::TileClass::DeconvWindow || c == ir::TileClass::PoolWindow ||
         c == ir::TileClass::ResizeWindow;
}

// Output rows, columns and the spatial input window of the group's anchor, by its tile class.
void shapeTiles(TileSpace& s, const ir::Op& a) {
  const ir::Shape& out = a.result()->type.shape;
  const ir::Value* primary = a.numOperands() ? a.operand(0) : nullptr;
  ir::TileClass tile = a.def().traits.tile;
  if (isWindow(tile)) {
    const ir::Shape& in = primary->type.shape;
    s.spatial = true;
    s.outer = out[0];
    s.cols = out[1];
    s.rows = out[2];
    s.width = out[3];
    s.inC = in[1];
    s.inH = in[2];
    s.inW = in[3];
    s.outH = out[2];
    s.inElemBytes = static_cast<int64_t>(ir::elemTypeBytes(primary->type.elem));
  }
  switch (tile) {
    case ir::TileClass::ConvWindow:
    case ir::TileClass::DeconvWindow:
      s.kernel = a.operand(1)->type.shape[2];
      s.stride = a.getInts("stride")[0];
      s.dilation = a.getInts("dilation")[0];
      s.channelwise = a.getInt("groups") > 1;
      s.rowMap = tile == ir::TileClass::ConvWindow ? TileSpace::RowMap::Conv : TileSpace::RowMap::ConvTranspose;
      return;
    case ir::TileClass::ResizeWindow:
      s.rowMap = TileSpace::RowMap::Resize;
      s.channelwise = true;
      return;
    case ir::TileClass::PoolWindow:
      s.kernel = a.getInts("kernel")[0];
      s.stride = a.getInts("stride")[0];
      s.dilation = a.def().findAttr("dilation") ? a.getInts("dilation")[0] : 1;
      s.channelwise = true;
      return;
    case ir::TileClass::Gemm:
      s.cols = out.back();
      s.rows = std::max<int64_t>(1, product(out, 0, out.size() - 1));
      return;
    case ir::TileClass::BatchedGemm:
      s.cols = out.back();
      s.rows = out[out.size() - 2];
      s.outer = product(out, 0, out.size() - 2);
      return;
    case ir::TileClass::AxisReduce: {
      const ir::Shape& in = primary->type.shape;
      int64_t axis = a.getInt("axis");
      if (axis < 0) axis += static_cast<int64_t>(in.size());
      s.rows = std::max<int64_t>(1, ir::numElements(in) / std::max<int64_t>(1, in[static_cast<size_t>(axis)]));
      return;
    }
    case ir::TileClass::PlaneReduce: s.rows = out[0] * out[1]; return;
    case ir::TileClass::Elementwise:
    case ir::TileClass::Join:
    case ir::TileClass::Indexed:
    case ir::TileClass::Scatter: s.rows = out.size() >= 2 ? product(out, 0, out.size() - 1) : 1; return;
    case ir::TileClass::None: break;
  }
  fail(a, "has no tiling rule (tile class none in the op table)");
}

TileSpace tileSpaceOf(const Group& g) {
  TileSpace s;
  const ir::Op& a = *g.anchor;
  const ir::Shape& out = a.result()->type.shape;
  const ir::Value* primary = a.numOperands() ? a.operand(0) : nullptr;
  ir::TileClass tile = a.def().traits.tile;
  bool spatialOp = isWindow(tile);
  bool gemm = tile == ir::TileClass::Gemm || tile == ir::TileClass::BatchedGemm;
  shapeTiles(s, a);
  s.outer = std::max<int64_t>(1, s.outer);
  s.rows = std::max<int64_t>(1, s.rows);
  s.cols = std::max<int64_t>(1, s.cols);
  if (!spatialOp) s.rowElems = std::max<int64_t>(1, ir::numElements(out) / (s.outer * s.rows * s.cols));

  int64_t outElems = std::max<int64_t>(1, ir::numElements(out));
  for (const ir::Op* c : g.constants) {
    const ir::Value* v = c->result();
    bool anchorWeight = false;
    for (size_t i = 1; i < a.numOperands(); ++i) anchorWeight |= a.operand(i) == v;
    Feed feed = isMacOp(a) && anchorWeight                                      ? Feed::WholeByCols
                : v->type.numel() == outElems && tile != ir::TileClass::Indexed ? Feed::Proportional
                                                                                : Feed::Whole;
    if (feed == Feed::Proportional)
      s.operands.push_back({v, feed, true, false, bytesOf(v) / s.outer});
    else
      s.operands.push_back({v, feed, true, false, bytesOf(v)});
  }
  for (const ir::Value* v : g.inputs) {
    Feed feed;
    int64_t bytes = bytesOf(v);
    auto batch = [&](const ir::Value* x) {
      return tile == ir::TileClass::BatchedGemm ? std::max<int64_t>(1, product(x->type.shape, 0, x->type.rank() - 2))
                                                : 1;
    };
    if (spatialOp && v == primary) {
      feed = Feed::Window;
    } else if (gemm && v == primary) {
      feed = Feed::Rows;
      bytes = bytesOf(v) / batch(v);
    } else if (tile == ir::TileClass::BatchedGemm && v == a.operand(1)) {
      feed = Feed::WholeByCols;
      bytes = bytesOf(v) / batch(v);
    } else if ((tile == ir::TileClass::Indexed && v == primary) || tile == ir::TileClass::Scatter) {
      feed = Feed::Whole;
    } else if (v->type.numel() < outElems && tile != ir::TileClass::Join &&
               !(v == primary && !isMacOp(a) && !spatialOp)) {
      feed = Feed::Whole;  // a broadcast operand of add/sub/mul
    } else {
      feed = Feed::Proportional;
      bytes = bytesOf(v) / s.outer;
    }
    s.operands.push_back({v, feed, false, false, bytes});
  }
  s.outputs = g.outputs;
  s.outputResident.assign(g.outputs.size(), false);
  return s;
}

// ---- 3b. SRAM ---------------------------------------------------------------------------------

// First-fit allocation of SRAM address ranges.
class SramAllocator {
 public:
  explicit SramAllocator(int64_t capacity) : capacity_(capacity) {}
  std::optional<int64_t> allocate(int64_t bytes) {
    bytes = alignUp(std::max<int64_t>(bytes, 1));
    int64_t at = 0;
    for (const auto& [off, size] : used_) {
      if (off - at >= bytes) break;
      at = off + size;
    }
    if (at + bytes > capacity_) return std::nullopt;
    used_[at] = bytes;
    return at;
  }
  void release(int64_t offset) { used_.erase(offset); }
  int64_t largestFree() const {
    int64_t best = 0, at = 0;
    for (const auto& [off, size] : used_) {
      best = std::max(best, off - at);
      at = off + size;
    }
    return std::max(best, capacity_ - at);
  }
  int64_t usedBytes() const {
    int64_t n = 0;
    for (const auto& [off, size] : used_) n += size;
    return n;
  }

 private:
  int64_t capacity_;
  std::map<int64_t, int64_t> used_;
};

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
