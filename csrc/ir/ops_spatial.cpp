// The HBIR ops of one family (pooling, resizing, the pillar scatter, reductions and selection): shape inference and
// checks, then the table rows with their traits. ops.cpp assembles the families into the one table.
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

// [N, C, H, W] sampled at a [N, HO, WO, 2] grid of normalized (x, y) positions -> [N, C, HO, WO].
Results inferGridSample(const Op& op) {
  const TensorType& x = checkRank(op, 0, 4);
  const TensorType& grid = checkRank(op, 1, 4);
  checkDim(op, 1, 0, x.shape[0], "the input's batch");
  checkDim(op, 1, 3, 2, "an (x, y) pair per output position");
  checkSameFloatness(op, 1, 0);
  enumAttr(op, "mode", {"bilinear"});
  enumAttr(op, "padding_mode", {"zeros"});
  return {computeResult({x.shape[0], x.shape[1], grid.shape[1], grid.shape[2]}, x)};
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

void verifyArgmax(const Op& op) { checkIndexResult(op, 0); }
void verifyTopk(const Op& op) { checkIndexResult(op, 1); }

// Nearest resizing moves values (one input per output); bilinear mixes four and rescales.
QuantRule resizeQuantRule(const Op& op) {
  return op.getString("mode") == "nearest" ? QuantRule::KeepsScale : QuantRule::Rescale;
}

}  // namespace

void addSpatialOps(std::vector<OpDef>& t) {
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
      "ceil_mode = false} : tensor<1x8x16x16xf32>",
      {QuantRule::KeepsScale, "max_pool", TileClass::PoolWindow, Fusion::None, true}});
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
      "count_include_pad = true} : tensor<1x8x16x16xf32>",
      {QuantRule::Rescale, "avg_pool", TileClass::PoolWindow, Fusion::None, true}});
  t.push_back(OpDef{"global_avg_pool2d",
                    "Mean over H and W of NCHW input, giving [N, C, 1, 1].",
                    {{"input", Arity::One, "[N, C, H, W]"}},
                    {{"output", Arity::One, "[N, C, 1, 1]"}},
                    {},
                    checked<inferGlobalAvgPool2d>,
                    nullptr,
                    nullptr,
                    "%y = global_avg_pool2d(%x) : tensor<1x512x1x1xf32>",
                    {QuantRule::Rescale, "global_avg_pool", TileClass::PlaneReduce, Fusion::None, true}});
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
                    "tensor<1x8x16x16xf32>",
                    {QuantRule::Rescale, "resize", TileClass::ResizeWindow, Fusion::None, true, -1, resizeQuantRule}});
  t.push_back(OpDef{"grid_sample",
                    "Samples NCHW input bilinearly at the normalized (x, y) positions of `grid` ([-1, 1] spans the "
                    "input; zero outside), as torch.nn.functional.grid_sample.",
                    {{"input", Arity::One, "[N, C, H, W]"}, {"grid", Arity::One, "[N, HO, WO, 2] (x, y)"}},
                    {{"output", Arity::One, "[N, C, HO, WO]"}},
                    {withDefault("mode", AttrKind::String, "bilinear", "\"bilinear\""),
                     withDefault("padding_mode", AttrKind::String, "zeros", "\"zeros\": outside samples are 0"),
                     withDefault("align_corners", AttrKind::Bool, false,
                                 "-1 and 1 are the corner pixels' centres (else their outer edges)")},
                    checked<inferGridSample>,
                    nullptr,
                    nullptr,
                    "%y = grid_sample(%x, %grid) {mode = \"bilinear\", padding_mode = \"zeros\", align_corners = "
                    "true} : tensor<1x32x1x100xf32>",
                    {QuantRule::Rescale, "grid_sample", TileClass::Indexed, Fusion::None, true}});

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
                    "tensor<1x64x496x432xf32>",
                    {QuantRule::KeepsScale, "scatter", TileClass::Scatter, Fusion::None, true}});

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
                    "%y = argmax(%x) {axis = 1, keepdim = true} : tensor<1x1x64x64xsi32>",
                    {QuantRule::IndexOnly, "argmax", TileClass::AxisReduce}});
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
                    "tensor<1x5xf32>, tensor<1x5xsi32>",
                    {QuantRule::KeepsScale, "topk", TileClass::AxisReduce, Fusion::None, true}});
}

}  // namespace hbdk::ir
