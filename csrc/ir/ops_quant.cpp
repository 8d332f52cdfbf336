// The HBIR ops of one family (quantization: quantize, dequantize, requantize, lut): shape inference and checks,
// then the table rows with their traits. ops.cpp assembles the families into the one table.
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "ir/ir.h"
#include "ir/op_families.h"
#include "ir/shape_infer.h"

namespace hbdk::ir {
namespace {

using namespace shape_infer;

// ---- Quantization -----------------------------------------------------------------------------

// Shape-preserving ops whose integer result type only the declaration can give.
Results inferSameShapeOpen(const Op& op) { return {{operandType(op, 0).shape, std::nullopt}}; }

Results inferDequantize(const Op& op) { return {{operandType(op, 0).shape, ElemType::F32}}; }

void checkQuantizedOperand(const Op& op, size_t i) {
  const TensorType& t = operandType(op, i);
  if (!isInteger(t.elem) || !t.quant) operandError(op, i, "an integer tensor with a scale");
}

// `allowed` lists the permitted element types; empty means any integer type.
void checkQuantizedResult(const Op& op, std::initializer_list<ElemType> allowed) {
  if (op.numResults() == 0) return;
  const TensorType& t = op.result(0)->type;
  bool elemOk = isInteger(t.elem);
  std::string names;
  if (allowed.size() > 0) {
    elemOk = false;
    for (ElemType e : allowed) {
      elemOk = elemOk || t.elem == e;
      names += std::string(names.empty() ? "" : " or ") + elemTypeName(e);
    }
  }
  if (!elemOk || !t.quant)
    op.error(resultLabel(op, 0) + ": expected " + (names.empty() ? "an integer" : names) +
             " tensor with a scale but got " + t.str());
}

void verifyQuantize(const Op& op) {
  if (operandType(op, 0).elem != ElemType::F32) operandError(op, 0, "element type f32");
  checkQuantizedResult(op, {ElemType::SI8, ElemType::SI16});
}

void verifyDequantize(const Op& op) { checkQuantizedOperand(op, 0); }

void verifyRequantize(const Op& op) {
  checkQuantizedOperand(op, 0);
  checkQuantizedResult(op, {});
  // Explicit parameters (docs/numerics.md §2): one (multiplier, shift) pair for the tensor or one
  // per index of `axis`; both empty means "computed from the scales".
  const Ints& mult = op.getInts("multiplier");
  const Ints& shift = op.getInts("shift");
  if (shift.size() != mult.size()) attrError(op, "shift", std::to_string(mult.size()) + " values (one per multiplier)");
  for (int64_t m : mult)
    if (m < 0 || m >= (int64_t{1} << 31)) attrError(op, "multiplier", "values in [0, 2^31)");
  for (int64_t s : shift)
    if (s < 0 || s > 62) attrError(op, "shift", "values in [0, 62]");
  if (mult.size() > 1) {
    const TensorType& x = operandType(op, 0);
    int64_t axis = normalizeAxis(op, "axis", op.getInt("axis"), x.rank());
    if (static_cast<int64_t>(mult.size()) != x.shape[static_cast<size_t>(axis)])
      attrError(op, "multiplier",
                "1 or " + std::to_string(x.shape[static_cast<size_t>(axis)]) + " values (dim " + std::to_string(axis) +
                    " of the input)");
  }
}

void verifyLut(const Op& op) {
  const TensorType& x = operandType(op, 0);
  if (x.elem != ElemType::SI8 && x.elem != ElemType::SI16) operandError(op, 0, "element type si8 or si16");
  const TensorType& table = checkRank(op, 1, 1);
  if (!isInteger(table.elem)) operandError(op, 1, "an integer element type");
  // An si8 input indexes every entry directly.
  if (x.elem == ElemType::SI8 && table.shape[0] != 256) operandError(op, 1, "256 entries for an si8 input");
  if (op.numResults() > 0 && !isInteger(op.result(0)->type.elem))
    op.error(resultLabel(op, 0) + ": expected an integer element type but got " + op.result(0)->type.str());
}

}  // namespace

void addQuantOps(std::vector<OpDef>& t) {
  // ---- Quantization ----
  t.push_back(OpDef{"quantize",
                    "f32 to si8/si16 by round(x / scale), saturated; the declared result type carries the scale.",
                    {{"input", Arity::One, "f32 tensor"}},
                    {{"output", Arity::One, "si8 or si16 with a scale, same shape"}},
                    {},
                    checked<inferSameShapeOpen>,
                    verifyQuantize,
                    nullptr,
                    "%q = quantize(%x) : tensor<1x8x4x4xsi8, scale=0.05>",
                    {QuantRule::Integer, "quantize", TileClass::Elementwise}});
  t.push_back(OpDef{"dequantize",
                    "Integer tensor with a scale to f32 by x * scale.",
                    {{"input", Arity::One, "integer tensor with a scale"}},
                    {{"output", Arity::One, "f32, same shape"}},
                    {},
                    checked<inferDequantize>,
                    verifyDequantize,
                    nullptr,
                    "%x = dequantize(%q) : tensor<1x8x4x4xf32>",
                    {QuantRule::Integer, "dequantize", TileClass::Elementwise}});
  t.push_back(OpDef{"requantize",
                    "Rescales an integer tensor to the declared integer type and scale: round(x * in_scale / "
                    "out_scale), saturated.",
                    {{"input", Arity::One, "integer tensor with a scale"}},
                    {{"output", Arity::One, "integer tensor with a scale, same shape"}},
                    {intsAttr("multiplier", {},
                              "per-tensor [M] or one per index of `axis`, each in [0, 2^31); [] computes them "
                              "from the scales"),
                     intsAttr("shift", {}, "right shifts in [0, 62], one per multiplier"),
                     withDefault("axis", AttrKind::Int, 1,
                                 "axis of per-channel multipliers; negative counts "
                                 "from the end")},
                    checked<inferSameShapeOpen>,
                    verifyRequantize,
                    nullptr,
                    "%y = requantize(%acc) {multiplier = [1677722], shift = [24], axis = 1} : "
                    "tensor<1x8x4x4xsi8, scale=0.1>",
                    {QuantRule::Integer, "requantize", TileClass::Elementwise}});
  t.push_back(OpDef{"lut",
                    "Elementwise table lookup: each si8/si16 input value indexes `table` (256 entries for si8).",
                    {{"input", Arity::One, "si8 or si16 tensor"},
                     {"table", Arity::One, "rank-1 integer constant; 256 entries for an si8 input"}},
                    {{"output", Arity::One, "integer tensor, same shape"}},
                    {},
                    checked<inferSameShapeOpen>,
                    verifyLut,
                    nullptr,
                    "%y = lut(%x, %table) : tensor<1x8x4x4xsi8, scale=0.0078125>",
                    {QuantRule::Integer, "lut", TileClass::Elementwise}});
}

}  // namespace hbdk::ir
