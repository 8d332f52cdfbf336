// The BPU instruction set as the lower pass emits it and the cycle model reads it: one instruction
// per fused group on the MAC array or the vector unit, DMA transfers between DDR and SRAM, and the
// SRAM plan. Also the instruction stream's binary encoding (a section of the .hbm file).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ir/types.h"

namespace hbdk::isa {

enum class Unit : uint8_t { MacArray, Vector, Dma };
const char* unitName(Unit u);  // "mac_array", "vector", "dma"

// One opcode per kind of work a unit does. Values are part of the binary encoding: append only.
enum class Opcode : uint8_t {
  // MAC array (linear and matmul share the GEMM opcode)
  Conv2d,
  ConvTranspose2d,
  Gemm,
  // vector unit
  Quantize,
  Dequantize,
  Requantize,
  Clamp,  // relu, relu6, clip
  Add,
  Sub,
  Mul,
  Lut,
  MaxPool,
  AvgPool,
  GlobalAvgPool,
  Resize,
  Softmax,
  Concat,
  Split,
  Slice,
  Reshape,  // reshape, flatten: a view, no data moves in SRAM
  Transpose,
  Pad,
  Gather,
  Scatter,  // point_pillar_scatter
  Argmax,
  Topk,
  // DMA
  LoadWeights,
  LoadActivation,
  StoreActivation,
  // vector unit, appended after the DMA opcodes so that the indices of the earlier ones stay
  LayerNorm,
  GridSample,
};
constexpr int kOpcodeCount = static_cast<int>(Opcode::GridSample) + 1;
const char* opcodeName(Opcode op);                         // "conv2d", "load_weights", ...
std::optional<Opcode> parseOpcode(std::string_view name);  // the inverse of opcodeName
Unit unitOf(Opcode op);

// What a vector-unit opcode reads per output element, for the cycle model.
enum class VectorWork : uint8_t {
  View,         // nothing moves (reshape): no work
  PerElement,   // one element-op per output element
  Softmax,      // max, exp-table lookup and sum, then a divide: three passes
  Window,       // the pooling window (KH * KW) per output
  Plane,        // the whole H x W plane per output (global pooling)
  Axis,         // the reduced axis per output (argmax)
  SortNetwork,  // a k-wide insertion network per input element (topk)
  Interpolate,  // four taps per output for bilinear, one for nearest
  Normalize,    // sum, sum of squares, then a multiply-add per element: three passes
  NotVector,    // the MAC array's and DMA's opcodes
};
VectorWork vectorWorkOf(Opcode op);
const char* vectorWorkName(VectorWork w);  // "per_element", "window", ...

// A buffer an instruction uses in SRAM. Double-buffered operands have count 2: one buffer is
// filled by DMA while the unit works on the other.
enum class BufferRole : uint8_t { Input, Weights, Output };
const char* bufferRoleName(BufferRole r);  // "input", "weights", "output"

struct SramBuffer {
  BufferRole role = BufferRole::Input;
  int64_t offset = 0;  // byte address in SRAM
  int64_t bytes = 0;   // one buffer
  int64_t count = 1;   // 1, or 2 when double-buffered
};

struct Instruction {
  Unit unit = Unit::Vector;
  Opcode opcode = Opcode::Clamp;
  // The HBIR op of @main (its index in the function) this instruction implements: the group's
  // anchor for compute, the consumer (loads) or producer (stores) for DMA.
  uint32_t opIndex = 0;
  // Every HBIR op this instruction accounts for: the anchor, its fused post-ops, and for a weight
  // load the constants it brings in.
  std::vector<uint32_t> ops;
  int64_t group = -1;                          // the fused group's `bpu.group`, -1 for an ungrouped op
  std::string layer;                           // the anchor's location name (or result name) for per-layer reports
  std::vector<Opcode> postOps;                 // fused work applied to the anchor's output, in order
  ir::ElemType inputElem = ir::ElemType::SI8;  // precision of the activation operands
  std::vector<int64_t> outputShape;
  std::vector<int64_t> tileShape;  // the output tile one pass of the unit produces
  int64_t tileCount = 1;
  // MAC-array work as GEMMs: gemmBatch independent (gemmM x gemmK) * (gemmK x gemmN) products.
  int64_t gemmBatch = 0, gemmM = 0, gemmN = 0, gemmK = 0;
  int64_t macs = 0;
  int64_t elements = 0;  // output elements produced (compute) or elements moved (DMA)
  int64_t bytesIn = 0;   // operand bytes the unit reads (from SRAM for compute, from DDR for loads)
  int64_t bytesOut = 0;  // result bytes the unit writes
  int64_t ddrReadBytes = 0;
  int64_t ddrWriteBytes = 0;
  std::vector<SramBuffer> sram;
};

// An intermediate tensor that stays in SRAM from the instruction that produces it to its last
// reader, instead of going to DDR and back.
struct SramRegion {
  std::string value;  // printed name of the HBIR value
  int64_t offset = 0;
  int64_t bytes = 0;
  uint32_t firstInstruction = 0;
  uint32_t lastInstruction = 0;
};

struct SramPlan {
  int64_t capacityBytes = 0;
  int64_t peakBytes = 0;     // largest SRAM use at any instruction (buffers + resident data)
  int64_t onChipBytes = 0;   // intermediate bytes handed between instructions inside SRAM
  int64_t spilledBytes = 0;  // intermediate bytes that went to DDR and were read back
  std::vector<SramRegion> resident;
};

struct Program {
  std::string march;
  std::string function = "main";
  uint32_t opCount = 0;  // ops in the lowered function; every index above is below it
  std::vector<Instruction> instructions;
  SramPlan sram;
};

bool operator==(const SramBuffer& a, const SramBuffer& b);
bool operator==(const Instruction& a, const Instruction& b);
bool operator==(const SramRegion& a, const SramRegion& b);
bool operator==(const SramPlan& a, const SramPlan& b);
bool operator==(const Program& a, const Program& b);
inline bool operator!=(const Program& a, const Program& b) { return !(a == b); }

// The instruction stream's bytes (layout in docs/hbm.md, "program section").
std::vector<uint8_t> encodeProgram(const Program& p);
// Decodes and checks the stream: known enums, unit matching opcode, op indices below opCount,
// non-negative sizes, SRAM buffers inside the capacity. Throws DecodeError naming the field.
Program decodeProgram(const uint8_t* data, size_t size);

// Totals over the program, in a fixed order: the .hbm perf summary.
std::vector<std::pair<std::string, int64_t>> programTotals(const Program& p);

// One line per instruction, for dumps and test failures.
std::string printProgram(const Program& p);

}  // namespace hbdk::isa
