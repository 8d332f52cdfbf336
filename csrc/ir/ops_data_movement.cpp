// The HBIR ops of one family (data movement: concat, split, slice, reshape, transpose, flatten, pad, gather): shape
// inference and checks, then the table rows with their traits. ops.cpp assembles the families into the one table.
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

void verifyGather(const Op& op) { checkIndexOperand(op, 1); }

}  // namespace

void addDataMovementOps(std::vector<OpDef>& t) {
  // ---- Data movement ----
  t.push_back(OpDef{"concat",
                    "Joins one or more tensors of equal rank and element type along `axis`; other dims must match.",
                    {{"inputs", Arity::Variadic, "one or more tensors"}},
                    {kOutput},
                    {withDefault("axis", AttrKind::Int, 1, "joined axis; negative counts from the end")},
                    checked<inferConcat>,
                    nullptr,
                    nullptr,
                    "%y = concat(%a, %b) {axis = 1} : tensor<1x16x8x8xf32>",
                    {QuantRule::Rescale, "concat", TileClass::Join}});
  t.push_back(OpDef{"split",
                    "Cuts the input along `axis` into consecutive pieces of the given sizes, one result each.",
                    {kInput},
                    {{"outputs", Arity::Variadic, "one piece per entry of `sizes`"}},
                    {withDefault("axis", AttrKind::Int, 1, "cut axis; negative counts from the end"),
                     required("sizes", AttrKind::IntList, "positive piece sizes summing to the axis dim")},
                    checked<inferSplit>,
                    nullptr,
                    nullptr,
                    "%a, %b = split(%x) {axis = 1, sizes = [8, 8]} : tensor<1x8x4x4xf32>, tensor<1x8x4x4xf32>",
                    {QuantRule::KeepsScale, "split", TileClass::Elementwise, Fusion::None, true}});
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
            "%y = slice(%x) {axes = [2, 3], starts = [0, 0], ends = [4, -1], steps = [1, 2]} : tensor<1x8x4x2xf32>",
            {QuantRule::KeepsScale, "slice", TileClass::Elementwise, Fusion::None, true}});
  t.push_back(OpDef{"reshape",
                    "Row-major reshape to `shape`; one dim may be -1 and is inferred from the element count.",
                    {kInput},
                    {kOutput},
                    {required("shape", AttrKind::IntList, "target shape: positive dims and at most one -1")},
                    checked<inferReshape>,
                    nullptr,
                    nullptr,
                    "%y = reshape(%x) {shape = [1, -1]} : tensor<1x128xf32>",
                    {QuantRule::KeepsScale, "reshape", TileClass::Elementwise, Fusion::None, true}});
  t.push_back(OpDef{"transpose",
                    "Permutes dims: output dim i is input dim perm[i].",
                    {kInput},
                    {kOutput},
                    {required("perm", AttrKind::IntList, "a permutation of the input's axes")},
                    checked<inferTranspose>,
                    nullptr,
                    nullptr,
                    "%y = transpose(%x) {perm = [0, 2, 3, 1]} : tensor<1x4x4x8xf32>",
                    {QuantRule::KeepsScale, "transpose", TileClass::Elementwise, Fusion::None, true}});
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
            "%y = flatten(%x) {start_dim = 1, end_dim = -1} : tensor<1x128xf32>",
            {QuantRule::KeepsScale, "reshape", TileClass::Elementwise, Fusion::None, true}});
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
      "tensor<1x8x6x6xf32>",
      {QuantRule::KeepsScale, "pad", TileClass::Elementwise, Fusion::None, true}});
  t.push_back(OpDef{"gather",
                    "Picks entries of `input` along `axis` at si32 `indices`: output shape is input.shape[:axis] + "
                    "indices.shape + input.shape[axis+1:].",
                    {kInput, {"indices", Arity::One, "si32 positions along axis, any shape"}},
                    {kOutput},
                    {withDefault("axis", AttrKind::Int, 0, "gathered axis; negative counts from the end")},
                    checked<inferGather>,
                    verifyGather,
                    nullptr,
                    "%y = gather(%x, %idx) {axis = 0} : tensor<5x64xf32>",
                    {QuantRule::KeepsScale, "gather", TileClass::Indexed, Fusion::None, true}});
}

}  // namespace hbdk::ir
