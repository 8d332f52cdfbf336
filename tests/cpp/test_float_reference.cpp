// Float reference kernels added beside the original set: resize2d in every mode, hand-computed and
// against the integer kernel (the two must read the same source positions, docs/numerics.md §6),
// and transpose with negative perm entries.
#include <cmath>
#include <random>

#include "exec/float_reference.h"
#include "exec/int_reference.h"
#include "exec/tensor.h"
#include "testing.h"

using namespace hbdk;
using exec::FloatTensor;
using ir::ElemType;
using ir::Shape;
using ir::TensorType;

namespace {

// One op over function arguments of `inputs`' shapes, evaluated through the float kernel table.
FloatTensor floatOp(const std::string& name, const FloatTensor& input, ir::AttrList attrs) {
  ir::Module m;
  ir::Function* fn = m.addFunction("main");
  ir::Value* x = fn->addArgument(TensorType(input.shape, ElemType::F32), "x");
  ir::Op* op = m.createOp(fn, name, {x}, std::move(attrs));
  CHECK(exec::hasFloatKernel(*op));
  auto out = exec::evalOpFloat(*op, {input});
  CHECK(out.has_value() && out->size() == 1);
  return out ? out->front() : FloatTensor();
}

ir::AttrList resizeAttrs(int64_t h, int64_t w, const char* mode, const char* coordinates) {
  return {
      {"size", std::vector<int64_t>{h, w}}, {"mode", std::string(mode)}, {"coordinate_mode", std::string(coordinates)}};
}

bool near(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return false;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::fabs(got[i] - want[i]) > 1e-5f) return false;
  return true;
}

}  // namespace

TEST(FloatResizeNearestEveryCoordinateMode) {
  FloatTensor row({1, 1, 1, 3}, {1, 2, 3});
  // 3 -> 4. asymmetric floors o*3/4 (0, .75, 1.5, 2.25); half_pixel floors (o+.5)*3/4 (.375, 1.125,
  // 1.875, 2.625); align_corners floors o*2/3 + .5 (.5, 1.17, 1.83, 2.5).
  CHECK(floatOp("resize2d", row, resizeAttrs(1, 4, "nearest", "asymmetric")).data == (std::vector<float>{1, 1, 2, 3}));
  CHECK(floatOp("resize2d", row, resizeAttrs(1, 4, "nearest", "half_pixel")).data == (std::vector<float>{1, 2, 2, 3}));
  CHECK(floatOp("resize2d", row, resizeAttrs(1, 4, "nearest", "align_corners")).data ==
        (std::vector<float>{1, 2, 2, 3}));
  // 5 -> 2: asymmetric reads 0, 2; half_pixel 1, 3; align_corners the two ends.
  FloatTensor five({1, 1, 1, 5}, {10, 11, 12, 13, 14});
  CHECK(floatOp("resize2d", five, resizeAttrs(1, 2, "nearest", "asymmetric")).data == (std::vector<float>{10, 12}));
  CHECK(floatOp("resize2d", five, resizeAttrs(1, 2, "nearest", "half_pixel")).data == (std::vector<float>{11, 13}));
  CHECK(floatOp("resize2d", five, resizeAttrs(1, 2, "nearest", "align_corners")).data == (std::vector<float>{10, 14}));
  // align_corners to a single output reads position 0.
  CHECK(floatOp("resize2d", five, resizeAttrs(1, 1, "nearest", "align_corners")).data == (std::vector<float>{10}));
  CHECK(floatOp("resize2d", five, resizeAttrs(1, 1, "bilinear", "align_corners")).data == (std::vector<float>{10}));
}

TEST(FloatResizeBilinearEveryCoordinateMode) {
  FloatTensor x({1, 1, 2, 2}, {0, 10, 20, 30});
  // align_corners keeps the corners; half_pixel 2 -> 3 samples max(-1/6, 0), 1/2 and 7/6 (clamped
  // to the last row/column), which here gives the same grid.
  std::vector<float> grid{0, 5, 10, 10, 15, 20, 20, 25, 30};
  CHECK(floatOp("resize2d", x, resizeAttrs(3, 3, "bilinear", "align_corners")).data == grid);
  CHECK(near(floatOp("resize2d", x, resizeAttrs(3, 3, "bilinear", "half_pixel")).data, grid));
  // asymmetric samples 0, 2/3 and 4/3 (the last clamped).
  CHECK(near(floatOp("resize2d", x, resizeAttrs(3, 3, "bilinear", "asymmetric")).data,
             {0, 20.0f / 3, 10, 40.0f / 3, 20, 70.0f / 3, 20, 80.0f / 3, 30}));
  // Planes (batch and channels) are resized independently.
  FloatTensor two({2, 1, 1, 2}, {0, 4, 100, 104});
  CHECK(near(floatOp("resize2d", two, resizeAttrs(1, 3, "bilinear", "align_corners")).data, {0, 2, 4, 100, 102, 104}));
}

TEST(FloatResizeReadsTheSamePositionsAsTheIntegerKernel) {
  // The float kernel on integer values against the integer kernel with unit scales: nearest is the
  // same copy; bilinear differs only by the integer kernel's 1/1024 weights and final rounding.
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> value(-128, 127), dim(1, 7), outDim(1, 13);
  const char* modes[] = {"nearest", "bilinear"};
  const char* coordinates[] = {"asymmetric", "half_pixel", "align_corners"};
  for (int round = 0; round < 40; ++round) {
    Shape shape{1, 2, dim(rng), dim(rng)};
    ir::Module m;
    ir::Function* fn = m.addFunction("main");
    ir::Quant unit{{1.0f}, -1};
    exec::Tensor q(TensorType(shape, ElemType::SI8, unit));
    FloatTensor f(shape);
    for (int64_t i = 0; i < q.numel(); ++i) {
      q.setInt(static_cast<size_t>(i), value(rng));
      f.data[static_cast<size_t>(i)] = static_cast<float>(q.getInt(static_cast<size_t>(i)));
    }
    ir::Value* x = fn->addArgument(q.type, "x");
    for (const char* mode : modes)
      for (const char* coords : coordinates) {
        int64_t oh = outDim(rng), ow = outDim(rng);
        ir::Op* op = m.createOp(fn, "resize2d", {x}, resizeAttrs(oh, ow, mode, coords),
                                {TensorType({1, 2, oh, ow}, ElemType::SI8, unit)});
        exec::Tensor got = exec::evalOpInt(*op, {&q}).at(0);
        FloatTensor want = floatOp("resize2d", f, resizeAttrs(oh, ow, mode, coords));
        double worst = 0;
        for (int64_t i = 0; i < got.numel(); ++i)
          worst = std::max(worst, std::fabs(static_cast<double>(got.getInt(static_cast<size_t>(i))) -
                                            want.data[static_cast<size_t>(i)]));
        // Weights off by at most 1/2048 each on |values| <= 128, plus the final rounding.
        CHECK(worst <= (std::string(mode) == "nearest" ? 0.0 : 1.0));
      }
  }
}

TEST(FloatTransposeNegativePerm) {
  FloatTensor x({2, 3}, {1, 2, 3, 4, 5, 6});
  std::vector<float> t{1, 4, 2, 5, 3, 6};
  CHECK(floatOp("transpose", x, {{"perm", std::vector<int64_t>{-1, -2}}}).data == t);
  CHECK(floatOp("transpose", x, {{"perm", std::vector<int64_t>{1, -2}}}).data == t);
  CHECK(floatOp("transpose", x, {{"perm", std::vector<int64_t>{-2, 1}}}).data == x.data);
}

TEST(FloatRunFunctionWithResize) {
  // A whole function in float: resize then relu, through runFunctionFloat.
  ir::Module m;
  ir::Function* fn = m.addFunction("main");
  ir::Value* x = fn->addArgument(TensorType({1, 1, 1, 2}, ElemType::F32), "x");
  ir::Op* up = m.createOp(fn, "resize2d", {x}, resizeAttrs(1, 4, "bilinear", "half_pixel"));
  ir::Op* relu = m.createOp(fn, "relu", {up->result()});
  fn->setReturns({relu->result()});
  // 2 -> 4 half_pixel samples 0 (clamped), .25, .75, 1.25 (clamped to 1).
  FloatTensor in({1, 1, 1, 2}, {-4, 4});
  auto out = exec::runFunctionFloat(m, *fn, {in});
  CHECK(out.size() == 1 && out[0].data == (std::vector<float>{0, 0, 2, 4}));
}
