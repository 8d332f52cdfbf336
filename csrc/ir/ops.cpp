// The HBIR op table: every op's operands, attributes, shape inference, extra checks and MAC count,
// declared exactly once. Shared shape/attribute checking helpers come first; the ops follow,
// grouped by family. Every check raises a one-line "expected ... but got ..." via Op::error.
#include <algorithm>
#include <limits>
#include <map>
#include <string>
#include <utility>

#include "ir/ir.h"
#include "ir/op_def.h"

namespace hbdk::ir {
namespace {

using Results = std::vector<InferredType>;
using Ints = std::vector<int64_t>;

// A tensor may hold at most 2^40 elements: far beyond any NPU model, and small enough that
// products of dims, strides and kernel sizes never overflow int64.
constexpr int64_t kMaxElements = int64_t{1} << 40;
// Shape-affecting attribute values (strides, paddings, sizes, ...) stay in int32 range.
constexpr int64_t kMaxAttrInt = std::numeric_limits<int32_t>::max();

// ---- Operand helpers ----------------------------------------------------------------------------

std::string operandLabel(const Op& op, size_t i) {
  const auto& defs = op.def().operands;
  const char* n = "?";
  if (i < defs.size())
    n = defs[i].name;
  else if (!defs.empty() && defs.back().arity == Arity::Variadic)
    n = defs.back().name;
  return "operand #" + std::to_string(i) + " (" + n + ")";
}

const TensorType& operandType(const Op& op, size_t i) { return op.operand(i)->type; }

[[noreturn]] void operandError(const Op& op, size_t i, const std::string& expected) {
  op.error(operandLabel(op, i) + ": expected " + expected + " but got " + operandType(op, i).str());
}

const TensorType& checkRank(const Op& op, size_t i, int64_t rank) {
  const TensorType& t = operandType(op, i);
  if (t.rank() != rank) operandError(op, i, "rank " + std::to_string(rank));
  return t;
}

const TensorType& checkMinRank(const Op& op, size_t i, int64_t minRank) {
  const TensorType& t = operandType(op, i);
  if (t.rank() < minRank) operandError(op, i, "rank >= " + std::to_string(minRank));
  return t;
}

// `what` names where the expected size comes from, e.g. "weight dim 0".
void checkDim(const Op& op, size_t i, size_t axis, int64_t expected, const std::string& what) {
  if (operandType(op, i).shape[axis] != expected)
    operandError(op, i, "dim " + std::to_string(axis) + " = " + std::to_string(expected) + " (" + what + ")");
}

// ---- Attribute helpers --------------------------------------------------------------------------

[[noreturn]] void attrError(const Op& op, const char* name, const std::string& expected) {
  op.error(std::string("attribute '") + name + "': expected " + expected + " but got " + op.attr(name).str());
}

Ints intList(const Op& op, const char* name, size_t n, int64_t lo, const char* what) {
  const Ints& v = op.getInts(name);
  std::string expected = std::to_string(n) + " " + what + " values";
  if (v.size() != n) attrError(op, name, expected);
  for (int64_t x : v)
    if (x < lo || x > kMaxAttrInt) attrError(op, name, expected + " (at most " + std::to_string(kMaxAttrInt) + ")");
  return v;
}
Ints positiveInts(const Op& op, const char* name, size_t n) { return intList(op, name, n, 1, "positive"); }
Ints nonNegativeInts(const Op& op, const char* name, size_t n) { return intList(op, name, n, 0, "non-negative"); }

int64_t positiveInt(const Op& op, const char* name) {
  int64_t v = op.getInt(name);
  if (v < 1 || v > kMaxAttrInt) attrError(op, name, "a value in [1, " + std::to_string(kMaxAttrInt) + "]");
  return v;
}

// Maps an axis in [-rank, rank) to [0, rank).
int64_t normalizeAxis(const Op& op, const char* name, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank)
    op.error(std::string("attribute '") + name + "': expected an axis in [" + std::to_string(-rank) + ", " +
             std::to_string(rank - 1) + "] but got " + std::to_string(axis));
  return axis < 0 ? axis + rank : axis;
}

const std::string& enumAttr(const Op& op, const char* name, std::initializer_list<const char*> allowed) {
  const std::string& v = op.getString(name);
  std::string list;
  for (const char* a : allowed) {
    if (v == a) return v;
    list += std::string(list.empty() ? "" : ", ") + '"' + a + '"';
  }
  attrError(op, name, "one of " + list);
}

// ---- Shape arithmetic ---------------------------------------------------------------------------

// Products of dims and attribute values: anything past 2^60 is rejected before it can overflow.
int64_t mulChecked(const Op& op, int64_t a, int64_t b) {
  constexpr int64_t kLimit = int64_t{1} << 60;
  if (a != 0 && (b > kLimit / a || b < -kLimit / a)) op.error("shape arithmetic overflows (" + std::to_string(a) + " * " + std::to_string(b) + ")");
  return a * b;
}

int64_t product(const Op& op, Shape::const_iterator b, Shape::const_iterator e) {
  int64_t n = 1;
  for (auto it = b; it != e; ++it) n = mulChecked(op, n, *it);
  return n;
}

// MAC counts saturate instead of failing: they are statistics, not shapes.
int64_t macProduct(std::initializer_list<int64_t> factors) {
  int64_t n = 1;
  for (int64_t f : factors) {
    if (f <= 0) return 0;
    if (n > std::numeric_limits<int64_t>::max() / f) return std::numeric_limits<int64_t>::max();
    n *= f;
  }
  return n;
}

// Dims must be positive and the element count bounded, for operands and results alike.
void checkShape(const Op& op, const Shape& s, const std::string& label, const std::string& typeStr) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 1) op.error(label + ": expected positive dims but got " + typeStr);
    if (d > kMaxElements / n)
      op.error(label + ": expected at most 2^40 elements but got " + typeStr);
    n *= d;
  }
}

// Numpy broadcasting of two shapes, aligned from the right.
Shape broadcastShapes(const Op& op, const Shape& a, const Shape& b, size_t i, size_t j) {
  size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t k = 0; k < r; ++k) {
    int64_t da = k < r - a.size() ? 1 : a[k - (r - a.size())];
    int64_t db = k < r - b.size() ? 1 : b[k - (r - b.size())];
    if (da != db && da != 1 && db != 1)
      op.error(operandLabel(op, i) + " and " + operandLabel(op, j) + ": expected broadcastable shapes but got " +
               operandType(op, i).str() + " and " + operandType(op, j).str());
    out[k] = da == 1 ? db : da;
  }
  return out;
}

// ---- Element types ------------------------------------------------------------------------------

// Compute ops: f32 in gives f32 out; on integer inputs the declared result type decides.
std::optional<ElemType> floatOrOpen(const TensorType& t) {
  return isFloat(t.elem) ? std::optional<ElemType>(ElemType::F32) : std::nullopt;
}

InferredType sameElem(Shape s, const TensorType& t) { return {std::move(s), t.elem}; }
InferredType computeResult(Shape s, const TensorType& t) { return {std::move(s), floatOrOpen(t)}; }

// Wraps every infer function: operand shapes are checked before it runs, result shapes after.
template <InferFn F>
Results checked(const Op& op) {
  for (size_t i = 0; i < op.numOperands(); ++i)
    checkShape(op, operandType(op, i).shape, operandLabel(op, i), operandType(op, i).str());
  Results rs = F(op);
  for (size_t i = 0; i < rs.size(); ++i)
    if (rs[i].shape) checkShape(op, *rs[i].shape, "result #" + std::to_string(i), "shape " + shapeStr(*rs[i].shape));
  return rs;
}

// ---- Sliding windows (conv, pool) ---------------------------------------------------------------

// One spatial axis of a conv/pool window. `axisName` is "height" or "width".
int64_t windowOutput(const Op& op, const char* axisName, int64_t in, int64_t kernel, int64_t stride,
                     int64_t padBegin, int64_t padEnd, int64_t dilation, bool ceilMode = false) {
  int64_t effective = mulChecked(op, dilation, kernel - 1) + 1;
  int64_t padded = in + padBegin + padEnd;
  if (padded < effective)
    op.error(std::string("expected the padded input ") + axisName + " (" + std::to_string(padded) +
             ") to be at least the dilated kernel " + axisName + " (" + std::to_string(effective) +
             ") but it is smaller");
  int64_t span = padded - effective;
  int64_t out = (ceilMode ? (span + stride - 1) / stride : span / stride) + 1;
  // A window may not start inside the end padding only (PyTorch's ceil_mode rule).
  if (ceilMode && (out - 1) * stride >= in + padBegin) --out;
  return out;
}

// ---- Constants ----------------------------------------------------------------------------------

Results inferConstant(const Op&) { return {{std::nullopt, std::nullopt}}; }

// ---- Convolution and dense --------------------------------------------------------------------

Results inferConv2d(const Op& op) {
  const TensorType& x = checkRank(op, 0, 4);
  const TensorType& w = checkRank(op, 1, 4);
  Ints stride = positiveInts(op, "stride", 2);
  Ints pad = nonNegativeInts(op, "padding", 4);
  Ints dil = positiveInts(op, "dilation", 2);
  int64_t groups = positiveInt(op, "groups");
  int64_t cin = x.shape[1], cout = w.shape[0];
  if (cin % groups != 0)
    attrError(op, "groups", "a divisor of the input channels (" + std::to_string(cin) + ")");
  if (cout % groups != 0)
    attrError(op, "groups", "a divisor of the output channels (weight dim 0 = " + std::to_string(cout) + ")");
  checkDim(op, 1, 1, cin / groups, "input channels " + std::to_string(cin) + " / groups " + std::to_string(groups));
  if (op.numOperands() > 2) {
    checkRank(op, 2, 1);
    checkDim(op, 2, 0, cout, "weight dim 0");
  }
  int64_t oh = windowOutput(op, "height", x.shape[2], w.shape[2], stride[0], pad[0], pad[2], dil[0]);
  int64_t ow = windowOutput(op, "width", x.shape[3], w.shape[3], stride[1], pad[1], pad[3], dil[1]);
  return {computeResult({x.shape[0], cout, oh, ow}, x)};
}

int64_t macsConv2d(const Op& op) {
  const Shape& w = operandType(op, 1).shape;
  Shape y = *inferConv2d(op)[0].shape;
  return macProduct({y[0], y[1], y[2], y[3], w[1], w[2], w[3]});
}

// ---- Normalization ------------------------------------------------------------------------------

Results inferBatchNorm(const Op& op) {
  const TensorType& x = checkMinRank(op, 0, 2);
  for (size_t i = 1; i < 5; ++i) {
    checkRank(op, i, 1);
    checkDim(op, i, 0, x.shape[1], "input channels");
  }
  double eps = op.getFloat("eps");
  if (!(eps >= 0.0)) attrError(op, "eps", "a non-negative value");
  return {computeResult(x.shape, x)};
}

// ---- Elementwise --------------------------------------------------------------------------------

Results inferUnary(const Op& op) { return {computeResult(operandType(op, 0).shape, operandType(op, 0))}; }

Results inferBinary(const Op& op) {
  const TensorType& a = operandType(op, 0);
  const TensorType& b = operandType(op, 1);
  if (isFloat(a.elem) != isFloat(b.elem)) operandError(op, 1, std::string("element type like operand #0 (") + elemTypeName(a.elem) + ")");
  return {computeResult(broadcastShapes(op, a.shape, b.shape, 0, 1), a)};
}

Results inferSoftmax(const Op& op) {
  const TensorType& x = checkMinRank(op, 0, 1);
  normalizeAxis(op, "axis", op.getInt("axis"), x.rank());
  return {computeResult(x.shape, x)};
}

// ---- Data movement ------------------------------------------------------------------------------

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

Results inferResize2d(const Op& op) {
  const TensorType& x = checkRank(op, 0, 4);
  Ints size = positiveInts(op, "size", 2);
  const std::string& mode = enumAttr(op, "mode", {"nearest", "bilinear"});
  enumAttr(op, "coordinate_mode", {"half_pixel", "align_corners", "asymmetric"});
  Shape out{x.shape[0], x.shape[1], size[0], size[1]};
  // Nearest only copies elements; bilinear computes new values.
  return {mode == "nearest" ? sameElem(out, x) : computeResult(out, x)};
}


Results inferReshape(const Op& op) {
  const TensorType& x = operandType(op, 0);
  const Ints& shape = op.getInts("shape");
  Shape out = shape;
  int64_t known = 1;
  int inferAt = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1 && inferAt < 0) {
      inferAt = static_cast<int>(i);
      continue;
    }
    if (shape[i] < 1 || shape[i] > kMaxElements) attrError(op, "shape", "positive dims and at most one -1");
    known = mulChecked(op, known, shape[i]);
  }
  int64_t n = x.numel();
  if (inferAt >= 0) {
    if (n % known != 0) attrError(op, "shape", std::to_string(n) + " elements to fill the -1 dim of " + x.str());
    out[static_cast<size_t>(inferAt)] = n / known;
  } else if (known != n) {
    attrError(op, "shape", "dims multiplying to " + std::to_string(n) + " (the elements of " + x.str() + ")");
  }
  return {sameElem(out, x)};
}

// ---- The table ----------------------------------------------------------------------------------

const OperandDef kInput{"input", Arity::One, "the input tensor"};
const ResultDef kOutput{"output", Arity::One, "the result tensor"};

AttrDef intsAttr(const char* name, std::optional<Ints> def, const char* doc) {
  return {name, AttrKind::IntList, def ? std::optional<Attribute>(Attribute(*def)) : std::nullopt, doc};
}

std::vector<OpDef> buildTable() {
  std::vector<OpDef> t;
  // ---- Constants ----
  t.push_back(OpDef{
      "constant",
      "A dense tensor stored in the module's resource section; its declared type gives shape and element type.",
      {},
      {kOutput},
      {{"value", AttrKind::Resource, std::nullopt, "key of the resource holding the raw little-endian bytes"}},
      checked<inferConstant>,
      nullptr,
      nullptr,
      "%w = constant {value = dense_resource<w>} : tensor<16x8x3x3xf32>"});

  // ---- Convolution and dense ----
  t.push_back(OpDef{
      "conv2d",
      "2-D convolution over NCHW input with OIHW weight [Cout, Cin/groups, KH, KW] and optional bias [Cout].",
      {{"input", Arity::One, "input [N, Cin, H, W]"},
       {"weight", Arity::One, "filters [Cout, Cin/groups, KH, KW]"},
       {"bias", Arity::Optional, "per-output-channel bias [Cout]"}},
      {{"output", Arity::One, "[N, Cout, OH, OW], OH = (H + pad_top + pad_bottom - dilation*(KH-1) - 1) / stride + 1"}},
      {intsAttr("stride", Ints{1, 1}, "[stride_h, stride_w]"),
       intsAttr("padding", Ints{0, 0, 0, 0}, "[top, left, bottom, right] zero padding"),
       intsAttr("dilation", Ints{1, 1}, "[dilation_h, dilation_w]"),
       {"groups", AttrKind::Int, Attribute(1), "channel groups; divides Cin and Cout"}},
      checked<inferConv2d>,
      nullptr,
      macsConv2d,
      "%y = conv2d(%x, %w, %b) {stride = [1, 1], padding = [1, 1, 1, 1], dilation = [1, 1], groups = 1} : "
      "tensor<1x16x32x32xf32>"});

  // ---- Normalization ----
  t.push_back(OpDef{
      "batch_norm",
      "Inference batch normalization over channel axis 1: (x - mean) / sqrt(var + eps) * weight + bias.",
      {kInput,
       {"mean", Arity::One, "running mean [C]"},
       {"var", Arity::One, "running variance [C]"},
       {"weight", Arity::One, "scale (gamma) [C]"},
       {"bias", Arity::One, "shift (beta) [C]"}},
      {kOutput},
      {{"eps", AttrKind::Float, Attribute(1e-05), "added to the variance"}},
      checked<inferBatchNorm>,
      nullptr,
      nullptr,
      "%y = batch_norm(%x, %mean, %var, %gamma, %beta) {eps = 1e-05} : tensor<1x16x8x8xf32>"});

  // ---- Elementwise ----
  t.push_back(OpDef{"relu", "Elementwise max(x, 0).", {kInput}, {kOutput}, {}, checked<inferUnary>, nullptr,
                    nullptr, "%y = relu(%x) : tensor<1x8x4x4xf32>"});
  t.push_back(OpDef{"add", "Elementwise lhs + rhs with numpy broadcasting.",
                    {{"lhs", Arity::One, "left operand"}, {"rhs", Arity::One, "right operand"}},
                    {kOutput}, {}, checked<inferBinary>, nullptr, nullptr,
                    "%z = add(%x, %y) : tensor<1x8x4x4xf32>"});

  // ---- Data movement ----
  t.push_back(OpDef{"reshape", "Row-major reshape to `shape`; one dim may be -1 and is inferred.", {kInput},
                    {kOutput}, {intsAttr("shape", std::nullopt, "target shape; at most one -1")},
                    checked<inferReshape>, nullptr, nullptr,
                    "%y = reshape(%x) {shape = [1, -1]} : tensor<1x128xf32>"});
  t.push_back(OpDef{"softmax", "exp(x) / sum(exp(x)) along `axis`.", {kInput}, {kOutput},
                    {{"axis", AttrKind::Int, Attribute(-1), "reduction axis; negative counts from the end"}},
                    checked<inferSoftmax>, nullptr, nullptr, "%y = softmax(%x) {axis = -1} : tensor<1x1000xf32>"});
  t.push_back(OpDef{"flatten", "Merges dims start_dim..end_dim (inclusive) into one.", {kInput}, {kOutput},
                    {{"start_dim", AttrKind::Int, Attribute(1), "first merged dim"},
                     {"end_dim", AttrKind::Int, Attribute(-1), "last merged dim (inclusive)"}},
                    checked<inferFlatten>, nullptr, nullptr,
                    "%y = flatten(%x) {start_dim = 1, end_dim = -1} : tensor<1x512xf32>"});
  t.push_back(OpDef{"resize2d", "Resizes the H and W dims of NCHW input to `size`.", {kInput}, {kOutput},
                    {intsAttr("size", std::nullopt, "[H, W]"),
                     {"mode", AttrKind::String, Attribute("nearest"), "\"nearest\" or \"bilinear\""},
                     {"coordinate_mode", AttrKind::String, Attribute("half_pixel"), "\"half_pixel\", \"align_corners\" or \"asymmetric\""}},
                    checked<inferResize2d>, nullptr, nullptr,
                    "%y = resize2d(%x) {size = [16, 16], mode = \"nearest\", coordinate_mode = \"half_pixel\"} : tensor<1x8x16x16xf32>"});
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
