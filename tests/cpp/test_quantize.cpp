// Discardable attributes, the quantize pass (errors, numbers, determinism, execution of its output
// against the float model) and the fuse pass (march rules, roles, re-runs). Exact text outputs
// live in tests/ir/quantize and tests/ir/fuse.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "exec/executor.h"
#include "exec/requant.h"
#include "ir/text.h"
#include "ir/verifier.h"
#include "march/march.h"
#include "passes/pass.h"
#include "testing.h"

using namespace hbdk;
using ir::Attribute;
using ir::ElemType;
using ir::TensorType;

namespace {

std::unique_ptr<ir::Module> quantized(const std::string& text) {
  auto m = ir::parseModule(text);
  passes::PassManager pm;
  pm.add("quantize");
  pm.run(*m);
  return m;
}

std::string hexOf(const std::vector<float>& v) {
  static const char* digits = "0123456789ABCDEF";
  std::string s = "\"0x";
  for (float f : v) {
    unsigned char b[4];
    std::memcpy(b, &f, 4);
    for (unsigned char c : b) s += std::string{digits[c >> 4], digits[c & 15]};
  }
  return s + "\"";
}

const ir::Op* findOp(const ir::Function& fn, const std::string& name, int nth = 0) {
  for (const auto& op : fn.ops)
    if (op->is(name) && nth-- == 0) return op.get();
  return nullptr;
}

march::March shippedMarch(const std::string& name) {
  return march::loadMarchFile(std::string(HBDK_SOURCE_DIR) + "/python/hbdk_sim/marches/" + name + ".json");
}

}  // namespace

// ---- discardable attributes -------------------------------------------------------------------

TEST(DiscardableAttrsFollowTheTableInGivenOrder) {
  ir::Module m;
  ir::Function* fn = m.addFunction("main");
  ir::Value* x = fn->addArgument(TensorType({1, 4}, ElemType::F32));
  ir::Op* op = m.createOp(fn, "softmax", {x},
                          {{"bpu.z", Attribute(int64_t{3})},
                           {"axis", Attribute(int64_t{1})},
                           {"quant.dtype", Attribute("si16")},
                           {"a.list", Attribute(std::vector<double>{0.5})}});
  CHECK_EQ(op->attrs.size(), size_t{4});
  CHECK_EQ(op->attrs[0].first, std::string("axis"));
  CHECK_EQ(op->attrs[1].first, std::string("bpu.z"));
  CHECK_EQ(op->attrs[2].first, std::string("quant.dtype"));
  CHECK_EQ(op->attrs[3].first, std::string("a.list"));
  // setAttr keeps the table's attributes first and appends a new discardable one last.
  op->setAttr("bpu.group", Attribute(int64_t{0}));
  op->setAttr("axis", Attribute(int64_t{-1}));
  CHECK_EQ(op->attrs.back().first, std::string("bpu.group"));
  CHECK(op->attrs[0].second == Attribute(int64_t{-1}));
  fn->addReturn(op->result());
  ir::verifyModule(m);
  // The op's own semantics ignore them: the printed form reads back identically.
  std::string text = ir::printModule(m);
  CHECK(text.find("{axis = -1, bpu.z = 3, quant.dtype = \"si16\", a.list = [0.5], bpu.group = 0}") !=
        std::string::npos);
  CHECK_EQ(ir::printModule(*ir::parseModule(text)), text);
}

TEST(DiscardableAttrsErrors) {
  ir::Module m;
  ir::Function* fn = m.addFunction("main");
  ir::Value* x = fn->addArgument(TensorType({1, 4}, ElemType::F32));
  CHECK_THROWS(ir::VerifyError, m.createOp(fn, "relu", {x}, {{"bpu.g", Attribute(1)}, {"bpu.g", Attribute(2)}}),
               "attribute 'bpu.g' given more than once");
  CHECK_THROWS(ir::VerifyError, m.createOp(fn, "relu", {x}, {{"bpu.g x", Attribute(1)}}),
               "attribute name 'bpu.g x' is not an identifier");
  CHECK_THROWS(ir::VerifyError, m.createOp(fn, "relu", {x}, {{"group", Attribute(1)}}), "unknown attribute 'group'");

  ir::Op* op = m.createOp(fn, "softmax", {x}, {{"bpu.g", Attribute(1)}});
  std::swap(op->attrs[0], op->attrs[1]);  // a discardable attribute before a table one
  CHECK_THROWS(ir::VerifyError, ir::verifyOp(*op, m), "expected attribute 'axis' at position 0 but got 'bpu.g'");
  std::swap(op->attrs[0], op->attrs[1]);
  op->attrs.emplace_back("bpu.g", Attribute(2));
  CHECK_THROWS(ir::VerifyError, ir::verifyOp(*op, m), "attribute 'bpu.g' is given more than once");
  op->attrs.pop_back();
  op->attrs.emplace_back("bad name.x", Attribute(2));
  CHECK_THROWS(ir::VerifyError, ir::verifyOp(*op, m), "is not an identifier");

  CHECK_THROWS(ir::ParseError,
               ir::parseModule("module @m {\n  func @f(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n"
                               "    %y = relu(%x) {a.b = 1, a.b = 2} : tensor<2xf32>\n    return %y\n  }\n}\n"),
               "attribute 'a.b' given more than once");
}

// ---- quantize: errors -------------------------------------------------------------------------

TEST(QuantizeNeedsCalibrationScales) {
  const char* noArgScale =
      "module @m {\n  func @main(%x: tensor<1x4xf32>) -> (tensor<1x4xf32, scale=0.1>) {\n"
      "    %y = relu(%x) : tensor<1x4xf32, scale=0.1>\n    return %y\n  }\n}\n";
  CHECK_THROWS(ir::PassError, quantized(noArgScale),
               "function @main: argument '%x' (tensor<1x4xf32>) has no calibration scale; "
               "calibrate the float model first");
  const char* noResultScale =
      "module @m {\n  func @main(%x: tensor<1x4xf32, scale=0.1>) -> (tensor<1x4xf32>) {\n"
      "    %y = sigmoid(%x) : tensor<1x4xf32> loc(\"act\")\n    return %y\n  }\n}\n";
  CHECK_THROWS(ir::PassError, quantized(noResultScale),
               "'sigmoid' op (loc(\"act\")): result '%y' (tensor<1x4xf32>) has no calibration scale; calibrate");
  // Data movement needs no annotation: its result takes the input's scale.
  const char* reshapeOnly =
      "module @m {\n  func @main(%x: tensor<1x4xf32, scale=0.1>) -> (tensor<4xf32>) {\n"
      "    %y = reshape(%x) {shape = [4]} : tensor<4xf32>\n    return %y\n  }\n}\n";
  auto m = quantized(reshapeOnly);
  CHECK_EQ(findOp(*m->functions[0], "reshape")->result()->type.str(), std::string("tensor<4xsi8, scale=0.1>"));
}

TEST(QuantizeRejectsWhatHasNoIntegerForm) {
  auto wrap = [](const std::string& body, const std::string& resultType) {
    return "module @m {\n  func @main(%x: tensor<1x2x2x2xf32, scale=0.1>, %w: tensor<2x2x1x1xf32, scale=0.1>) -> (" +
           resultType + ") {\n" + body + "  }\n}\n";
  };
  CHECK_THROWS(ir::PassError,
               quantized(wrap("    %y = conv2d(%x, %w) : tensor<1x2x2x2xf32, scale=0.1>\n    return %y\n",
                              "tensor<1x2x2x2xf32, scale=0.1>")),
               "the weight must be an f32 constant but got '%w.q' (tensor<2x2x1x1xsi8, scale=0.1>)");
  CHECK_THROWS(ir::PassError,
               quantized(wrap("    %y = relu(%x) {quant.dtype = \"si32\"} : tensor<1x2x2x2xf32, scale=0.1>\n"
                              "    return %y\n",
                              "tensor<1x2x2x2xf32, scale=0.1>")),
               "expected quant.dtype = \"si8\" or \"si16\" but got \"si32\"");
  const char* bn =
      "module @m {\n  func @main(%x: tensor<1x2xf32, scale=0.1>, %p: tensor<2xf32, scale=0.1>) -> "
      "(tensor<1x2xf32, scale=0.1>) {\n"
      "    %y = batch_norm(%x, %p, %p, %p, %p) : tensor<1x2xf32, scale=0.1>\n    return %y\n  }\n}\n";
  CHECK_THROWS(ir::PassError, quantized(bn), "run fold-bn before quantize");
  // On its own output the pass changes nothing; integer ops beside float compute are an error.
  auto once = quantized(
      wrap("    %y = relu(%x) : tensor<1x2x2x2xf32, scale=0.1>\n    return %y\n", "tensor<1x2x2x2xf32, scale=0.1>"));
  const std::string before = ir::printModule(*once);
  passes::PassContext ctx;
  passes::PassStatistics again = passes::createPass("quantize")->run(*once, ctx);
  CHECK_EQ(ir::printModule(*once), before);
  CHECK_EQ(again["already_integer"], 1);
  CHECK_THROWS(ir::PassError,
               quantized(wrap("    %q = quantize(%x) : tensor<1x2x2x2xsi8, scale=0.1>\n"
                              "    %d = dequantize(%q) : tensor<1x2x2x2xf32>\n"
                              "    %y = relu(%d) : tensor<1x2x2x2xf32, scale=0.1>\n    return %y\n",
                              "tensor<1x2x2x2xf32, scale=0.1>")),
               "found float ops beside integer ops (such as 'quantize')");
  // A requantization ratio of 2^31 or more cannot be expressed.
  CHECK_THROWS(ir::PassError,
               quantized(wrap("    %y = relu6(%x) : tensor<1x2x2x2xf32, scale=1e-12>\n    return %y\n",
                              "tensor<1x2x2x2xf32, scale=1e-12>")),
               "'relu6' op: cannot requantize");
}

// ---- quantize: numbers ------------------------------------------------------------------------

TEST(QuantizeWeightsBiasAndRequantParameters) {
  // Channel 0 is all zero (scale 1.0 by convention), channel 1 has max |w| = 3.
  std::string text =
      "module @m {\n  func @main(%x: tensor<1x2x1x1xf32, scale=0.25>) -> (tensor<1x2x1x1xf32, scale=0.5>) {\n"
      "    %w = constant {value = dense_resource<w>} : tensor<2x2x1x1xf32>\n"
      "    %b = constant {value = dense_resource<b>} : tensor<2xf32>\n"
      "    %y = conv2d(%x, %w, %b) : tensor<1x2x1x1xf32, scale=0.5>\n    return %y\n  }\n}\n\n"
      "resources {\n  w = " +
      hexOf({0, 0, 3, -1.5}) + "\n  b = " + hexOf({0.3f, 1e9f}) + "\n}\n";
  auto m = quantized(text);
  const ir::Function& fn = *m->functions[0];
  const ir::Op* conv = findOp(fn, "conv2d");
  const TensorType& wt = conv->operand(1)->type;
  CHECK_EQ(wt.str(), std::string("tensor<2x2x1x1xsi8, scale=[1.0, 0.023622047], axis=0>"));
  const ir::Blob& w = m->resource("w");
  CHECK_EQ(static_cast<int>(static_cast<int8_t>(w[2])), 127);
  CHECK_EQ(static_cast<int>(static_cast<int8_t>(w[3])), -64);  // -63.5 rounds half to even
  // Bias at s_in * s_w[c]: 0.3 / 0.25 = 1.2 -> 1; 1e9 / (0.25 * 3/127) saturates to 2^31 - 1.
  const ir::Blob& b = m->resource("b");
  int32_t b0, b1;
  std::memcpy(&b0, b.data(), 4);
  std::memcpy(&b1, b.data() + 4, 4);
  CHECK_EQ(b0, 1);
  CHECK_EQ(b1, 2147483647);
  const ir::Op* rq = findOp(fn, "requantize");
  const std::vector<float>& sAcc = conv->result()->type.quant->scales;
  for (size_t c = 0; c < 2; ++c) {
    exec::Requant r = exec::computeRequant(static_cast<double>(sAcc[c]) / 0.5f);
    CHECK_EQ(rq->getInts("multiplier")[c], r.multiplier);
    CHECK_EQ(rq->getInts("shift")[c], static_cast<int64_t>(r.shift));
  }
  CHECK_EQ(rq->getInt("axis"), int64_t{1});
}

TEST(QuantizeIsDeterministic) {
  std::string text =
      "module @m {\n  func @main(%x: tensor<1x4xf32, scale=0.03>) -> (tensor<1x4xf32, scale=0.007874016>, "
      "tensor<1x4xf32, scale=0.1>) {\n"
      "    %t = tanh(%x) : tensor<1x4xf32, scale=0.007874016>\n"
      "    %e = exp(%x) {quant.dtype = \"si16\"} : tensor<1x4xf32, scale=0.001>\n"
      "    %s = sub(%e, %x) : tensor<1x4xf32, scale=0.1>\n"
      "    return %t, %s\n  }\n}\n";
  std::string first = ir::printModule(*quantized(text));
  for (int i = 0; i < 3; ++i) CHECK_EQ(ir::printModule(*quantized(text)), first);
  // An si8 input gives a 256-entry table of the output type.
  CHECK(first.find("tensor<256xsi16>") != std::string::npos);
}

TEST(QuantizePadsAValueBeyondTheInputRangeAtTheResultScale) {
  // x spans 0.127; pad value -1.0 would saturate to -0.128 at x's scale, so the input moves to the
  // calibrated result scale first. A value in range pads at the input's scale, with no requantize.
  auto text = [](const std::string& value) {
    return "module @m {\n  func @main(%x: tensor<1x1x1x2xf32, scale=0.001>) -> (tensor<1x1x1x3xf32, "
           "scale=0.007874016>) {\n"
           "    %p = pad(%x) {pads = [0, 0, 0, 0, 0, 0, 0, 1], value = " +
           value + "} : tensor<1x1x1x3xf32, scale=0.007874016>\n    return %p\n  }\n}\n";
  };
  auto m = quantized(text("-1.0"));
  const ir::Function& fn = *m->functions[0];
  const ir::Op* pad = findOp(fn, "pad");
  CHECK(pad->operand(0)->owner && pad->operand(0)->owner->is("requantize"));
  CHECK_EQ(pad->result()->type.str(), std::string("tensor<1x1x1x3xsi8, scale=0.007874016>"));
  exec::Tensor input(TensorType({1, 1, 1, 2}, ElemType::F32));
  input.setFloat(0, 0.1f);
  input.setFloat(1, -0.05f);
  exec::Tensor out = exec::Executor(*m).run({input})[0];
  CHECK(std::fabs(out.getFloat(0) - 0.1f) < 0.004f);
  CHECK(std::fabs(out.getFloat(1) + 0.05f) < 0.004f);
  CHECK(std::fabs(out.getFloat(2) + 1.0f) < 1e-6f);

  // The same at si16: an si16 scale (1/32767) reaches the value only with the si16 the pad asks for.
  auto wide = quantized(
      "module @m {\n  func @main(%x: tensor<1x1x1x2xf32, scale=0.001>) -> (tensor<1x1x1x3xf32, scale=3.0518e-05>) {\n"
      "    %p = pad(%x) {pads = [0, 0, 0, 0, 0, 0, 0, 1], value = -1.0, quant.dtype = \"si16\"} : "
      "tensor<1x1x1x3xf32, scale=3.0518e-05>\n    return %p\n  }\n}\n");
  CHECK_EQ(findOp(*wide->functions[0], "pad")->result()->type.str(),
           std::string("tensor<1x1x1x3xsi16, scale=3.0518e-05>"));
  exec::Tensor wideOut = exec::Executor(*wide).run({input})[0];
  CHECK(std::fabs(wideOut.getFloat(2) + 1.0f) < 1e-4f);

  auto inRange = quantized(text("0.05"));
  CHECK(findOp(*inRange->functions[0], "requantize") == nullptr);
  CHECK_EQ(findOp(*inRange->functions[0], "pad")->result()->type.str(),
           std::string("tensor<1x1x1x3xsi8, scale=0.001>"));
}

TEST(QuantizeConcatOfMixedWidthsRequantizesToTheResultType) {
  // %a is si16 and %x si8: concat's inputs must share its element type, so %a moves to the si8
  // result at the result's scale; the other way round (an si16 concat) %x widens.
  auto text = [](const std::string& concatDtype) {
    return "module @m {\n  func @main(%x: tensor<1x1x1x2xf32, scale=0.01>) -> (tensor<1x2x1x2xf32, scale=0.02>) {\n"
           "    %a = relu(%x) {quant.dtype = \"si16\"} : tensor<1x1x1x2xf32, scale=0.0001>\n"
           "    %c = concat(%x, %a) " +
           concatDtype + ": tensor<1x2x1x2xf32, scale=0.02>\n    return %c\n  }\n}\n";
  };
  for (const std::string dtype : {"", "{quant.dtype = \"si16\"} "}) {
    auto m = quantized(text(dtype));
    const ir::Function& fn = *m->functions[0];
    const ir::Op* concat = findOp(fn, "concat");
    ElemType elem = dtype.empty() ? ElemType::SI8 : ElemType::SI16;
    CHECK(concat->result()->type.elem == elem);
    for (const ir::Value* v : concat->operands()) CHECK(v->type.elem == elem);
    const ir::Value* moved = concat->operand(dtype.empty() ? 1 : 0);
    CHECK(moved->owner && moved->owner->is("requantize"));
    CHECK(moved->type.quant->scales[0] == 0.02f);
    exec::Tensor input(TensorType({1, 1, 1, 2}, ElemType::F32));
    input.setFloat(0, 0.5f);
    input.setFloat(1, -0.3f);
    exec::Tensor out = exec::Executor(*m).run({input})[0];
    const float expected[] = {0.5f, -0.3f, 0.5f, 0.0f};
    for (int64_t i = 0; i < 4; ++i) CHECK(std::fabs(out.getFloat(i) - expected[i]) < 0.011f);
  }
}

// ---- quantize: the integer graph runs and approximates the float one --------------------------

TEST(QuantizedGraphTracksTheFloatModel) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  auto randoms = [&](size_t n, float scale) {
    std::vector<float> v(n);
    for (float& x : v) x = uni(rng) * scale;
    return v;
  };
  std::string text =
      "module @net {\n  func @main(%x: tensor<1x3x8x8xf32>) -> (tensor<1x4xf32>, tensor<1x4x4x4xf32>) {\n"
      "    %w1 = constant {value = dense_resource<w1>} : tensor<4x3x3x3xf32>\n"
      "    %b1 = constant {value = dense_resource<b1>} : tensor<4xf32>\n"
      "    %c1 = conv2d(%x, %w1, %b1) {padding = [1, 1, 1, 1]} : tensor<1x4x8x8xf32>\n"
      "    %r1 = relu(%c1) : tensor<1x4x8x8xf32>\n"
      "    %w2 = constant {value = dense_resource<w2>} : tensor<4x4x1x1xf32>\n"
      "    %c2 = conv2d(%r1, %w2) : tensor<1x4x8x8xf32>\n"
      "    %s = add(%c2, %r1) : tensor<1x4x8x8xf32>\n"
      "    %g = sigmoid(%s) : tensor<1x4x8x8xf32>\n"
      "    %p = avg_pool2d(%g) {kernel = [2, 2], stride = [2, 2]} : tensor<1x4x4x4xf32>\n"
      "    %gp = global_avg_pool2d(%p) : tensor<1x4x1x1xf32>\n"
      "    %f = flatten(%gp) : tensor<1x4xf32>\n"
      "    %wl = constant {value = dense_resource<wl>} : tensor<4x4xf32>\n"
      "    %bl = constant {value = dense_resource<bl>} : tensor<4xf32>\n"
      "    %l = linear(%f, %wl, %bl) : tensor<1x4xf32>\n"
      "    %sm = softmax(%l) : tensor<1x4xf32>\n"
      "    return %sm, %p\n  }\n}\n\nresources {\n"
      "  w1 = " +
      hexOf(randoms(108, 0.5f)) + "\n  b1 = " + hexOf(randoms(4, 0.2f)) + "\n  w2 = " + hexOf(randoms(16, 0.8f)) +
      "\n  wl = " + hexOf(randoms(16, 4.0f)) + "\n  bl = " + hexOf(randoms(4, 0.5f)) + "\n}\n";
  auto m = ir::parseModule(text);
  exec::Tensor input(TensorType({1, 3, 8, 8}, ElemType::F32));
  std::vector<float> xs = randoms(192, 1.0f);
  for (size_t i = 0; i < xs.size(); ++i) input.setFloat(i, xs[i]);

  // Calibrate on the one sample: scale = max|v| / 127 for every activation.
  std::vector<exec::Tensor> expected;
  {
    exec::Executor floatRun(*m);
    expected = floatRun.run({input});
    std::map<const ir::Value*, exec::Tensor> all = floatRun.runAll({input});
    for (auto& [value, tensor] : all) {
      if (value->owner && value->owner->is("constant")) continue;
      double amax = 0;
      for (int64_t i = 0; i < tensor.numel(); ++i) amax = std::max(amax, std::fabs(double(tensor.getFloat(i))));
      const_cast<ir::Value*>(value)->type.quant = ir::Quant{{static_cast<float>(amax / 127)}, -1};
    }
  }
  ir::verifyModule(*m);
  passes::PassManager pm;
  pm.add("quantize");
  pm.run(*m);

  exec::Executor optimized(*m);
  exec::Executor reference(*m, "main", exec::ExecOptions{false, 1});
  std::vector<exec::Tensor> got = optimized.run({input});
  std::vector<exec::Tensor> ref = reference.run({input});
  CHECK_EQ(got.size(), size_t{2});
  for (size_t k = 0; k < got.size() && k < 2; ++k) {
    CHECK(got[k].bytes == ref[k].bytes);  // the optimized kernels agree bit for bit
    double worst = 0;
    for (int64_t i = 0; i < got[k].numel(); ++i)
      worst = std::max(worst, std::fabs(double(got[k].getFloat(i)) - expected[k].getFloat(i)));
    // Within two output steps (1/127 of each output's range): rounding, not a wrong scale.
    CHECK(worst < 0.015);
  }
}

// ---- fuse ------------------------------------------------------------------------------------

namespace {

const char* kResidualBlock =
    "module @m {\n  func @main(%x: tensor<1x2x2x2xf32, scale=0.05>) -> (tensor<1x2x2x2xf32, scale=0.1>) {\n"
    "    %w = constant {value = dense_resource<w>} : tensor<2x2x1x1xf32>\n"
    "    %y = conv2d(%x, %w) : tensor<1x2x2x2xf32, scale=0.1>\n"
    "    %r = relu(%y) : tensor<1x2x2x2xf32, scale=0.1>\n"
    "    %y2 = conv2d(%r, %w) : tensor<1x2x2x2xf32, scale=0.1>\n"
    "    %s = add(%r, %y2) : tensor<1x2x2x2xf32, scale=0.1>\n"
    "    %o = relu(%s) : tensor<1x2x2x2xf32, scale=0.1>\n"
    "    return %o\n  }\n}\n\nresources {\n  w = \"0x0000803F000080BF0000003F00000040\"\n}\n";

std::vector<std::string> groupsOf(const ir::Function& fn) {
  std::vector<std::string> out;
  for (const auto& op : fn.ops)
    if (op->hasAttr("bpu.group"))
      out.push_back(std::string(op->name()) + ":" + std::to_string(op->getInt("bpu.group")) + ":" +
                    op->getString("bpu.group_role"));
  return out;
}

}  // namespace

TEST(QuantizeClampTakesOverItsConvRequantize) {
  // conv -> relu6 with two calibrated scales (as from a float model): the conv's requantize goes
  // straight to the relu6's scale, nothing is rounded twice, and fuse makes one instruction of it.
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::vector<float> w(4 * 3 * 3 * 3), x(3 * 6 * 6);
  for (float& v : w) v = uni(rng);
  for (float& v : x) v = uni(rng) * 4.0f;
  std::string text =
      "module @m {\n  func @main(%x: tensor<1x3x6x6xf32, scale=0.03125>) -> (tensor<1x4x6x6xf32, scale=0.0472>) {\n"
      "    %w = constant {value = dense_resource<w>} : tensor<4x3x3x3xf32>\n"
      "    %y = conv2d(%x, %w) {padding = [1, 1, 1, 1]} : tensor<1x4x6x6xf32, scale=0.0913>\n"
      "    %r = relu6(%y) : tensor<1x4x6x6xf32, scale=0.0472>\n    return %r\n  }\n}\n\n"
      "resources {\n  w = " +
      hexOf(w) + "\n}\n";
  auto m = quantized(text);
  ir::verifyModule(*m);
  const ir::Function& fn = *m->functions[0];
  CHECK(findOp(fn, "requantize", 1) == nullptr);
  const ir::Op* conv = findOp(fn, "conv2d");
  const ir::Op* rq = findOp(fn, "requantize");
  const ir::Op* relu6 = findOp(fn, "relu6");
  CHECK(rq->operand(0) == conv->result() && relu6->operand(0) == rq->result());
  CHECK_EQ(relu6->result()->type.str(), std::string("tensor<1x4x6x6xsi8, scale=0.0472>"));
  const std::vector<float>& sAcc = conv->result()->type.quant->scales;
  for (size_t c = 0; c < sAcc.size(); ++c)
    CHECK_EQ(rq->getInts("multiplier")[c], exec::computeRequant(static_cast<double>(sAcc[c]) / 0.0472f).multiplier);

  // One rounding: every output is within half a step of relu6 of the exact accumulator.
  exec::Tensor input(TensorType({1, 3, 6, 6}, ElemType::F32));
  for (size_t i = 0; i < x.size(); ++i) input.setFloat(i, x[i]);
  exec::Executor run(*m);
  std::map<const ir::Value*, exec::Tensor> all = run.runAll({input});
  const exec::Tensor& acc = all.at(conv->result());
  const exec::Tensor& out = all.at(relu6->result());
  double worst = 0;
  for (int64_t i = 0; i < acc.numel(); ++i) {
    size_t c = static_cast<size_t>(i / 36 % 4);
    double exact = std::clamp(double(acc.getInt(i)) * sAcc[c] / double(0.0472f), 0.0, 6.0 / double(0.0472f));
    worst = std::max(worst, std::fabs(double(out.getInt(i)) - exact));
  }
  CHECK(worst <= 0.5 + 1e-6);

  passes::PassContext ctx;
  march::March bpu = shippedMarch("bpu");
  ctx.march = &bpu;
  passes::createPass("fuse")->run(*m, ctx);
  CHECK(groupsOf(fn) == (std::vector<std::string>{"conv2d:0:anchor", "requantize:0:requant", "relu6:0:activation"}));
}

TEST(FuseNeedsAMarch) {
  auto m = quantized(kResidualBlock);
  passes::PassContext none;
  CHECK_THROWS(ir::PassError, passes::createPass("fuse")->run(*m, none), "fuse needs a march");
}

TEST(FuseFollowsTheMarchRules) {
  march::March bpu = shippedMarch("bpu");
  auto runFuse = [&](const march::March& target) {
    auto m = quantized(kResidualBlock);
    passes::PassContext ctx;
    ctx.march = &target;
    passes::PassStatistics stats = passes::createPass("fuse")->run(*m, ctx);
    ir::verifyModule(*m);
    return std::make_pair(groupsOf(*m->functions[0]), stats);
  };

  auto [all, stats] = runFuse(bpu);
  CHECK(all ==
        (std::vector<std::string>{"conv2d:0:anchor", "requantize:0:requant", "relu:0:activation", "conv2d:1:anchor",
                                  "requantize:1:requant", "add:1:residual_add", "relu:1:activation"}));
  CHECK_EQ(stats["groups"], int64_t{2});
  CHECK_EQ(stats["conv_activation"], int64_t{1});
  CHECK_EQ(stats["conv_add_activation"], int64_t{1});
  // The first relu is read by the second conv and the add: two readers, but it ends its chain.

  march::March noAdd = bpu;
  noAdd.fuse.convAdd = false;
  CHECK(runFuse(noAdd).first ==
        (std::vector<std::string>{"conv2d:0:anchor", "requantize:0:requant", "relu:0:activation", "conv2d:1:anchor",
                                  "requantize:1:requant"}));
  march::March nothing = bpu;
  nothing.fuse = march::FuseRules{};
  auto [bare, bareStats] = runFuse(nothing);
  CHECK(bare == (std::vector<std::string>{"conv2d:0:anchor", "requantize:0:requant", "conv2d:1:anchor",
                                          "requantize:1:requant"}));
  CHECK_EQ(bareStats["conv_requant"], int64_t{2});
}

TEST(FuseRerunsFromScratch) {
  march::March bpu = shippedMarch("bpu");
  auto m = quantized(kResidualBlock);
  passes::PassContext ctx;
  ctx.march = &bpu;
  passes::createPass("fuse")->run(*m, ctx);
  std::string once = ir::printModule(*m);
  passes::createPass("fuse")->run(*m, ctx);
  CHECK_EQ(ir::printModule(*m), once);
  // Rules that fuse less drop the old groups instead of keeping them.
  march::March nothing = bpu;
  nothing.fuse = march::FuseRules{};
  ctx.march = &nothing;
  passes::createPass("fuse")->run(*m, ctx);
  CHECK_EQ(groupsOf(*m->functions[0]).size(), size_t{4});
}

TEST(CompilePipelineListsTheBackEnd) {
  std::vector<std::string> names = passes::expandPipeline({"compile"});
  CHECK(names == (std::vector<std::string>{"canonicalize", "fold-bn", "constant-fold", "canonicalize", "quantize",
                                           "canonicalize", "fuse", "check-constraints", "lower", "serialize"}));
}
