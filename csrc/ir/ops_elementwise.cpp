// The HBIR ops of one family (elementwise activations and arithmetic): shape inference and checks,
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

// ---- Elementwise ------------------------------------------------------------------------------

Results inferUnary(const Op& op) { return {computeResult(operandType(op, 0).shape, operandType(op, 0))}; }

Results inferClip(const Op& op) {
  double lo = op.getFloat("min"), hi = op.getFloat("max");
  if (std::isnan(lo)) attrError(op, "min", "a number");
  if (!(lo <= hi)) attrError(op, "max", "a value >= min (" + op.attr("min").str() + ")");
  return inferUnary(op);
}

Results inferLeakyRelu(const Op& op) {
  if (!std::isfinite(op.getFloat("alpha"))) attrError(op, "alpha", "a finite value");
  return inferUnary(op);
}

Results inferSoftmax(const Op& op) {
  const TensorType& x = checkMinRank(op, 0, 1);
  normalizeAxis(op, "axis", op.getInt("axis"), x.rank());
  return {computeResult(x.shape, x)};
}

// The integer form reads the exp table the quantize pass builds (docs/numerics.md §4); the float
// form computes exp itself.
void verifySoftmax(const Op& op) {
  if (!isInteger(operandType(op, 0).elem)) {
    if (hasOperand(op, 1)) operandError(op, 1, "no table: an f32 softmax computes exp itself");
    return;
  }
  if (!hasOperand(op, 1))
    op.error("an integer softmax reads its exp table (256 si32 entries) as operand #1; the quantize pass builds it");
  checkRank(op, 1, 1);
  checkDim(op, 1, 0, 256, "exp table entries");
  checkIndexOperand(op, 1);
}

Results inferBinary(const Op& op) {
  const TensorType& a = operandType(op, 0);
  const TensorType& b = operandType(op, 1);
  checkSameFloatness(op, 1, 0);
  return {computeResult(broadcastShapes(op, a.shape, b.shape, 0, 1), a)};
}

OpDef unaryOp(const char* name, const char* summary, const char* example, OpTraits traits) {
  return OpDef{name, summary, {kInput}, {kOutput}, {}, checked<inferUnary>, nullptr, nullptr, example, traits};
}

OpDef binaryOp(const char* name, const char* summary, const char* example, OpTraits traits) {
  return OpDef{name,      summary, {{"lhs", Arity::One, "left operand"}, {"rhs", Arity::One, "right operand"}},
               {kOutput}, {},      checked<inferBinary>,
               nullptr,   nullptr, example,
               traits};
}

}  // namespace

void addElementwiseOps(std::vector<OpDef>& t) {
  // ---- Elementwise activations ----
  t.push_back(unaryOp("relu", "Elementwise max(x, 0).", "%y = relu(%x) : tensor<1x8x4x4xf32>",
                      {QuantRule::Clamp, "clamp", TileClass::Elementwise, Fusion::Epilogue, true}));
  t.push_back(unaryOp("relu6", "Elementwise min(max(x, 0), 6).", "%y = relu6(%x) : tensor<1x8x4x4xf32>",
                      {QuantRule::Clamp, "clamp", TileClass::Elementwise, Fusion::Epilogue, true}));
  t.push_back(
      unaryOp("sigmoid", "Elementwise 1 / (1 + exp(-x)).", "%y = sigmoid(%x) : tensor<1x8x4x4xf32>", {QuantRule::Lut}));
  t.push_back(
      unaryOp("tanh", "Elementwise hyperbolic tangent.", "%y = tanh(%x) : tensor<1x8x4x4xf32>", {QuantRule::Lut}));
  t.push_back(unaryOp("exp", "Elementwise e^x.", "%y = exp(%x) : tensor<1x8x4x4xf32>", {QuantRule::Lut}));
  t.push_back(unaryOp("silu", "Elementwise x * sigmoid(x) (SiLU, swish).", "%y = silu(%x) : tensor<1x8x4x4xf32>",
                      {QuantRule::Lut}));
  t.push_back(unaryOp("hardswish", "Elementwise x * min(max(x + 3, 0), 6) / 6.",
                      "%y = hardswish(%x) : tensor<1x8x4x4xf32>", {QuantRule::Lut}));
  t.push_back(unaryOp("hardsigmoid", "Elementwise min(max(x + 3, 0), 6) / 6.",
                      "%y = hardsigmoid(%x) : tensor<1x8x4x4xf32>", {QuantRule::Lut}));
  t.push_back(unaryOp("gelu", "Elementwise x * Phi(x) = 0.5 x (1 + erf(x / sqrt(2))), the exact GELU.",
                      "%y = gelu(%x) : tensor<1x8x4x4xf32>", {QuantRule::Lut}));
  t.push_back(unaryOp("sin", "Elementwise sine (radians).", "%y = sin(%x) : tensor<1x8x4x4xf32>", {QuantRule::Lut}));
  t.push_back(unaryOp("cos", "Elementwise cosine (radians).", "%y = cos(%x) : tensor<1x8x4x4xf32>", {QuantRule::Lut}));
  t.push_back(
      OpDef{"clip",
            "Elementwise min(max(x, min), max).",
            {kInput},
            {kOutput},
            {required("min", AttrKind::Float, "lower bound"), required("max", AttrKind::Float, "upper bound, >= min")},
            checked<inferClip>,
            nullptr,
            nullptr,
            "%y = clip(%x) {min = 0.0, max = 6.0} : tensor<1x8x4x4xf32>",
            {QuantRule::Clamp, "clamp", TileClass::Elementwise, Fusion::Epilogue}});
  t.push_back(OpDef{"leaky_relu",
                    "Elementwise x if x >= 0 else alpha * x.",
                    {kInput},
                    {kOutput},
                    {withDefault("alpha", AttrKind::Float, 0.01, "slope for negative inputs")},
                    checked<inferLeakyRelu>,
                    nullptr,
                    nullptr,
                    "%y = leaky_relu(%x) {alpha = 0.01} : tensor<1x8x4x4xf32>",
                    {QuantRule::Lut}});
  t.push_back(OpDef{
      "softmax",
      "exp(x) / sum(exp(x)) along `axis`, same shape as the input.",
      {kInput,
       {"table", Arity::Optional, "integer form only: si32 [256], EXP[k] of docs/numerics.md §4, built by quantize"}},
      {kOutput},
      {withDefault("axis", AttrKind::Int, -1, "normalized axis; negative counts from the end")},
      checked<inferSoftmax>,
      verifySoftmax,
      nullptr,
      "%y = softmax(%x) {axis = -1} : tensor<1x1000xf32>",
      {QuantRule::RescaleLut, "softmax", TileClass::AxisReduce}});

  // ---- Elementwise binary ----
  t.push_back(binaryOp("add", "Elementwise lhs + rhs with numpy broadcasting.",
                       "%z = add(%x, %y) : tensor<1x8x4x4xf32>",
                       {QuantRule::Rescale, "add", TileClass::Elementwise, Fusion::Residual}));
  t.push_back(binaryOp("sub", "Elementwise lhs - rhs with numpy broadcasting.",
                       "%z = sub(%x, %y) : tensor<1x8x4x4xf32>", {QuantRule::Rescale, "sub", TileClass::Elementwise}));
  t.push_back(binaryOp("mul", "Elementwise lhs * rhs with numpy broadcasting.",
                       "%z = mul(%x, %y) : tensor<1x8x4x4xf32>", {QuantRule::Rescale, "mul", TileClass::Elementwise}));
}

}  // namespace hbdk::ir
