// The HBIR op table: every op's operands, attributes, shape inference, extra checks, MAC count
// and IR example, declared exactly once. Infer/verify functions come first, grouped by family,
// then the table in the same order; the checking vocabulary lives in shape_infer.h.
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>

#include "ir/ir.h"
#include "ir/op_def.h"
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

Results inferBinary(const Op& op) {
  const TensorType& a = operandType(op, 0);
  const TensorType& b = operandType(op, 1);
  checkSameFloatness(op, 1, 0);
  return {computeResult(broadcastShapes(op, a.shape, b.shape, 0, 1), a)};
}

// ---- Data movement ----------------------------------------------------------------------------

Results inferConcat(const Op& op) {
  if (op.numOperands() == 0) op.error("expected at least 1 input but got 0");
  const TensorType& first = checkMinRank(op, 0, 1);
  int64_t axis = normalizeAxis(op, "axis", op.getInt("axis"), first.rank());
  Shape out = first.shape;
  for (size_t i = 1; i < op.numOperands(); ++i) {
    const TensorType& t = operandType(op, i);
    if (t.elem != first.elem)
      operandError(op, i, std::string("element type ") + elemTypeName(first.elem) + " like operand #0");
    if (t.rank() != first.rank()) operandError(op, i, "rank " + std::to_string(first.rank()) + " like operand #0");
    for (size_t d = 0; d < t.shape.size(); ++d)
      if (static_cast<int64_t>(d) != axis && t.shape[d] != first.shape[d])
        operandError(op, i,
                     "dim " + std::to_string(d) + " = " + std::to_string(first.shape[d]) +
                         " like operand #0 (all dims but axis " + std::to_string(axis) + " must match)");
    out[static_cast<size_t>(axis)] += t.shape[static_cast<size_t>(axis)];  // each <= 2^40: no overflow
  }
  return {sameElem(out, first)};
}

Results inferSplit(const Op& op) {
  const TensorType& x = checkMinRank(op, 0, 1);
  size_t axis = static_cast<size_t>(normalizeAxis(op, "axis", op.getInt("axis"), x.rank()));
  const Ints& sizes = op.getInts("sizes");
  std::string expected = "positive sizes summing to dim " + std::to_string(axis) + " (" +
                         std::to_string(x.shape[axis]) + ") of " + x.str();
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 1 || s > x.shape[axis]) attrError(op, "sizes", expected);
    total += s;
  }
  if (sizes.empty() || total != x.shape[axis]) attrError(op, "sizes", expected);
  Results rs;
  for (int64_t s : sizes) {
    Shape piece = x.shape;
    piece[axis] = s;
    rs.push_back(sameElem(piece, x));
  }
  return rs;
}

Results inferSlice(const Op& op) {
  const TensorType& x = checkMinRank(op, 0, 1);
  const Ints& axes = op.getInts("axes");
  const Ints& starts = op.getInts("starts");
  const Ints& ends = op.getInts("ends");
  const Ints& steps = op.getInts("steps");
  std::string perAxis = std::to_string(axes.size()) + " values (one per entry of 'axes')";
  if (axes.empty()) attrError(op, "axes", "at least one axis");
  if (starts.size() != axes.size()) attrError(op, "starts", perAxis);
  if (ends.size() != axes.size()) attrError(op, "ends", perAxis);
  if (!steps.empty() && steps.size() != axes.size()) attrError(op, "steps", "[] (all 1) or " + perAxis);
  Shape out = x.shape;
  std::vector<bool> seen(x.shape.size(), false);
  for (size_t k = 0; k < axes.size(); ++k) {
    size_t a = static_cast<size_t>(normalizeAxis(op, "axes", axes[k], x.rank()));
    if (seen[a]) attrError(op, "axes", "distinct axes");
    seen[a] = true;
    int64_t step = steps.empty() ? 1 : steps[k];
    if (step < 1) attrError(op, "steps", "values >= 1");
    // Negative positions count from the end; then both clamp into [0, dim] like numpy.
    int64_t dim = x.shape[a];
    auto clampPos = [dim](int64_t p) { return std::min(std::max(p < 0 ? p + dim : p, int64_t{0}), dim); };
    int64_t start = clampPos(starts[k]), end = clampPos(ends[k]);
    if (end <= start)
      op.error("expected a non-empty slice of axis " + std::to_string(a) + " (dim " + std::to_string(dim) +
               ") but got start " + std::to_string(starts[k]) + ", end " + std::to_string(ends[k]));
    out[a] = (end - start - 1) / step + 1;
  }
  return {sameElem(out, x)};
}

Results inferReshape(const Op& op) {
  const TensorType& x = operandType(op, 0);
  const Ints& shape = op.getInts("shape");
  Shape out = shape;
  int64_t known = 1;
  int64_t inferAt = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1 && inferAt < 0) {
      inferAt = static_cast<int64_t>(i);
      continue;
    }
    if (shape[i] < 1 || shape[i] > kMaxElements) attrError(op, "shape", "positive dims and at most one -1");
    known = mulChecked(op, known, shape[i]);
  }
  int64_t n = x.numel();
  if (inferAt >= 0) {
    if (n % known != 0) attrError(op, "shape", "dims dividing the " + std::to_string(n) + " elements of " + x.str());
    out[static_cast<size_t>(inferAt)] = n / known;
  } else if (known != n) {
    attrError(op, "shape", "dims multiplying to the " + std::to_string(n) + " elements of " + x.str());
  }
  return {sameElem(out, x)};
}

Results inferTranspose(const Op& op) {
  const TensorType& x = operandType(op, 0);
  const Ints& perm = op.getInts("perm");
  std::string expected = "a permutation of the " + std::to_string(x.rank()) + " axes of " + x.str();
  if (static_cast<int64_t>(perm.size()) != x.rank()) attrError(op, "perm", expected);
  Shape out(perm.size());
  std::vector<bool> seen(perm.size(), false);
  for (size_t i = 0; i < perm.size(); ++i) {
    size_t a = static_cast<size_t>(normalizeAxis(op, "perm", perm[i], x.rank()));
    if (seen[a]) attrError(op, "perm", expected);
    seen[a] = true;
    out[i] = x.shape[a];
  }
  return {sameElem(out, x)};
}

Results inferFlatten(const Op& op) {
  const TensorType& x = checkMinRank(op, 0, 1);
  int64_t start = normalizeAxis(op, "start_dim", op.getInt("start_dim"), x.rank());
  int64_t end = normalizeAxis(op, "end_dim", op.getInt("end_dim"), x.rank());
  if (start > end) attrError(op, "end_dim", "an axis >= start_dim (" + std::to_string(start) + ")");
  Shape out(x.shape.begin(), x.shape.begin() + start);
  out.push_back(product(op, x.shape.begin() + start, x.shape.begin() + end + 1));
  out.insert(out.end(), x.shape.begin() + end + 1, x.shape.end());
  return {sameElem(out, x)};
}

Results inferPad(const Op& op) {
  const TensorType& x = checkMinRank(op, 0, 1);
  size_t r = x.shape.size();
  Ints pads = nonNegativeInts(op, "pads", 2 * r);
  const std::string& mode = enumAttr(op, "mode", {"constant", "edge", "reflect"});
  if (!std::isfinite(op.getFloat("value"))) attrError(op, "value", "a finite value");
  Shape out = x.shape;
  for (size_t d = 0; d < r; ++d) {
    // Reflection mirrors around the edge element, so it can add at most dim - 1 per side.
    if (mode == "reflect" && (pads[d] >= x.shape[d] || pads[d + r] >= x.shape[d]))
      attrError(op, "pads",
                "values below each padded dim for mode \"reflect\" (dim " + std::to_string(d) + " is " +
                    std::to_string(x.shape[d]) + ")");
    out[d] += pads[d] + pads[d + r];
  }
  return {sameElem(out, x)};
}

Results inferGather(const Op& op) {
  const TensorType& x = checkMinRank(op, 0, 1);
  const TensorType& idx = operandType(op, 1);
  size_t axis = static_cast<size_t>(normalizeAxis(op, "axis", op.getInt("axis"), x.rank()));
  Shape out(x.shape.begin(), x.shape.begin() + static_cast<std::ptrdiff_t>(axis));
  out.insert(out.end(), idx.shape.begin(), idx.shape.end());
  out.insert(out.end(), x.shape.begin() + static_cast<std::ptrdiff_t>(axis) + 1, x.shape.end());
  return {sameElem(out, x)};
}

void checkIndexOperand(const Op& op, size_t i) {
  if (operandType(op, i).elem != ElemType::SI32) operandError(op, i, "element type si32");
}

void verifyGather(const Op& op) { checkIndexOperand(op, 1); }

// ---- Pooling and resizing ---------------------------------------------------------------------

// PyTorch's rule: padding beyond half a (dilated) window would make windows of padding only.
void checkPoolPadding(const Op& op, const Ints& kernel, const Ints& pad, const Ints& dil) {
  for (size_t i = 0; i < 4; ++i) {
    int64_t effective = mulChecked(op, dil[i % 2], kernel[i % 2] - 1) + 1;
    if (pad[i] > effective / 2) attrError(op, "padding", "values at most half the (dilated) kernel");
  }
}

Results inferMaxPool2d(const Op& op) {
  const TensorType& x = checkRank(op, 0, 4);
  Ints kernel = positiveInts(op, "kernel", 2);
  Ints stride = positiveInts(op, "stride", 2);
  Ints pad = nonNegativeInts(op, "padding", 4);
  Ints dil = positiveInts(op, "dilation", 2);
  bool ceil = op.getBool("ceil_mode");
  checkPoolPadding(op, kernel, pad, dil);
  int64_t oh = windowOutput(op, "height", x.shape[2], kernel[0], stride[0], pad[0], pad[2], dil[0], ceil);
  int64_t ow = windowOutput(op, "width", x.shape[3], kernel[1], stride[1], pad[1], pad[3], dil[1], ceil);
  return {sameElem({x.shape[0], x.shape[1], oh, ow}, x)};
}

Results inferAvgPool2d(const Op& op) {
  const TensorType& x = checkRank(op, 0, 4);
  Ints kernel = positiveInts(op, "kernel", 2);
  Ints stride = positiveInts(op, "stride", 2);
  Ints pad = nonNegativeInts(op, "padding", 4);
  bool ceil = op.getBool("ceil_mode");
  checkPoolPadding(op, kernel, pad, {1, 1});
  int64_t oh = windowOutput(op, "height", x.shape[2], kernel[0], stride[0], pad[0], pad[2], 1, ceil);
  int64_t ow = windowOutput(op, "width", x.shape[3], kernel[1], stride[1], pad[1], pad[3], 1, ceil);
  return {computeResult({x.shape[0], x.shape[1], oh, ow}, x)};
}

Results inferGlobalAvgPool2d(const Op& op) {
  const TensorType& x = checkRank(op, 0, 4);
  return {computeResult({x.shape[0], x.shape[1], 1, 1}, x)};
}

Results inferResize2d(const Op& op) {
  const TensorType& x = checkRank(op, 0, 4);
  Ints size = positiveInts(op, "size", 2);
  const std::string& mode = enumAttr(op, "mode", {"nearest", "bilinear"});
  enumAttr(op, "coordinate_mode", {"half_pixel", "align_corners", "asymmetric"});
  Shape out{x.shape[0], x.shape[1], size[0], size[1]};
  // Nearest only copies elements; bilinear computes new values.
  return {mode == "nearest" ? sameElem(out, x) : computeResult(out, x)};
}

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

// ---- Detection --------------------------------------------------------------------------------

Results inferPointPillarScatter(const Op& op) {
  const TensorType& features = checkRank(op, 0, 2);
  checkRank(op, 1, 2);
  checkDim(op, 1, 0, features.shape[0], "one coordinate row per pillar, features dim 0");
  checkDim(op, 1, 1, 4, "(batch, z, y, x)");
  Ints grid = positiveInts(op, "grid", 2);
  int64_t batch = positiveInt(op, "batch");
  return {sameElem({batch, features.shape[1], grid[0], grid[1]}, features)};
}

void verifyPointPillarScatter(const Op& op) { checkIndexOperand(op, 1); }

// ---- Reductions and selection -----------------------------------------------------------------

Results inferArgmax(const Op& op) {
  const TensorType& x = checkMinRank(op, 0, 1);
  size_t axis = static_cast<size_t>(normalizeAxis(op, "axis", op.getInt("axis"), x.rank()));
  Shape out = x.shape;
  if (op.getBool("keepdim"))
    out[axis] = 1;
  else
    out.erase(out.begin() + static_cast<std::ptrdiff_t>(axis));
  return {{out, ElemType::SI32}};
}

Results inferTopk(const Op& op) {
  const TensorType& x = checkMinRank(op, 0, 1);
  size_t axis = static_cast<size_t>(normalizeAxis(op, "axis", op.getInt("axis"), x.rank()));
  int64_t k = op.getInt("k");
  if (k < 1 || k > x.shape[axis])
    attrError(op, "k", "a value in [1, " + std::to_string(x.shape[axis]) + "] (dim " + std::to_string(axis) + ")");
  Shape out = x.shape;
  out[axis] = k;
  return {sameElem(out, x), {out, ElemType::SI32}};
}

// Indices are plain integers: a scale on them would mean nothing.
void checkIndexResult(const Op& op, size_t i) {
  if (i < op.numResults() && op.result(i)->type.quant)
    op.error(resultLabel(op, i) + ": expected si32 without a scale but got " + op.result(i)->type.str());
}

void verifyArgmax(const Op& op) { checkIndexResult(op, 0); }
void verifyTopk(const Op& op) { checkIndexResult(op, 1); }

// ---- The table --------------------------------------------------------------------------------

const OperandDef kInput{"input", Arity::One, "the input tensor"};
const ResultDef kOutput{"output", Arity::One, "the result tensor"};

AttrDef required(const char* name, AttrKind kind, const char* doc) { return {name, kind, std::nullopt, doc}; }
AttrDef withDefault(const char* name, AttrKind kind, Attribute def, const char* doc) {
  return {name, kind, std::move(def), doc};
}
AttrDef intsAttr(const char* name, std::vector<int64_t> def, const char* doc) {
  return {name, AttrKind::IntList, Attribute(std::move(def)), doc};
}

OpDef unaryOp(const char* name, const char* summary, const char* example) {
  return OpDef{name, summary, {kInput}, {kOutput}, {}, checked<inferUnary>, nullptr, nullptr, example};
}

OpDef binaryOp(const char* name, const char* summary, const char* example) {
  return OpDef{name,      summary, {{"lhs", Arity::One, "left operand"}, {"rhs", Arity::One, "right operand"}},
               {kOutput}, {},      checked<inferBinary>,
               nullptr,   nullptr, example};
}

std::vector<OpDef> buildTable() {
  std::vector<OpDef> t;

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
                    "%w = constant {value = dense_resource<w>} : tensor<16x8x3x3xf32>"});

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
            "tensor<1x16x32x32xf32>"});
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
            "dilation = [1, 1], groups = 1} : tensor<1x8x16x16xf32>"});
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
            "%y = linear(%x, %w, %b) : tensor<1x10xf32>"});
  t.push_back(OpDef{"matmul",
                    "Batched matrix product [..., M, K] x [..., K, N] -> [..., M, N]; batch dims broadcast like "
                    "numpy.",
                    {{"lhs", Arity::One, "[..., M, K], rank >= 2"}, {"rhs", Arity::One, "[..., K, N], rank >= 2"}},
                    {{"output", Arity::One, "[broadcast(batch dims), M, N]"}},
                    {},
                    checked<inferMatmul>,
                    nullptr,
                    macsMatmul,
                    "%y = matmul(%a, %b) : tensor<2x4x16x16xf32>"});

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
                    "%y = batch_norm(%x, %mean, %var, %gamma, %beta) {eps = 1e-05} : tensor<1x16x8x8xf32>"});

  // ---- Elementwise activations ----
  t.push_back(unaryOp("relu", "Elementwise max(x, 0).", "%y = relu(%x) : tensor<1x8x4x4xf32>"));
  t.push_back(unaryOp("relu6", "Elementwise min(max(x, 0), 6).", "%y = relu6(%x) : tensor<1x8x4x4xf32>"));
  t.push_back(unaryOp("sigmoid", "Elementwise 1 / (1 + exp(-x)).", "%y = sigmoid(%x) : tensor<1x8x4x4xf32>"));
  t.push_back(unaryOp("tanh", "Elementwise hyperbolic tangent.", "%y = tanh(%x) : tensor<1x8x4x4xf32>"));
  t.push_back(unaryOp("exp", "Elementwise e^x.", "%y = exp(%x) : tensor<1x8x4x4xf32>"));
  t.push_back(
      OpDef{"clip",
            "Elementwise min(max(x, min), max).",
            {kInput},
            {kOutput},
            {required("min", AttrKind::Float, "lower bound"), required("max", AttrKind::Float, "upper bound, >= min")},
            checked<inferClip>,
            nullptr,
            nullptr,
            "%y = clip(%x) {min = 0.0, max = 6.0} : tensor<1x8x4x4xf32>"});
  t.push_back(OpDef{"leaky_relu",
                    "Elementwise x if x >= 0 else alpha * x.",
                    {kInput},
                    {kOutput},
                    {withDefault("alpha", AttrKind::Float, 0.01, "slope for negative inputs")},
                    checked<inferLeakyRelu>,
                    nullptr,
                    nullptr,
                    "%y = leaky_relu(%x) {alpha = 0.01} : tensor<1x8x4x4xf32>"});
  t.push_back(OpDef{"softmax",
                    "exp(x) / sum(exp(x)) along `axis`, same shape as the input.",
                    {kInput},
                    {kOutput},
                    {withDefault("axis", AttrKind::Int, -1, "normalized axis; negative counts from the end")},
                    checked<inferSoftmax>,
                    nullptr,
                    nullptr,
                    "%y = softmax(%x) {axis = -1} : tensor<1x1000xf32>"});

  // ---- Elementwise binary ----
  t.push_back(
      binaryOp("add", "Elementwise lhs + rhs with numpy broadcasting.", "%z = add(%x, %y) : tensor<1x8x4x4xf32>"));
  t.push_back(
      binaryOp("sub", "Elementwise lhs - rhs with numpy broadcasting.", "%z = sub(%x, %y) : tensor<1x8x4x4xf32>"));
  t.push_back(
      binaryOp("mul", "Elementwise lhs * rhs with numpy broadcasting.", "%z = mul(%x, %y) : tensor<1x8x4x4xf32>"));

  // ---- Data movement ----
  t.push_back(OpDef{"concat",
                    "Joins one or more tensors of equal rank and element type along `axis`; other dims must match.",
                    {{"inputs", Arity::Variadic, "one or more tensors"}},
                    {kOutput},
                    {withDefault("axis", AttrKind::Int, 1, "joined axis; negative counts from the end")},
                    checked<inferConcat>,
                    nullptr,
                    nullptr,
                    "%y = concat(%a, %b) {axis = 1} : tensor<1x16x8x8xf32>"});
  t.push_back(OpDef{"split",
                    "Cuts the input along `axis` into consecutive pieces of the given sizes, one result each.",
                    {kInput},
                    {{"outputs", Arity::Variadic, "one piece per entry of `sizes`"}},
                    {withDefault("axis", AttrKind::Int, 1, "cut axis; negative counts from the end"),
                     required("sizes", AttrKind::IntList, "positive piece sizes summing to the axis dim")},
                    checked<inferSplit>,
                    nullptr,
                    nullptr,
                    "%a, %b = split(%x) {axis = 1, sizes = [8, 8]} : tensor<1x8x4x4xf32>, tensor<1x8x4x4xf32>"});
  t.push_back(
      OpDef{"slice",
            "Takes [start, end) with step along each listed axis; negative positions count from the end, then clamp "
            "to the dim like numpy.",
            {kInput},
            {kOutput},
            {required("axes", AttrKind::IntList, "sliced axes, distinct; negative counts from the end"),
             required("starts", AttrKind::IntList, "first position per axis"),
             required("ends", AttrKind::IntList, "one past the last position per axis"),
             intsAttr("steps", {}, "step per axis, >= 1; [] means all 1")},
            checked<inferSlice>,
            nullptr,
            nullptr,
            "%y = slice(%x) {axes = [2, 3], starts = [0, 0], ends = [4, -1], steps = [1, 2]} : tensor<1x8x4x2xf32>"});
  t.push_back(OpDef{"reshape",
                    "Row-major reshape to `shape`; one dim may be -1 and is inferred from the element count.",
                    {kInput},
                    {kOutput},
                    {required("shape", AttrKind::IntList, "target shape: positive dims and at most one -1")},
                    checked<inferReshape>,
                    nullptr,
                    nullptr,
                    "%y = reshape(%x) {shape = [1, -1]} : tensor<1x128xf32>"});
  t.push_back(OpDef{"transpose",
                    "Permutes dims: output dim i is input dim perm[i].",
                    {kInput},
                    {kOutput},
                    {required("perm", AttrKind::IntList, "a permutation of the input's axes")},
                    checked<inferTranspose>,
                    nullptr,
                    nullptr,
                    "%y = transpose(%x) {perm = [0, 2, 3, 1]} : tensor<1x4x4x8xf32>"});
  t.push_back(
      OpDef{"flatten",
            "Merges dims start_dim..end_dim (inclusive) into one, row-major.",
            {kInput},
            {kOutput},
            {withDefault("start_dim", AttrKind::Int, 1, "first merged dim; negative counts from the end"),
             withDefault("end_dim", AttrKind::Int, -1, "last merged dim (inclusive); negative counts from the end")},
            checked<inferFlatten>,
            nullptr,
            nullptr,
            "%y = flatten(%x) {start_dim = 1, end_dim = -1} : tensor<1x128xf32>"});
  t.push_back(OpDef{
      "pad",
      "Pads every dim with pads[d] before and pads[rank + d] after, using a constant, the edge value "
      "or a reflection.",
      {kInput},
      {kOutput},
      {required("pads", AttrKind::IntList, "[d0_begin, d1_begin, ..., d0_end, d1_end, ...], all >= 0 (ONNX layout)"),
       withDefault("mode", AttrKind::String, "constant", "\"constant\", \"edge\" or \"reflect\""),
       withDefault("value", AttrKind::Float, 0.0, "fill value for mode \"constant\"")},
      checked<inferPad>,
      nullptr,
      nullptr,
      "%y = pad(%x) {pads = [0, 0, 1, 1, 0, 0, 1, 1], mode = \"constant\", value = 0.0} : "
      "tensor<1x8x6x6xf32>"});
  t.push_back(OpDef{"gather",
                    "Picks entries of `input` along `axis` at si32 `indices`: output shape is input.shape[:axis] + "
                    "indices.shape + input.shape[axis+1:].",
                    {kInput, {"indices", Arity::One, "si32 positions along axis, any shape"}},
                    {kOutput},
                    {withDefault("axis", AttrKind::Int, 0, "gathered axis; negative counts from the end")},
                    checked<inferGather>,
                    verifyGather,
                    nullptr,
                    "%y = gather(%x, %idx) {axis = 0} : tensor<5x64xf32>"});

  // ---- Pooling and resizing ----
  t.push_back(OpDef{
      "max_pool2d",
      "Maximum over KH x KW windows of NCHW input; padding never wins.",
      {{"input", Arity::One, "[N, C, H, W]"}},
      {{"output", Arity::One, "[N, C, OH, OW]"}},
      {required("kernel", AttrKind::IntList, "[KH, KW]"), required("stride", AttrKind::IntList, "[stride_h, stride_w]"),
       intsAttr("padding", {0, 0, 0, 0}, "[top, left, bottom, right], at most half the kernel"),
       intsAttr("dilation", {1, 1}, "[dilation_h, dilation_w]"),
       withDefault("ceil_mode", AttrKind::Bool, false, "round the output size up instead of down")},
      checked<inferMaxPool2d>,
      nullptr,
      nullptr,
      "%y = max_pool2d(%x) {kernel = [3, 3], stride = [2, 2], padding = [1, 1, 1, 1], dilation = [1, 1], "
      "ceil_mode = false} : tensor<1x8x16x16xf32>"});
  t.push_back(OpDef{
      "avg_pool2d",
      "Mean over KH x KW windows of NCHW input.",
      {{"input", Arity::One, "[N, C, H, W]"}},
      {{"output", Arity::One, "[N, C, OH, OW]"}},
      {required("kernel", AttrKind::IntList, "[KH, KW]"), required("stride", AttrKind::IntList, "[stride_h, stride_w]"),
       intsAttr("padding", {0, 0, 0, 0}, "[top, left, bottom, right], at most half the kernel"),
       withDefault("ceil_mode", AttrKind::Bool, false, "round the output size up instead of down"),
       withDefault("count_include_pad", AttrKind::Bool, true, "divide by the full window, padding included")},
      checked<inferAvgPool2d>,
      nullptr,
      nullptr,
      "%y = avg_pool2d(%x) {kernel = [2, 2], stride = [2, 2], padding = [0, 0, 0, 0], ceil_mode = false, "
      "count_include_pad = true} : tensor<1x8x16x16xf32>"});
  t.push_back(OpDef{"global_avg_pool2d",
                    "Mean over H and W of NCHW input, giving [N, C, 1, 1].",
                    {{"input", Arity::One, "[N, C, H, W]"}},
                    {{"output", Arity::One, "[N, C, 1, 1]"}},
                    {},
                    checked<inferGlobalAvgPool2d>,
                    nullptr,
                    nullptr,
                    "%y = global_avg_pool2d(%x) : tensor<1x512x1x1xf32>"});
  t.push_back(OpDef{"resize2d",
                    "Resizes H and W of NCHW input to `size` by nearest or bilinear sampling.",
                    {{"input", Arity::One, "[N, C, H, W]"}},
                    {{"output", Arity::One, "[N, C, size[0], size[1]]"}},
                    {required("size", AttrKind::IntList, "output [H, W]"),
                     withDefault("mode", AttrKind::String, "nearest", "\"nearest\" or \"bilinear\""),
                     withDefault("coordinate_mode", AttrKind::String, "half_pixel",
                                 "how output positions map to input ones: \"half_pixel\", \"align_corners\" or "
                                 "\"asymmetric\"")},
                    checked<inferResize2d>,
                    nullptr,
                    nullptr,
                    "%y = resize2d(%x) {size = [16, 16], mode = \"nearest\", coordinate_mode = \"half_pixel\"} : "
                    "tensor<1x8x16x16xf32>"});

  // ---- Quantization ----
  t.push_back(OpDef{"quantize",
                    "f32 to si8/si16 by round(x / scale), saturated; the declared result type carries the scale.",
                    {{"input", Arity::One, "f32 tensor"}},
                    {{"output", Arity::One, "si8 or si16 with a scale, same shape"}},
                    {},
                    checked<inferSameShapeOpen>,
                    verifyQuantize,
                    nullptr,
                    "%q = quantize(%x) : tensor<1x8x4x4xsi8, scale=0.05>"});
  t.push_back(OpDef{"dequantize",
                    "Integer tensor with a scale to f32 by x * scale.",
                    {{"input", Arity::One, "integer tensor with a scale"}},
                    {{"output", Arity::One, "f32, same shape"}},
                    {},
                    checked<inferDequantize>,
                    verifyDequantize,
                    nullptr,
                    "%x = dequantize(%q) : tensor<1x8x4x4xf32>"});
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
                    "tensor<1x8x4x4xsi8, scale=0.1>"});
  t.push_back(OpDef{"lut",
                    "Elementwise table lookup: each si8/si16 input value indexes `table` (256 entries for si8).",
                    {{"input", Arity::One, "si8 or si16 tensor"},
                     {"table", Arity::One, "rank-1 integer constant; 256 entries for an si8 input"}},
                    {{"output", Arity::One, "integer tensor, same shape"}},
                    {},
                    checked<inferSameShapeOpen>,
                    verifyLut,
                    nullptr,
                    "%y = lut(%x, %table) : tensor<1x8x4x4xsi8, scale=0.0078125>"});

  // ---- Detection ----
  t.push_back(OpDef{"point_pillar_scatter",
                    "Scatters pillar features [P, C] into a zeroed BEV canvas [batch, C, H, W] at si32 coords "
                    "(batch, z, y, x).",
                    {{"features", Arity::One, "[P, C] per-pillar features"},
                     {"coords", Arity::One, "[P, 4] si32 (batch, z, y, x) per pillar"}},
                    {{"output", Arity::One, "[batch, C, grid[0], grid[1]]"}},
                    {required("grid", AttrKind::IntList, "canvas [H, W]"),
                     withDefault("batch", AttrKind::Int, 1, "canvas batch size")},
                    checked<inferPointPillarScatter>,
                    verifyPointPillarScatter,
                    nullptr,
                    "%bev = point_pillar_scatter(%feat, %coords) {grid = [496, 432], batch = 1} : "
                    "tensor<1x64x496x432xf32>"});

  // ---- Reductions and selection ----
  t.push_back(OpDef{"argmax",
                    "si32 position of the maximum along `axis` (the first one on ties).",
                    {kInput},
                    {{"output", Arity::One, "si32 positions"}},
                    {withDefault("axis", AttrKind::Int, 1, "reduced axis; negative counts from the end"),
                     withDefault("keepdim", AttrKind::Bool, true, "keep the reduced axis as size 1")},
                    checked<inferArgmax>,
                    verifyArgmax,
                    nullptr,
                    "%y = argmax(%x) {axis = 1, keepdim = true} : tensor<1x1x64x64xsi32>"});
  t.push_back(OpDef{"topk",
                    "The k largest (or smallest) entries along `axis` and their si32 positions.",
                    {kInput},
                    {{"values", Arity::One, "input element type, dim axis = k"},
                     {"indices", Arity::One, "si32 positions, dim axis = k"}},
                    {required("k", AttrKind::Int, "entries kept, in [1, dim]"),
                     withDefault("axis", AttrKind::Int, -1, "searched axis; negative counts from the end"),
                     withDefault("largest", AttrKind::Bool, true, "keep the largest (else the smallest)"),
                     withDefault("sorted", AttrKind::Bool, true, "order results best first")},
                    checked<inferTopk>,
                    verifyTopk,
                    nullptr,
                    "%values, %indices = topk(%x) {k = 5, axis = -1, largest = true, sorted = true} : "
                    "tensor<1x5xf32>, tensor<1x5xsi32>"});
  return t;
}

}  // namespace

const std::vector<OpDef>& opTable() {
  static const std::vector<OpDef> table = buildTable();
  return table;
}

const OpDef* lookupOp(std::string_view name) {
  static const std::map<std::string_view, const OpDef*> index = [] {
    std::map<std::string_view, const OpDef*> m;
    for (const OpDef& d : opTable()) m.emplace(d.name, &d);
    return m;
  }();
  auto it = index.find(name);
  return it == index.end() ? nullptr : it->second;
}

}  // namespace hbdk::ir
