// The op table's record type. Every HBIR op is declared exactly once, as an OpDef in the ops_*.cpp
// file of its family; the parser, printer, verifier, passes, Python bindings and docs/ops.md all
// read it from there. What a pass needs to know about an op (how it quantizes, which instruction
// runs it, how it tiles, how it fuses) is a trait of its row, never a list of names in the pass.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "ir/attributes.h"
#include "ir/types.h"

namespace hbdk::ir {

class Op;

enum class Arity : uint8_t {
  One,       // exactly one value
  Optional,  // zero or one; only trailing operands may be optional
  Variadic,  // zero or more; at most one variadic operand/result, and it is the last
};

struct OperandDef {
  const char* name;
  Arity arity;
  const char* doc;
};

struct ResultDef {
  const char* name;
  Arity arity;  // One or Variadic
  const char* doc;
};

struct AttrDef {
  const char* name;
  AttrKind kind;
  std::optional<Attribute> defaultValue;  // nullopt: the attribute is required
  const char* doc;
};

// What shape inference knows about one result. `elem` is nullopt when the element type is not
// implied by the operands (e.g. the integer output type of a quantized conv, or `quantize`), in
// which case the declared result type decides it; `shape` is nullopt only where nothing but the
// declaration can give it (a `constant`). Quantization scales are never inferred.
struct InferredType {
  std::optional<Shape> shape;
  std::optional<ElemType> elem;
};

// Shape inference; also checks everything shapes depend on (operand ranks, attribute ranges).
// Throws VerifyError via Op::error().
using InferFn = std::vector<InferredType> (*)(const Op& op);
// Extra checks that do not affect shapes (element types, quantization rules). May be null.
using VerifyFn = void (*)(const Op& op);
// Multiply-accumulates of one execution. May be null (then 0).
using MacsFn = int64_t (*)(const Op& op);

// How the quantize pass rewrites an op of a float graph (docs/numerics.md §4).
enum class QuantRule : uint8_t {
  Constant,    // a constant: quantized where it is read, as a weight, bias or activation
  Weighted,    // per-channel si8 weight (axis OpTraits::weightAxis), si32 accumulator, requantize after
  Accumulate,  // two activations multiplied: si32 accumulator at s_a * s_b, requantize after
  Clamp,       // integer clamp at the input's type, fused into a conv's requantize where possible
  Lut,         // replaced by lut(x, table) with the table of the function the op names
  Rescale,     // stays; its integer semantics rescale to the result's annotated scale
  RescaleLut,  // Rescale, reading a table the pass builds as a graph constant (softmax's exp)
  KeepsScale,  // moves values: the result takes the input's element type and scale
  IndexOnly,   // the operand is quantized, the si32 result holds positions (argmax)
  FoldFirst,   // no integer form: an earlier pass removes it (batch_norm: fold-bn)
  Normalize,   // the input is quantized, the f32 affine operands stay f32 and the kernel derives its
               // per-channel requantization from them and the scales (layer_norm)
  Integer,     // already integer (quantize, dequantize, requantize, lut): left as it is
};
const char* quantRuleName(QuantRule r);  // "weighted", "keeps_scale", ...

// How lower tiles an op's output and reads its operands per tile.
enum class TileClass : uint8_t {
  None,          // never lowered (constants become weight loads; float-only ops are rewritten first)
  ConvWindow,    // NCHW sliding window of a conv2d: rows map back through stride and dilation
  DeconvWindow,  // NCHW window of a transposed conv: rows map back through the stride inverse
  PoolWindow,    // NCHW window of a pooling op, channels independent
  ResizeWindow,  // NCHW window of a resize, rows map back by the scale factor
  Gemm,          // [..., K] x [N, K]: rows are the leading dims, columns the last
  BatchedGemm,   // [..., M, K] x [..., K, N]: batch outer, M rows, N columns
  AxisReduce,    // one row per position of the non-reduced dims of the op's `axis`
  PlaneReduce,   // one row per (N, C) plane (global pooling)
  Elementwise,   // rows are the leading dims of the output; broadcast operands read whole
  Join,          // concat: every input proportional to the output tile
  Indexed,       // gather: the source is read whole, the indices proportionally
  Scatter,       // point_pillar_scatter: every input read whole
};
const char* tileClassName(TileClass c);  // "conv_window", ...

// The role an op can take in a fused group (the fuse pass).
enum class Fusion : uint8_t {
  None,
  Anchor,    // conv / linear whose accumulator requantize starts a group
  Epilogue,  // a clamp applied to the group's requantized output
  Residual,  // an elementwise add of the group's output and another value
};
const char* fusionName(Fusion f);  // "none", "anchor", "epilogue", "residual"

// Refines OpTraits::quant for one op (resize2d: nearest moves values, bilinear rescales).
using QuantRuleFn = QuantRule (*)(const Op& op);

struct OpTraits {
  QuantRule quant = QuantRule::KeepsScale;
  // The ISA opcode that runs the op (isa/program.cpp's names), or nullptr: no instruction; the
  // quantize rule says what replaces the op before lowering.
  const char* opcode = nullptr;
  TileClass tile = TileClass::None;
  Fusion fusion = Fusion::None;
  // Every result value's magnitude is at most the largest input magnitude (moving, selecting,
  // averaging, max(x, 0)), so the input's symmetric scale covers the result: the torch front end
  // gives such a result its input's scale where no quantizer observes it.
  bool boundedByInput = false;
  int weightAxis = -1;  // Weighted: the weight axis holding the output channels
  QuantRuleFn quantOf = nullptr;
};

struct OpDef {
  const char* name;
  const char* summary;  // one line, shown in docs/ops.md and `hbdk-sim ops`
  std::vector<OperandDef> operands;
  std::vector<ResultDef> results;
  std::vector<AttrDef> attrs;
  InferFn infer;
  VerifyFn verify = nullptr;
  MacsFn macs = nullptr;
  const char* example = "";  // one line of IR text, shown in docs/ops.md
  OpTraits traits;

  const AttrDef* findAttr(std::string_view n) const;
  int minOperands() const;
  int maxOperands() const;  // -1: unbounded
};

// The quantize rule of this op instance (OpTraits::quantOf where the row has one).
QuantRule quantRule(const Op& op);

// The table, in declaration order.
const std::vector<OpDef>& opTable();
// nullptr when no op has this name.
const OpDef* lookupOp(std::string_view name);

}  // namespace hbdk::ir
