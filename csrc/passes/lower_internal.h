// The parts of the lower pass, shared by its files and by nothing else: the legality check
// (lower_legality.cpp), fused groups (lower_groups.cpp), output tiling (lower_tiling.cpp) and the
// SRAM allocator (lower_sram.cpp) that lower.cpp's emitter puts together.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ir/ir.h"
#include "isa/program.h"

namespace hbdk::passes::lowering {

constexpr int64_t kAlign = 64;  // SRAM buffers start on a 64-byte line

inline int64_t alignUp(int64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }
inline int64_t ceilDiv(int64_t a, int64_t b) { return b <= 0 ? a : (a + b - 1) / b; }
inline int64_t bytesOf(const ir::Value* v) { return static_cast<int64_t>(v->type.byteSize()); }

// The instruction that runs `op`, from its op-table traits; nullopt when it has none.
inline std::optional<isa::Opcode> opcodeFor(const ir::Op& op) {
  const char* name = op.def().traits.opcode;
  return name ? isa::parseOpcode(name) : std::nullopt;
}

inline bool isMacOp(const ir::Op& op) {
  std::optional<isa::Opcode> code = opcodeFor(op);
  return code && isa::unitOf(*code) == isa::Unit::MacArray;
}

[[noreturn]] inline void fail(const ir::Op& op, const std::string& msg) { throw ir::PassError(op.diag(msg)); }

// ---- 1. legality (lower_legality.cpp) ---------------------------------------------------------

// The rules of lower.cpp's header, op by op; a PassError naming the first op that breaks one.
void checkLegal(const ir::Function& fn);

// ---- 2. groups (lower_groups.cpp) -------------------------------------------------------------

struct Group {
  int64_t id = -1;
  std::vector<ir::Op*> members;  // function order
  ir::Op* anchor = nullptr;
  size_t last = 0;  // function index of the last member
  std::vector<ir::Op*> constants;
  std::vector<const ir::Value*> inputs;   // activations read from outside the group
  std::vector<const ir::Value*> outputs;  // member results read outside the group or returned
};

// The groups of `fn` in emission order (by their last member), each with its anchor, constants,
// external inputs and outputs.
std::vector<Group> formGroups(const ir::Function& fn);

// ---- 3a. tiling (lower_tiling.cpp) ------------------------------------------------------------

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

// The tile space of a group, from its anchor's tile class; a PassError for an anchor without one.
TileSpace tileSpaceOf(const Group& g);
// Bytes of operand `o` one tile of th rows and tc columns reads.
int64_t operandTileBytes(const TileSpace& s, const Operand& o, int64_t th, int64_t tc);
// The buffers of th x tc tiles over `s` (operands already resident cost nothing).
TilePlan planFor(const TileSpace& s, int64_t th, int64_t tc);
// The plan with the fewest tiles whose buffers fit `budget`; nullopt when not even 1 x 1 does.
std::optional<TilePlan> chooseTiles(const TileSpace& s, int64_t budget);
// The product of the dimensions [from, to) of `s`.
int64_t product(const ir::Shape& s, size_t from, size_t to);

// ---- 3b. SRAM (lower_sram.cpp) ----------------------------------------------------------------

// First-fit allocation of SRAM address ranges.
class SramAllocator {
 public:
  explicit SramAllocator(int64_t capacity) : capacity_(capacity) {}
  std::optional<int64_t> allocate(int64_t bytes);
  void release(int64_t offset) { used_.erase(offset); }
  int64_t largestFree() const;
  int64_t usedBytes() const;

 private:
  int64_t capacity_;
  std::map<int64_t, int64_t> used_;
};

}  // namespace hbdk::passes::lowering
