// Integer reference kernels (docs/numerics.md §3-§6) on small hand-computed cases: each test
// states the expected integers from the doc's formulas, including rounding ties, saturation and
// the error messages for graphs that are not quantized. Also the LUT builder and lookup (§5).
#include <cmath>
#include <limits>
#include <optional>

#include "exec/int_reference.h"
#include "exec/lut.h"
#include "exec/requant.h"
#include "ir/op_def.h"
#include "testing.h"

using namespace hbdk;
using exec::Tensor;
using ir::ElemType;
using ir::Quant;
using ir::Shape;
using ir::TensorType;

namespace {

std::optional<Quant> perTensor(float s) { return Quant{{s}, -1}; }
std::optional<Quant> perAxis(std::vector<float> s, int64_t axis) { return Quant{std::move(s), axis}; }

Tensor ints(Shape shape, ElemType t, std::vector<int64_t> values, std::optional<Quant> q = std::nullopt) {
  Tensor x(TensorType(std::move(shape), t, std::move(q)));
  CHECK_EQ(values.size(), static_cast<size_t>(x.numel()));
  for (size_t i = 0; i < values.size() && i < static_cast<size_t>(x.numel()); ++i) x.setInt(i, values[i]);
  return x;
}

Tensor floats(Shape shape, std::vector<float> values) {
  Tensor x(TensorType(std::move(shape), ElemType::F32));
  for (size_t i = 0; i < values.size(); ++i) x.setFloat(i, values[i]);
  return x;
}

std::vector<int64_t> valuesOf(const Tensor& t) {
  std::vector<int64_t> v;
  for (size_t i = 0; i < static_cast<size_t>(t.numel()); ++i) v.push_back(t.getInt(i));
  return v;
}

std::string str(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// Builds one op over function arguments typed like `inputs` and evaluates it.
std::vector<Tensor> run(const std::string& name, const std::vector<Tensor>& inputs, ir::AttrList attrs,
                        std::vector<TensorType> results) {
  ir::Module m;
  ir::Function* fn = m.addFunction("main");
  std::vector<ir::Value*> args;
  std::vector<const Tensor*> ptrs;
  for (const Tensor& t : inputs) {
    args.push_back(fn->addArgument(t.type));
    ptrs.push_back(&t);
  }
  ir::Op* op = m.createOp(fn, name, args, std::move(attrs), std::move(results));
  CHECK(exec::hasIntKernel(*op));
  return exec::evalOpInt(*op, ptrs);
}

Tensor run1(const std::string& name, const std::vector<Tensor>& inputs, ir::AttrList attrs, TensorType result) {
  return run(name, inputs, std::move(attrs), {std::move(result)}).at(0);
}

#define CHECK_VALUES(t, ...) CHECK_EQ(str(valuesOf(t)), str(std::vector<int64_t>{__VA_ARGS__}))

ir::Attribute ints(std::vector<int64_t> v) { return ir::Attribute(std::move(v)); }

}  // namespace

// ---- accumulating ops -------------------------------------------------------------------------

TEST(int_conv2d_padding_bias_and_groups) {
  Tensor x = ints({1, 2, 2, 2}, ElemType::SI8, {1, 2, 3, 4, -1, -2, -3, -4}, perTensor(0.5f));
  Tensor w = ints({2, 1, 2, 2}, ElemType::SI8, {1, 0, 0, 1, 2, 2, 2, 2}, perAxis({0.25f, 0.5f}, 0));
  Tensor b = ints({2}, ElemType::SI32, {10, -100});
  // groups = 2: output channel 0 sees input channel 0 only; padding 1 on top/left.
  Tensor y = run1("conv2d", {x, w, b}, {{"padding", ints({1, 1, 0, 0})}, {"groups", ir::Attribute(2)}},
                  TensorType({1, 2, 2, 2}, ElemType::SI32));
  // ch0 = bias 10 + x[iy-1][ix-1]*1 + x[iy][ix]*1 over the padded window.
  // ch1 = -100 + 2 * (sum of the in-bounds window of channel 1).
  CHECK_VALUES(y, 11, 12, 13, 15, -102, -106, -108, -120);
}

TEST(int_conv2d_dilation_stride_and_si32_saturation) {
  std::vector<int64_t> xs(25);
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<int64_t>(i);
  Tensor x = ints({1, 1, 5, 5}, ElemType::SI8, xs);
  Tensor w = ints({1, 1, 2, 2}, ElemType::SI8, {1, -1, 1, -1});
  Tensor y = run1("conv2d", {x, w}, {{"stride", ints({2, 2})}, {"dilation", ints({2, 2})}},
                  TensorType({1, 1, 2, 2}, ElemType::SI32));
  CHECK_VALUES(y, -4, -4, -4, -4);  // e.g. x[0][0] - x[0][2] + x[2][0] - x[2][2]
  // 32767 * 32767 * 4 overflows si32: saturate.
  Tensor big = ints({1, 1, 2, 2}, ElemType::SI16, {32767, 32767, 32767, 32767});
  Tensor bw = ints({1, 1, 2, 2}, ElemType::SI16, {32767, 32767, 32767, 32767});
  Tensor s = run1("conv2d", {big, bw}, {}, TensorType({1, 1, 1, 1}, ElemType::SI32));
  CHECK_VALUES(s, 2147483647);
  Tensor nbw = ints({1, 1, 2, 2}, ElemType::SI16, {-32768, -32768, -32768, -32768});
  CHECK_VALUES(run1("conv2d", {big, nbw}, {}, TensorType({1, 1, 1, 1}, ElemType::SI32)), -2147483647 - 1);
}

TEST(int_conv_transpose2d) {
  Tensor x = ints({1, 1, 2, 2}, ElemType::SI8, {1, 2, 3, 4});
  Tensor w = ints({1, 1, 2, 2}, ElemType::SI8, {1, 1, 1, 1});
  Tensor b = ints({1}, ElemType::SI32, {5});
  // stride 2, kernel 2: each input pixel fills its own 2x2 block.
  Tensor y = run1("conv_transpose2d", {x, w, b}, {{"stride", ints({2, 2})}}, TensorType({1, 1, 4, 4}, ElemType::SI32));
  CHECK_VALUES(y, 6, 6, 7, 7, 6, 6, 7, 7, 8, 8, 9, 9, 8, 8, 9, 9);
  // stride 1: overlapping windows add up; padding 1 crops the border.
  Tensor z =
      run1("conv_transpose2d", {x, w}, {{"padding", ints({1, 1, 1, 1})}}, TensorType({1, 1, 1, 1}, ElemType::SI32));
  CHECK_VALUES(z, 10);
}

TEST(int_linear_and_matmul_broadcast) {
  Tensor x = ints({2, 3}, ElemType::SI8, {1, 2, 3, -1, -2, -3});
  Tensor w = ints({2, 3}, ElemType::SI8, {1, 1, 1, 127, -128, 0});
  Tensor b = ints({2}, ElemType::SI32, {0, 1});
  CHECK_VALUES(run1("linear", {x, w, b}, {}, TensorType({2, 2}, ElemType::SI32)), 6, 127 - 256 + 1, -6, -127 + 256 + 1);
  Tensor a = ints({2, 1, 2}, ElemType::SI8, {1, 2, 3, 4});
  Tensor m = ints({2, 1}, ElemType::SI8, {10, -1});  // broadcast over the batch
  CHECK_VALUES(run1("matmul", {a, m}, {}, TensorType({2, 1, 1}, ElemType::SI32)), 8, 26);
}

// ---- requantize -------------------------------------------------------------------------------

TEST(int_requantize_from_scales_per_axis) {
  Tensor acc = ints({1, 2, 1, 2}, ElemType::SI32, {5, -5, 300, -300}, perAxis({0.1f, 1.0f}, 1));
  Tensor y = run1("requantize", {acc}, {}, TensorType({1, 2, 1, 2}, ElemType::SI8, perTensor(0.2f)));
  // ratio 0.1/0.2 (in f32 scales, float64 division): 2.5 -> 3, -2.5 -> -2; 1500 and -1500 saturate.
  CHECK_VALUES(y, 3, -2, 127, -128);
}

TEST(int_requantize_explicit_attributes) {
  Tensor acc = ints({1, 2, 1, 1}, ElemType::SI32, {7, 7}, perTensor(1.0f));
  Tensor y =
      run1("requantize", {acc}, {{"multiplier", ints({int64_t{1} << 30, int64_t{3} << 29})}, {"shift", ints({31, 30})}},
           TensorType({1, 2, 1, 1}, ElemType::SI16, perTensor(1.0f)));
  CHECK_VALUES(y, 4, 11);  // 3.5 -> 4 and 10.5 -> 11
  Tensor one = run1("requantize", {acc}, {{"multiplier", ints({int64_t{1} << 30})}, {"shift", ints({32})}},
                    TensorType({1, 2, 1, 1}, ElemType::SI8, perTensor(1.0f)));
  CHECK_VALUES(one, 2, 2);  // 1.75 -> 2
}

TEST(int_requantize_needs_scales) {
  Tensor acc = ints({2}, ElemType::SI32, {1, 2});
  ir::Module m;
  ir::Function* fn = m.addFunction("main");
  ir::Value* arg = fn->addArgument(TensorType({2}, ElemType::SI32, perTensor(1.0f)));
  ir::Op* op = m.createOp(fn, "relu6", {arg}, {}, {TensorType({2}, ElemType::SI8, perTensor(1.0f))});
  arg->type.quant.reset();  // as if the quantize pass had not run
  CHECK_THROWS(ir::VerifyError, exec::evalOpInt(*op, {&acc}), "operand #0 has no scale; quantize the graph first");
  CHECK_THROWS(ir::VerifyError, exec::evalOpInt(*op, {}), "expected 1 input tensor(s) but got 0");
}

// ---- clamps, tables ---------------------------------------------------------------------------

TEST(int_relu_relu6_clip) {
  Tensor x = ints({6}, ElemType::SI8, {-128, -1, 0, 5, 60, 127}, perTensor(0.1f));
  CHECK_VALUES(run1("relu", {x}, {}, x.type), 0, 0, 0, 5, 60, 127);
  CHECK_VALUES(run1("relu6", {x}, {}, x.type), 0, 0, 0, 5, 60, 60);
  // min -0.25 / 0.1 = -2.5 -> -2 (half to even), max 0.55 / 0.1 = 5.5... in float64 from the f32 scale.
  double hi = std::nearbyint(0.55 / static_cast<double>(0.1f));
  Tensor c = run1("clip", {x}, {{"min", ir::Attribute(-0.25)}, {"max", ir::Attribute(0.55)}}, x.type);
  CHECK_VALUES(c, -2, -1, 0, 5, static_cast<int64_t>(hi), static_cast<int64_t>(hi));
  // Bounds beyond the type saturate; an infinite bound is no bound.
  Tensor wide = run1("clip", {x}, {{"min", ir::Attribute(-1e9)}, {"max", ir::Attribute(INFINITY)}}, x.type);
  CHECK_VALUES(wide, -128, -1, 0, 5, 60, 127);
}

TEST(lut_build_si8_and_lookup) {
  std::vector<int64_t> t = exec::buildLut(exec::LutFunction::Tanh, ElemType::SI8, 1.0 / 32, ElemType::SI8, 1.0 / 128);
  CHECK_EQ(t.size(), size_t{256});
  for (size_t i = 0; i < 256; ++i) {
    double v = std::nearbyint(std::tanh((static_cast<double>(i) - 128) / 32) * 128);
    CHECK_EQ(t[i], static_cast<int64_t>(std::min(std::max(v, -128.0), 127.0)));
  }
  CHECK_EQ(exec::applyLut(t, ElemType::SI8, -128), t[0]);
  CHECK_EQ(exec::applyLut(t, ElemType::SI8, 127), t[255]);
  // exp overflows to infinity at the top: saturates; tiny values round to 0.
  std::vector<int64_t> e = exec::buildLut(exec::LutFunction::Exp, ElemType::SI8, 10.0, ElemType::SI16, 1.0);
  CHECK_EQ(e[255], 32767);
  CHECK_EQ(e[0], 0);
  std::vector<int64_t> lr = exec::buildLut(exec::LutFunction::LeakyRelu, ElemType::SI8, 1.0, ElemType::SI8, 1.0, 0.1);
  CHECK_EQ(lr[128 - 25], -2);  // -2.5 -> -2 (half to even)
  CHECK_EQ(lr[128 - 35], -4);  // -3.5 -> -4
  CHECK_EQ(lr[128 + 100], 100);
  CHECK_THROWS(ir::Error, exec::buildLut(exec::LutFunction::Exp, ElemType::SI32, 1.0, ElemType::SI8, 1.0),
               "si8 or si16");
  CHECK_THROWS(ir::Error, exec::buildLut(exec::LutFunction::Exp, ElemType::SI8, 0.0, ElemType::SI8, 1.0), "positive");
  CHECK(exec::parseLutFunction("sigmoid") == exec::LutFunction::Sigmoid);
  CHECK(!exec::parseLutFunction("relu"));
}

TEST(lut_si16_interpolation) {
  // Identity knots (knot[k] = -32768 + 256k, the last one saturated to 32767) reproduce q except
  // in the last segment.
  std::vector<int64_t> t = exec::buildLut([](double x) { return x; }, ElemType::SI16, 1.0, ElemType::SI16, 1.0);
  CHECK_EQ(t.size(), size_t{257});
  CHECK_EQ(t[0], -32768);
  CHECK_EQ(t[256], 32767);
  for (int64_t q = -32768; q < 32512; q += 37) CHECK_EQ(exec::applyLut(t, ElemType::SI16, q), q);
  // Last segment: knot 255 = 32512, knot 256 = 32767 (slope 255/256); q = 32767: r = 255.
  CHECK_EQ(exec::applyLut(t, ElemType::SI16, 32767), 32512 + ((255 * 255 + 128) >> 8));
  // Rounding of the interpolation: knots 0 and 1 apart, r = 128 -> +0.5 rounds up; negative slope
  // floors (arithmetic shift).
  std::vector<int64_t> step(257, 0);
  step[1] = 1;
  CHECK_EQ(exec::applyLut(step, ElemType::SI16, -32768 + 128), 1);
  CHECK_EQ(exec::applyLut(step, ElemType::SI16, -32768 + 127), 0);
  step[1] = -1;
  CHECK_EQ(exec::applyLut(step, ElemType::SI16, -32768 + 128), 0);   // (-128 + 128) >> 8
  CHECK_EQ(exec::applyLut(step, ElemType::SI16, -32768 + 129), -1);  // (-129 + 128) >> 8
}

TEST(int_lut_op) {
  std::vector<int64_t> table(256);
  for (size_t i = 0; i < 256; ++i) table[i] = static_cast<int64_t>(i) - 128;
  table[255] = 1000;  // wider than the si8 result: saturated
  Tensor tab = ints({256}, ElemType::SI16, table);
  Tensor x = ints({3}, ElemType::SI8, {-128, 5, 127}, perTensor(0.1f));
  CHECK_VALUES(run1("lut", {x, tab}, {}, TensorType({3}, ElemType::SI8, perTensor(0.1f))), -128, 5, 127);
  Tensor x16 = ints({2}, ElemType::SI16, {-32768, 32767}, perTensor(0.1f));
  Tensor short16 = ints({256}, ElemType::SI16, table);
  CHECK_THROWS(ir::VerifyError, run1("lut", {x16, short16}, {}, TensorType({2}, ElemType::SI16, perTensor(0.1f))),
               "expected 257 entries for an si16 input");
}

// ---- binary -----------------------------------------------------------------------------------

TEST(int_add_sub_mul_broadcast_and_ties) {
  Tensor a = ints({2, 2}, ElemType::SI8, {1, -1, 3, 127}, perTensor(0.5f));
  Tensor b = ints({2}, ElemType::SI8, {0, 127}, perTensor(0.5f));
  TensorType out({2, 2}, ElemType::SI8, perTensor(1.0f));
  // (a + b) * 0.5: 0.5 -> 1, (-1 + 127) / 2 = 63, 1.5 -> 2, 127 saturates.
  CHECK_VALUES(run1("add", {a, b}, {}, out), 1, 63, 2, 127);
  // (a - b) * 0.5: 0.5 -> 1, -64, 1.5 -> 2, 0.
  CHECK_VALUES(run1("sub", {a, b}, {}, out), 1, -64, 2, 0);
  Tensor n = ints({1}, ElemType::SI8, {-1}, perTensor(0.5f));
  CHECK_VALUES(run1("add", {n, n}, {}, TensorType({1}, ElemType::SI8, perTensor(4.0f))), 0);  // -0.25 -> 0
  Tensor c = ints({2}, ElemType::SI8, {-3, 127}, perTensor(0.5f));
  // a * c * 0.25: 1*-3 -> -0.75 -> -1; -1*127 = -31.75 -> -32; 3*-3 -> -2.25 -> -2; 127*127/4 saturates
  CHECK_VALUES(run1("mul", {a, c}, {}, out), -1, -32, -2, 127);
  Tensor d = ints({1}, ElemType::SI8, {-1}, perTensor(0.5f));  // half ties: -0.5 -> 0
  CHECK_VALUES(run1("mul", {Tensor(ints({1}, ElemType::SI8, {2}, perTensor(0.5f))), d}, {},
                    TensorType({1}, ElemType::SI8, perTensor(1.0f))),
               0);
  Tensor unscaled = ints({2}, ElemType::SI8, {0, 0});
  CHECK_THROWS(ir::VerifyError, run1("add", {a, unscaled}, {}, out), "operand #1 has no scale");
}

// ---- data movement ----------------------------------------------------------------------------

TEST(int_concat_requantizes_inputs) {
  Tensor a = ints({1, 2}, ElemType::SI8, {3, -3}, perTensor(0.5f));
  Tensor b = ints({1, 1}, ElemType::SI8, {100}, perTensor(1.0f));
  CHECK_VALUES(run1("concat", {a, b}, {}, TensorType({1, 3}, ElemType::SI8, perTensor(1.0f))), 2, -1, 100);
  Tensor i1 = ints({2}, ElemType::SI32, {1, 2}), i2 = ints({1}, ElemType::SI32, {70000});
  CHECK_VALUES(run1("concat", {i1, i2}, {{"axis", ir::Attribute(0)}}, TensorType({3}, ElemType::SI32)), 1, 2, 70000);
}

TEST(int_data_movement) {
  Tensor x = ints({2, 3}, ElemType::SI16, {1, 2, 3, 4, 5, 6}, perTensor(0.1f));
  auto parts =
      run("split", {x}, {{"sizes", ints({1, 2})}},
          {TensorType({2, 1}, ElemType::SI16, perTensor(0.1f)), TensorType({2, 2}, ElemType::SI16, perTensor(0.1f))});
  CHECK_VALUES(parts[0], 1, 4);
  CHECK_VALUES(parts[1], 2, 3, 5, 6);
  CHECK_VALUES(run1("transpose", {x}, {{"perm", ints({1, 0})}}, TensorType({3, 2}, ElemType::SI16, perTensor(0.1f))), 1,
               4, 2, 5, 3, 6);
  CHECK_VALUES(run1("slice", {x}, {{"axes", ints({1})}, {"starts", ints({-1})}, {"ends", ints({100})}},
                    TensorType({2, 1}, ElemType::SI16, perTensor(0.1f))),
               3, 6);
  CHECK_VALUES(run1("reshape", {x}, {{"shape", ints({3, -1})}}, TensorType({3, 2}, ElemType::SI16, perTensor(0.1f))), 1,
               2, 3, 4, 5, 6);
  Tensor idx = ints({3}, ElemType::SI32, {2, -3, 0});
  CHECK_VALUES(
      run1("gather", {x, idx}, {{"axis", ir::Attribute(1)}}, TensorType({2, 3}, ElemType::SI16, perTensor(0.1f))), 3, 1,
      1, 6, 4, 4);
  Tensor bad = ints({1}, ElemType::SI32, {3});
  CHECK_THROWS(
      ir::VerifyError,
      run1("gather", {x, bad}, {{"axis", ir::Attribute(1)}}, TensorType({2, 1}, ElemType::SI16, perTensor(0.1f))),
      "expected gather indices in [-3, 3) but got 3");
  // f32 data moves too when an index operand makes the op an integer one.
  Tensor f = floats({3}, {0.5f, 1.5f, 2.5f});
  Tensor fi = ints({1}, ElemType::SI32, {1});
  Tensor g = run1("gather", {f, fi}, {}, TensorType({1}, ElemType::F32));
  CHECK_EQ(g.getFloat(0), 1.5f);
}

TEST(int_point_pillar_scatter) {
  Tensor feat = ints({3, 2}, ElemType::SI8, {1, 2, 3, 4, 5, 6}, perTensor(0.1f));
  // pillar 1 lands outside the grid (a padding row) and is skipped; pillar 2 overwrites pillar 0.
  Tensor coords = ints({3, 4}, ElemType::SI32, {0, 0, 1, 0, 0, 0, -1, -1, 0, 0, 1, 0});
  Tensor y = run1("point_pillar_scatter", {feat, coords}, {{"grid", ints({2, 2})}},
                  TensorType({1, 2, 2, 2}, ElemType::SI8, perTensor(0.1f)));
  CHECK_VALUES(y, 0, 0, 5, 0, 0, 0, 6, 0);
}

TEST(int_pad_modes) {
  Tensor x = ints({3}, ElemType::SI8, {1, 2, 3}, perTensor(0.5f));
  TensorType out({6}, ElemType::SI8, perTensor(0.5f));
  // value 1.25 / 0.5 = 2.5 -> 2 (half to even)
  CHECK_VALUES(run1("pad", {x}, {{"pads", ints({2, 1})}, {"value", ir::Attribute(1.25)}}, out), 2, 2, 1, 2, 3, 2);
  CHECK_VALUES(run1("pad", {x}, {{"pads", ints({2, 1})}, {"mode", ir::Attribute("edge")}}, out), 1, 1, 1, 2, 3, 3);
  CHECK_VALUES(run1("pad", {x}, {{"pads", ints({2, 1})}, {"mode", ir::Attribute("reflect")}}, out), 3, 2, 1, 2, 3, 2);
  CHECK_VALUES(run1("pad", {x}, {{"pads", ints({0, 1})}, {"value", ir::Attribute(1000.0)}},
                    TensorType({4}, ElemType::SI8, perTensor(0.5f))),
               1, 2, 3, 127);
}

// ---- pooling ----------------------------------------------------------------------------------

TEST(int_pools) {
  Tensor x = ints({1, 1, 2, 2}, ElemType::SI8, {-5, -7, -6, -8}, perTensor(1.0f));
  TensorType out({1, 1, 2, 2}, ElemType::SI8, perTensor(1.0f));
  ir::AttrList window = {{"kernel", ints({2, 2})}, {"stride", ints({1, 1})}, {"padding", ints({1, 1, 0, 0})}};
  // max ignores the padding: the negative values win.
  CHECK_VALUES(run1("max_pool2d", {x}, window, out), -5, -5, -5, -5);
  // count_include_pad: divisor 4 everywhere: -5/4 = -1.25 -> -1; -12/4 = -3; -11/4 = -2.75 -> -3; -26/4 = -6.5 -> -6
  CHECK_VALUES(run1("avg_pool2d", {x}, window, out), -1, -3, -3, -6);
  window.push_back({"count_include_pad", ir::Attribute(false)});
  // divisors 1, 2, 2, 4: -5, -6, -5.5 -> -5, -6.5 -> -6
  CHECK_VALUES(run1("avg_pool2d", {x}, window, out), -5, -6, -5, -6);
  Tensor g = ints({1, 2, 1, 2}, ElemType::SI8, {1, 2, 127, 127}, perTensor(1.0f));
  CHECK_VALUES(run1("global_avg_pool2d", {g}, {}, TensorType({1, 2, 1, 1}, ElemType::SI8, perTensor(0.5f))), 3, 127);
}

// ---- resize -----------------------------------------------------------------------------------

TEST(int_resize_nearest_modes) {
  Tensor x = ints({1, 1, 1, 3}, ElemType::SI8, {10, 20, 30}, perTensor(1.0f));
  TensorType out({1, 1, 1, 5}, ElemType::SI8, perTensor(1.0f));
  auto attrs = [](const char* cm) {
    return ir::AttrList{{"size", ints({1, 5})}, {"coordinate_mode", ir::Attribute(cm)}};
  };
  // asymmetric: floor(o * 3 / 5) = 0, 0, 1, 1, 2
  CHECK_VALUES(run1("resize2d", {x}, attrs("asymmetric"), out), 10, 10, 20, 20, 30);
  // half_pixel: floor((o + 0.5) * 3 / 5) = 0, 0, 1, 2, 2
  CHECK_VALUES(run1("resize2d", {x}, attrs("half_pixel"), out), 10, 10, 20, 30, 30);
  // align_corners: floor(o * 2 / 4 + 0.5) = 0, 1, 1, 2, 2
  CHECK_VALUES(run1("resize2d", {x}, attrs("align_corners"), out), 10, 20, 20, 30, 30);
}

TEST(int_resize_bilinear) {
  Tensor x = ints({1, 1, 1, 2}, ElemType::SI8, {0, 101}, perTensor(1.0f));
  auto attrs = [](const char* cm, int64_t w) {
    return ir::AttrList{
        {"size", ints({1, w})}, {"mode", ir::Attribute("bilinear")}, {"coordinate_mode", ir::Attribute(cm)}};
  };
  // align_corners 2 -> 3: src 0, 0.5, 1; 101 * 512 * 1024 / 2^20 = 50.5 -> 51 (half up)
  CHECK_VALUES(
      run1("resize2d", {x}, attrs("align_corners", 3), TensorType({1, 1, 1, 3}, ElemType::SI8, perTensor(1.0f))), 0, 51,
      101);
  // half_pixel 2 -> 4: src max(0, -0.25) = 0, 0.25, 0.75, 1.25 (i1 clamps): 0, 25.25 -> 25, 75.75 -> 76, 101
  CHECK_VALUES(run1("resize2d", {x}, attrs("half_pixel", 4), TensorType({1, 1, 1, 4}, ElemType::SI8, perTensor(1.0f))),
               0, 25, 76, 101);
  // asymmetric 2 -> 3: src 0, 2/3, 4/3; w = round(0.666.. * 1024) = 683: 101 * 683 / 1024 = 67.37 -> 67
  CHECK_VALUES(run1("resize2d", {x}, attrs("asymmetric", 3), TensorType({1, 1, 1, 3}, ElemType::SI8, perTensor(0.5f))),
               0, 127, 127);
  CHECK_VALUES(run1("resize2d", {x}, attrs("asymmetric", 3), TensorType({1, 1, 1, 3}, ElemType::SI8, perTensor(1.0f))),
               0, 67, 101);
}

// ---- softmax and selection --------------------------------------------------------------------

TEST(int_softmax) {
  Tensor x = ints({2, 4}, ElemType::SI8, {5, 5, 5, 5, 100, 0, 0, 0}, perTensor(0.1f));
  Tensor table = ints({256}, ElemType::SI32, exec::softmaxExpTable(ElemType::SI8, 0.1f));
  Tensor y = run1("softmax", {x, table}, {}, TensorType({2, 4}, ElemType::SI8, perTensor(1.0f / 128)));
  // Uniform row: e = 65535 each, y = floor((65535 * 128 + 2 * 65535) / (4 * 65535)) = 32.
  // Second row: d = 100 -> EXP[100] = round(65535 * e^-10) = 3; sum = 65544.
  int64_t e100 = static_cast<int64_t>(std::nearbyint(65535 * std::exp(-100 * static_cast<double>(0.1f))));
  int64_t sum = 65535 + 3 * e100;
  CHECK_VALUES(y, 32, 32, 32, 32, std::min<int64_t>((65535 * 128 + sum / 2) / sum, 127), (e100 * 128 + sum / 2) / sum,
               (e100 * 128 + sum / 2) / sum, (e100 * 128 + sum / 2) / sum);
  // si16: distances in steps of 256 units; d = 300 -> 1 step.
  Tensor w = ints({2}, ElemType::SI16, {300, 0}, perTensor(0.01f));
  Tensor wideTable = ints({256}, ElemType::SI32, exec::softmaxExpTable(ElemType::SI16, 0.01f));
  Tensor z = run1("softmax", {w, wideTable}, {}, TensorType({2}, ElemType::SI16, perTensor(1.0f / 32768)));
  int64_t e1 = static_cast<int64_t>(std::nearbyint(65535 * std::exp(-1 * (static_cast<double>(0.01f) * 256))));
  int64_t s2 = 65535 + e1;
  CHECK_VALUES(z, std::min<int64_t>((65535 * 32768 + s2 / 2) / s2, 32767), (e1 * 32768 + s2 / 2) / s2);
}

TEST(int_argmax_topk_ties) {
  Tensor x = ints({1, 5}, ElemType::SI8, {3, 7, 7, -1, 7}, perTensor(0.1f));
  CHECK_VALUES(run1("argmax", {x}, {{"axis", ir::Attribute(1)}}, TensorType({1, 1}, ElemType::SI32)), 1);
  auto top = run("topk", {x}, {{"k", ir::Attribute(3)}},
                 {TensorType({1, 3}, ElemType::SI8, perTensor(0.1f)), TensorType({1, 3}, ElemType::SI32)});
  CHECK_VALUES(top[0], 7, 7, 7);
  CHECK_VALUES(top[1], 1, 2, 4);
  auto low = run("topk", {x}, {{"k", ir::Attribute(2)}, {"largest", ir::Attribute(false)}},
                 {TensorType({1, 2}, ElemType::SI8, perTensor(0.1f)), TensorType({1, 2}, ElemType::SI32)});
  CHECK_VALUES(low[0], -1, 3);
  CHECK_VALUES(low[1], 3, 0);
  Tensor f = floats({1, 3}, {0.5f, 2.0f, 2.0f});
  CHECK_VALUES(run1("argmax", {f}, {}, TensorType({1, 1}, ElemType::SI32)), 1);
}

// ---- float boundary ---------------------------------------------------------------------------

TEST(int_quantize_dequantize) {
  float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  Tensor x = floats({8}, {0.25f, 0.75f, -0.25f, -0.75f, 1000.0f, -inf, nan, 0.3f});
  Tensor q = run1("quantize", {x}, {}, TensorType({8}, ElemType::SI8, perTensor(0.5f)));
  // 0.5 -> 0, 1.5 -> 2, -0.5 -> 0, -1.5 -> -2 (half to even); saturation; NaN -> 0; 0.6 -> 1
  CHECK_VALUES(q, 0, 2, 0, -2, 127, -128, 0, 1);
  Tensor q16 = run1("quantize", {x}, {}, TensorType({8}, ElemType::SI16, perTensor(0.01f)));
  CHECK_EQ(q16.getInt(4), 32767);
  CHECK_EQ(q16.getInt(7), static_cast<int64_t>(std::nearbyint(0.3f / 0.01f)));
  Tensor d = run1("dequantize", {q}, {}, TensorType({8}, ElemType::F32));
  CHECK_EQ(d.getFloat(1), 1.0f);
  CHECK_EQ(d.getFloat(5), -64.0f);
  // per-axis dequantize
  Tensor w = ints({2, 1}, ElemType::SI8, {3, 3}, perAxis({0.5f, 0.25f}, 0));
  Tensor dw = run1("dequantize", {w}, {}, TensorType({2, 1}, ElemType::F32));
  CHECK_EQ(dw.getFloat(0), 1.5f);
  CHECK_EQ(dw.getFloat(1), 0.75f);
}

TEST(int_kernel_coverage) {
  // Every op with a BPU instruction has an integer kernel; the ops quantize removes (batch_norm,
  // the float activations it rewrites to lut) and constants have none.
  for (const ir::OpDef& d : ir::opTable()) {
    bool lowered = d.traits.opcode != nullptr;
    CHECK_EQ(exec::intKernelExists(d.name), lowered);
  }
  ir::Module m;
  ir::Function* fn = m.addFunction("main");
  ir::Value* f = fn->addArgument(TensorType({2}, ElemType::F32));
  CHECK(!exec::hasIntKernel(*m.createOp(fn, "relu", {f})));
  CHECK(!exec::hasIntKernel(*m.createOp(fn, "sigmoid", {f})));
}
