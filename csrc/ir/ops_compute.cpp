// The HBIR ops of one family (constants, convolution, dense layers and normalization): shape inference and checks,
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

// ---- Constants --------------------------------------------------------------------------------

// The declared type is the only source of a constant's type; the verifier checks it against the
// resource's byte size.
Results inferConstant(const Op&) { return {{std::nullopt, std::nullopt}}; }

// ---- Convolution and dense ----------------------------------------------------------------------

void checkBias(const Op& op, size_t i, int64_t channels, const std::string& why) {
  if (!hasOperand(op, i)) return;
  checkRank(op, i, 1);
  checkDim(op, i, 0, channels, why);
  checkSameFloatness(op, i, 0);
}

Results inferConv2d(const Op& op) {
  const TensorType& x = checkRank(op, 0, 4);
  const TensorType& w = checkRank(op, 1, 4);
  checkSameFloatness(op, 1, 0);
  Ints stride = positiveInts(op, "stride", 2);
  Ints pad = nonNegativeInts(op, "padding", 4);
  Ints dil = positiveInts(op, "dilation", 2);
  int64_t groups = positiveInt(op, "groups");
  int64_t cin = x.shape[1], cout = w.shape[0];
  if (cin % groups != 0) attrError(op, "groups", "a divisor of the input channels (" + std::to_string(cin) + ")");
  if (cout % groups != 0)
    attrError(op, "groups", "a divisor of the output channels (weight dim 0 = " + std::to_string(cout) + ")");
  checkDim(op, 1, 1, cin / groups, "input channels " + std::to_string(cin) + " / groups " + std::to_string(groups));
  checkBias(op, 2, cout, "weight dim 0");
  int64_t oh = windowOutput(op, "height", x.shape[2], w.shape[2], stride[0], pad[0], pad[2], dil[0]);
  int64_t ow = windowOutput(op, "width", x.shape[3], w.shape[3], stride[1], pad[1], pad[3], dil[1]);
  return {computeResult({x.shape[0], cout, oh, ow}, x)};
}

int64_t macsConv2d(const Op& op) {
  Shape y = *inferConv2d(op)[0].shape;
  const Shape& w = operandType(op, 1).shape;
  return macProduct({y[0], y[1], y[2], y[3], w[1], w[2], w[3]});
}

Results inferConvTranspose2d(const Op& op) {
  const TensorType& x = checkRank(op, 0, 4);
  const TensorType& w = checkRank(op, 1, 4);
  checkSameFloatness(op, 1, 0);
  Ints stride = positiveInts(op, "stride", 2);
  Ints pad = nonNegativeInts(op, "padding", 4);
  Ints outPad = nonNegativeInts(op, "output_padding", 2);
  Ints dil = positiveInts(op, "dilation", 2);
  int64_t groups = positiveInt(op, "groups");
  int64_t cin = x.shape[1];
  if (cin % groups != 0) attrError(op, "groups", "a divisor of the input channels (" + std::to_string(cin) + ")");
  checkDim(op, 1, 0, cin, "input channels");
  int64_t cout = mulChecked(op, w.shape[1], groups);
  checkBias(op, 2, cout, "weight dim 1 * groups");
  Shape out{x.shape[0], cout, 0, 0};
  const char* axisNames[2] = {"height", "width"};
  for (size_t a = 0; a < 2; ++a) {
    // Output padding resolves which of several input sizes produced this one; it must stay
    // inside one stride (or dilation) step, as in PyTorch.
    if (outPad[a] >= std::max(stride[a], dil[a]))
      attrError(op, "output_padding", "values smaller than stride or dilation");
    int64_t len = mulChecked(op, x.shape[2 + a] - 1, stride[a]) - pad[a] - pad[a + 2] +
                  mulChecked(op, dil[a], w.shape[2 + a] - 1) + outPad[a] + 1;
    if (len < 1)
      op.error(std::string("expected a positive output ") + axisNames[a] + " but got " + std::to_string(len) +
               " (padding " + op.attr("padding").str() + " removes more than the input produces)");
    out[2 + a] = len;
  }
  return {computeResult(out, x)};
}

int64_t macsConvTranspose2d(const Op& op) {
  Shape y = *inferConvTranspose2d(op)[0].shape;
  const Shape& x = operandType(op, 0).shape;
  const Shape& w = operandType(op, 1).shape;
  return macProduct({x[0], x[1], x[2], x[3], w[1], w[2], w[3]});
}

Results inferLinear(const Op& op) {
  const TensorType& x = checkMinRank(op, 0, 1);
  const TensorType& w = checkRank(op, 1, 2);
  checkSameFloatness(op, 1, 0);
  checkDim(op, 1, 1, x.shape.back(), "input last dim");
  checkBias(op, 2, w.shape[0], "weight dim 0");
  Shape out = x.shape;
  out.back() = w.shape[0];
  return {computeResult(out, x)};
}

int64_t macsLinear(const Op& op) {
  inferLinear(op);
  const Shape& x = operandType(op, 0).shape;
  int64_t rows = macProduct({});
  for (size_t i = 0; i + 1 < x.size(); ++i) rows = macProduct({rows, x[i]});
  return macProduct({rows, operandType(op, 1).shape[0], x.back()});
}

Results inferMatmul(const Op& op) {
  const TensorType& a = checkMinRank(op, 0, 2);
  const TensorType& b = checkMinRank(op, 1, 2);
  checkSameFloatness(op, 1, 0);
  int64_t m = a.shape[a.shape.size() - 2], k = a.shape.back(), n = b.shape.back();
  checkDim(op, 1, b.shape.size() - 2, k, "lhs last dim");
  Shape out =
      broadcastShapes(op, Shape(a.shape.begin(), a.shape.end() - 2), Shape(b.shape.begin(), b.shape.end() - 2), 0, 1);
  out.push_back(m);
  out.push_back(n);
  return {computeResult(out, a)};
}

int64_t macsMatmul(const Op& op) {
  Shape y = *inferMatmul(op)[0].shape;
  int64_t macs = operandType(op, 0).shape.back();  // K
  for (int64_t d : y) macs = macProduct({macs, d});
  return macs;
}

// ---- Normalization ----------------------------------------------------------------------------

Results inferBatchNorm(const Op& op) {
  const TensorType& x = checkMinRank(op, 0, 2);
  for (size_t i = 1; i < 5; ++i) {
    checkRank(op, i, 1);
    checkDim(op, i, 0, x.shape[1], "input channels, dim 1");
  }
  double eps = op.getFloat("eps");
  if (!(eps >= 0.0 && std::isfinite(eps))) attrError(op, "eps", "a finite non-negative value");
  return {computeResult(x.shape, x)};
}

Results inferLayerNorm(const Op& op) {
  const TensorType& x = checkMinRank(op, 0, 1);
  int64_t axis = normalizeAxis(op, "axis", op.getInt("axis"), x.rank());
  for (size_t i = 1; i < 3; ++i) {
    checkRank(op, i, 1);
    checkDim(op, i, 0, x.shape[static_cast<size_t>(axis)], "the normalized dim");
  }
  double eps = op.getFloat("eps");
  if (!(eps >= 0.0 && std::isfinite(eps))) attrError(op, "eps", "a finite non-negative value");
  return {computeResult(x.shape, x)};
}

// The affine operands stay f32 in the integer form too: its kernel derives the requantization
// from them (docs/numerics.md §4).
void verifyLayerNorm(const Op& op) {
  for (size_t i = 1; i < 3; ++i)
    if (operandType(op, i).elem != ElemType::F32) operandError(op, i, "expected f32 (the affine parameters stay f32)");
}

}  // namespace

void addComputeOps(std::vector<OpDef>& t) {
  // ---- Constants ----
  t.push_back(OpDef{"constant",
                    "A dense tensor held in the module's resource section; the declared result type gives its "
                    "shape and element type.",
                    {},
                    {kOutput},
                    {required("value", AttrKind::Resource, "key of the resource holding the raw little-endian bytes")},
                    checked<inferConstant>,
                    nullptr,
                    nullptr,
                    "%w = constant {value = dense_resource<w>} : tensor<16x8x3x3xf32>",
                    {QuantRule::Constant, nullptr, TileClass::None}});

  // ---- Convolution and dense ----
  t.push_back(
      OpDef{"conv2d",
            "2-D cross-correlation of NCHW input with weight [Cout, Cin/groups, KH, KW], plus optional bias [Cout].",
            {{"input", Arity::One, "[N, Cin, H, W]"},
             {"weight", Arity::One, "[Cout, Cin/groups, KH, KW]"},
             {"bias", Arity::Optional, "[Cout], added to every output position"}},
            {{"output", Arity::One,
              "[N, Cout, OH, OW] with OH = (H + pad_top + pad_bottom - dilation_h*(KH-1) - 1) / stride_h + 1"}},
            {intsAttr("stride", {1, 1}, "[stride_h, stride_w]"),
             intsAttr("padding", {0, 0, 0, 0}, "zero padding [top, left, bottom, right]"),
             intsAttr("dilation", {1, 1}, "[dilation_h, dilation_w]"),
             withDefault("groups", AttrKind::Int, 1, "channel groups; divides Cin and Cout")},
            checked<inferConv2d>,
            nullptr,
            macsConv2d,
            "%y = conv2d(%x, %w, %b) {stride = [1, 1], padding = [1, 1, 1, 1], dilation = [1, 1], groups = 1} : "
            "tensor<1x16x32x32xf32>",
            {QuantRule::Weighted, "conv2d", TileClass::ConvWindow, Fusion::Anchor, false, 0}});
  t.push_back(
      OpDef{"conv_transpose2d",
            "2-D transposed convolution (gradient of conv2d) of NCHW input with weight [Cin, Cout/groups, KH, KW], "
            "plus optional bias [Cout].",
            {{"input", Arity::One, "[N, Cin, H, W]"},
             {"weight", Arity::One, "[Cin, Cout/groups, KH, KW]"},
             {"bias", Arity::Optional, "[Cout]"}},
            {{"output", Arity::One,
              "[N, Cout, OH, OW] with OH = (H-1)*stride_h - pad_top - pad_bottom + dilation_h*(KH-1) + "
              "output_padding_h + 1"}},
            {intsAttr("stride", {1, 1}, "[stride_h, stride_w]"),
             intsAttr("padding", {0, 0, 0, 0}, "[top, left, bottom, right], removed from the full output"),
             intsAttr("output_padding", {0, 0}, "[h, w] added at the bottom/right; smaller than stride or dilation"),
             intsAttr("dilation", {1, 1}, "[dilation_h, dilation_w]"),
             withDefault("groups", AttrKind::Int, 1, "channel groups; divides Cin")},
            checked<inferConvTranspose2d>,
            nullptr,
            macsConvTranspose2d,
            "%y = conv_transpose2d(%x, %w, %b) {stride = [2, 2], padding = [1, 1, 1, 1], output_padding = [1, 1], "
            "dilation = [1, 1], groups = 1} : tensor<1x8x16x16xf32>",
            {QuantRule::Weighted, "conv_transpose2d", TileClass::DeconvWindow, Fusion::Anchor, false, 1}});
  t.push_back(
      OpDef{"linear",
            "Fully connected layer over the last dim: input [..., K] times weight [N, K] transposed, plus "
            "optional bias [N].",
            {{"input", Arity::One, "[..., K]"}, {"weight", Arity::One, "[N, K]"}, {"bias", Arity::Optional, "[N]"}},
            {{"output", Arity::One, "[..., N]"}},
            {},
            checked<inferLinear>,
            nullptr,
            macsLinear,
            "%y = linear(%x, %w, %b) : tensor<1x10xf32>",
            {QuantRule::Weighted, "gemm", TileClass::Gemm, Fusion::Anchor, false, 0}});
  t.push_back(OpDef{"matmul",
                    "Batched matrix product [..., M, K] x [..., K, N] -> [..., M, N]; batch dims broadcast like "
                    "numpy.",
                    {{"lhs", Arity::One, "[..., M, K], rank >= 2"}, {"rhs", Arity::One, "[..., K, N], rank >= 2"}},
                    {{"output", Arity::One, "[broadcast(batch dims), M, N]"}},
                    {},
                    checked<inferMatmul>,
                    nullptr,
                    macsMatmul,
                    "%y = matmul(%a, %b) : tensor<2x4x16x16xf32>",
                    {QuantRule::Accumulate, "gemm", TileClass::BatchedGemm}});

  // ---- Normalization ----
  t.push_back(OpDef{"batch_norm",
                    "Inference batch normalization over channel axis 1: (x - mean) / sqrt(var + eps) * weight + bias.",
                    {{"input", Arity::One, "[N, C, ...]"},
                     {"mean", Arity::One, "running mean [C]"},
                     {"var", Arity::One, "running variance [C]"},
                     {"weight", Arity::One, "scale (gamma) [C]"},
                     {"bias", Arity::One, "shift (beta) [C]"}},
                    {kOutput},
                    {withDefault("eps", AttrKind::Float, 1e-05, "added to the variance")},
                    checked<inferBatchNorm>,
                    nullptr,
                    nullptr,
                    "%y = batch_norm(%x, %mean, %var, %gamma, %beta) {eps = 1e-05} : tensor<1x16x8x8xf32>",
                    {QuantRule::FoldFirst}});
  t.push_back(
      OpDef{"layer_norm",
            "Normalization over one axis: (x - mean) / sqrt(var + eps) * weight + bias, the mean and "
            "(biased) variance taken along `axis`, weight and bias indexed along it.",
            {kInput, {"weight", Arity::One, "scale (gamma) [D], f32"}, {"bias", Arity::One, "shift (beta) [D], f32"}},
            {kOutput},
            {withDefault("axis", AttrKind::Int, int64_t{-1}, "the normalized axis (-1: the last, 1: NCHW channels)"),
             withDefault("eps", AttrKind::Float, 1e-05, "added to the variance")},
            checked<inferLayerNorm>,
            verifyLayerNorm,
            nullptr,
            "%y = layer_norm(%x, %gamma, %beta) {axis = -1, eps = 1e-05} : tensor<1x16x64xf32>",
            {QuantRule::Normalize, "layer_norm", TileClass::AxisReduce}});
}

}  // namespace hbdk::ir
