// Small quantized, fused HBIR graphs (the lower pass's input) written out as text, shared by the
// lowering, cycle-model and .hbm tests, with the helpers that load a shipped march and lower a
// module for it. Weights are deterministic filler bytes of the right size.
#pragma once

#include <cstdint>
#include <string>

#include "isa/program.h"
#include "march/march.h"
#include "passes/pass.h"

namespace testgraphs {

inline hbdk::march::March shippedMarch(const std::string& name) {
  return hbdk::march::loadMarchFile(std::string(HBDK_SOURCE_DIR) + "/python/hbdk_sim/marches/" + name + ".json");
}

// Runs the lower pass alone on an already quantized, fused module.
inline hbdk::isa::Program lower(hbdk::ir::Module& m, const hbdk::march::March& march) {
  hbdk::isa::Program prog;
  hbdk::passes::PassContext ctx;
  ctx.march = &march;
  ctx.program = &prog;
  hbdk::passes::createPass("lower")->run(m, ctx);
  return prog;
}

inline std::string hexFill(size_t bytes, uint32_t seed) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string s = "\"0x";
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < bytes; ++i) {
    x = x * 1103515245u + 12345u;
    uint8_t b = static_cast<uint8_t>(x >> 16) & 0x1F;  // small weights, any sign after wrap is fine
    s += kHex[b >> 4];
    s += kHex[b & 15];
  }
  return s + "\"";
}

// "[s, s, ..., s]" with n entries.
inline std::string scaleList(int n, const std::string& s) {
  std::string out = "[";
  for (int i = 0; i < n; ++i) out += (i ? ", " : "") + s;
  return out + "]";
}

// quantize -> conv2d 3->4 (3x3, pad 1) + requantize + relu (group 0) -> max_pool 2x2 -> dequantize.
inline std::string tinyConvPool() {
  return "module @tiny {\n"
         "  func @main(%x: tensor<1x3x8x8xf32>) -> (tensor<1x4x4x4xf32>) {\n"
         "    %q = quantize(%x) : tensor<1x3x8x8xsi8, scale=0.05>\n"
         "    %w = constant {value = dense_resource<w>} : tensor<4x3x3x3xsi8, scale=[0.01, 0.01, 0.02, 0.02], axis=0>\n"
         "    %b = constant {value = dense_resource<b>} : tensor<4xsi32, scale=[0.0005, 0.0005, 0.001, 0.001], "
         "axis=0>\n"
         "    %acc = conv2d(%q, %w, %b) {stride = [1, 1], padding = [1, 1, 1, 1], dilation = [1, 1], groups = 1, "
         "bpu.group = 0, bpu.group_role = \"anchor\"} : tensor<1x4x8x8xsi32, scale=[0.0005, 0.0005, 0.001, 0.001], "
         "axis=1> loc(\"conv1\")\n"
         "    %r = requantize(%acc) {multiplier = [1073741824], shift = [35], axis = 1, bpu.group = 0, "
         "bpu.group_role = \"requant\"} : tensor<1x4x8x8xsi8, scale=0.1>\n"
         "    %y = relu(%r) {bpu.group = 0, bpu.group_role = \"activation\"} : tensor<1x4x8x8xsi8, scale=0.1>\n"
         "    %p = max_pool2d(%y) {kernel = [2, 2], stride = [2, 2]} : tensor<1x4x4x4xsi8, scale=0.1>\n"
         "    %o = dequantize(%p) : tensor<1x4x4x4xf32>\n"
         "    return %o\n"
         "  }\n"
         "}\n\n"
         "resources {\n"
         "  w = " +
         hexFill(108, 1) +
         "\n"
         "  b = " +
         hexFill(16, 2) +
         "\n"
         "}\n";
}

// quantize -> two fused 3x3 convs of c channels on an hw x hw map -> dequantize.
inline std::string bigConvChain(int c, int hw) {
  std::string cs = std::to_string(c), h = std::to_string(hw);
  std::string act = "tensor<1x" + cs + "x" + h + "x" + h;
  std::string wType = "tensor<" + cs + "x" + cs + "x3x3xsi8, scale=" + scaleList(c, "0.01") + ", axis=0>";
  std::string bType = "tensor<" + cs + "xsi32, scale=" + scaleList(c, "0.0005") + ", axis=0>";
  std::string accType = act + "xsi32, scale=" + scaleList(c, "0.0005") + ", axis=1>";
  std::string text = "module @chain {\n  func @main(%x: " + act + "xf32>) -> (" + act + "xf32>) {\n" +
                     "    %q = quantize(%x) : " + act + "xsi8, scale=0.05>\n";
  std::string prev = "%q";
  for (int i = 1; i <= 2; ++i) {
    std::string n = std::to_string(i), g = std::to_string(i - 1);
    text += "    %w" + n + " = constant {value = dense_resource<w" + n + ">} : " + wType + "\n";
    text += "    %b" + n + " = constant {value = dense_resource<b" + n + ">} : " + bType + "\n";
    text += "    %acc" + n + " = conv2d(" + prev + ", %w" + n + ", %b" + n +
            ") {stride = [1, 1], padding = [1, 1, 1, 1], dilation = [1, 1], groups = 1, bpu.group = " + g +
            "} : " + accType + " loc(\"conv" + n + "\")\n";
    text += "    %r" + n + " = requantize(%acc" + n +
            ") {multiplier = [1073741824], shift = [35], axis = 1, "
            "bpu.group = " +
            g + "} : " + act + "xsi8, scale=0.05>\n";
    text += "    %y" + n + " = relu(%r" + n + ") {bpu.group = " + g + "} : " + act + "xsi8, scale=0.05>\n";
    prev = "%y" + n;
  }
  text += "    %o = dequantize(" + prev + ") : " + act + "xf32>\n    return %o\n  }\n}\n\nresources {\n";
  for (int i = 1; i <= 2; ++i) {
    text += "  w" + std::to_string(i) + " = " + hexFill(size_t(c) * c * 9, 10 + i) + "\n";
    text += "  b" + std::to_string(i) + " = " + hexFill(size_t(c) * 4, 20 + i) + "\n";
  }
  return text + "}\n";
}

// conv + requantize + residual add + relu (group 0), global pool, flatten, linear + requantize
// (group 1), softmax.
inline std::string residualHead() {
  return "module @head {\n"
         "  func @main(%x: tensor<1x8x8x8xf32>) -> (tensor<1x10xf32>) {\n"
         "    %q = quantize(%x) : tensor<1x8x8x8xsi8, scale=0.05>\n"
         "    %w = constant {value = dense_resource<w>} : tensor<8x8x1x1xsi8, scale=" +
         scaleList(8, "0.01") +
         ", axis=0>\n"
         "    %acc = conv2d(%q, %w) {bpu.group = 0, bpu.group_role = \"anchor\"} : tensor<1x8x8x8xsi32, scale=" +
         scaleList(8, "0.0005") +
         ", axis=1> loc(\"block\")\n"
         "    %r = requantize(%acc) {multiplier = [1073741824], shift = [35], bpu.group = 0, bpu.group_role = "
         "\"requant\"} : "
         "tensor<1x8x8x8xsi8, scale=0.05>\n"
         "    %s = add(%r, %q) {bpu.group = 0, bpu.group_role = \"residual_add\"} : tensor<1x8x8x8xsi8, scale=0.05>\n"
         "    %y = relu(%s) {bpu.group = 0, bpu.group_role = \"activation\"} : tensor<1x8x8x8xsi8, scale=0.05>\n"
         "    %g = global_avg_pool2d(%y) : tensor<1x8x1x1xsi8, scale=0.05>\n"
         "    %f = flatten(%g) : tensor<1x8xsi8, scale=0.05>\n"
         "    %lw = constant {value = dense_resource<lw>} : tensor<10x8xsi8, scale=" +
         scaleList(10, "0.01") +
         ", axis=0>\n"
         "    %lb = constant {value = dense_resource<lb>} : tensor<10xsi32, scale=" +
         scaleList(10, "0.0005") +
         ", axis=0>\n"
         "    %l = linear(%f, %lw, %lb) {bpu.group = 1, bpu.group_role = \"anchor\"} : tensor<1x10xsi32, scale=" +
         scaleList(10, "0.0005") +
         ", axis=1> loc(\"fc\")\n"
         "    %lr = requantize(%l) {multiplier = [1073741824], shift = [35], bpu.group = 1, bpu.group_role = "
         "\"requant\"} : "
         "tensor<1x10xsi8, scale=0.1>\n"
         "    %et = constant {value = dense_resource<et>} : tensor<256xsi32>\n"
         "    %sm = softmax(%lr, %et) : tensor<1x10xsi8, scale=0.0078125>\n"
         "    %o = dequantize(%sm) : tensor<1x10xf32>\n"
         "    return %o\n"
         "  }\n"
         "}\n\n"
         "resources {\n"
         "  w = " +
         hexFill(64, 3) +
         "\n"
         "  lw = " +
         hexFill(80, 4) +
         "\n"
         "  lb = " +
         hexFill(40, 5) +
         "\n"
         "  et = " +
         hexFill(1024, 6) +
         "\n"
         "}\n";
}

inline std::string withFloatRelu() {
  return "module @bad {\n"
         "  func @main(%x: tensor<1x4xf32>) -> (tensor<1x4xf32>) {\n"
         "    %q = quantize(%x) : tensor<1x4xsi8, scale=0.05>\n"
         "    %d = dequantize(%q) : tensor<1x4xf32>\n"
         "    %r = relu(%d) : tensor<1x4xf32>\n"
         "    return %r\n"
         "  }\n"
         "}\n";
}

inline std::string withBatchNorm() {
  return "module @bad {\n"
         "  func @main(%x: tensor<1x2x4x4xf32>) -> (tensor<1x2x4x4xf32>) {\n"
         "    %m = constant {value = dense_resource<p>} : tensor<2xf32>\n"
         "    %bn = batch_norm(%x, %m, %m, %m, %m) : tensor<1x2x4x4xf32>\n"
         "    return %bn\n"
         "  }\n"
         "}\n\n"
         "resources {\n"
         "  p = \"0x0000803F0000803F\"\n"
         "}\n";
}

inline std::string withIntSigmoid() {
  return "module @bad {\n"
         "  func @main(%x: tensor<1x4xf32>) -> (tensor<1x4xf32>) {\n"
         "    %q = quantize(%x) : tensor<1x4xsi8, scale=0.05>\n"
         "    %s = sigmoid(%q) : tensor<1x4xsi8, scale=0.0078125>\n"
         "    %o = dequantize(%s) : tensor<1x4xf32>\n"
         "    return %o\n"
         "  }\n"
         "}\n";
}

inline std::string withUnscaledValue() {
  return "module @bad {\n"
         "  func @main(%x: tensor<1x4xf32>) -> (tensor<1x4xsi8>) {\n"
         "    %q = quantize(%x) : tensor<1x4xsi8, scale=0.05>\n"
         "    %r = relu(%q) : tensor<1x4xsi8>\n"
         "    return %r\n"
         "  }\n"
         "}\n";
}

inline std::string withInnerQuantize() {
  return "module @bad {\n"
         "  func @main(%x: tensor<1x4xf32>) -> (tensor<1x4xf32>) {\n"
         "    %q = quantize(%x) : tensor<1x4xsi8, scale=0.05>\n"
         "    %d = dequantize(%q) : tensor<1x4xf32>\n"
         "    %q2 = quantize(%d) : tensor<1x4xsi8, scale=0.1>\n"
         "    %o = dequantize(%q2) : tensor<1x4xf32>\n"
         "    return %o\n"
         "  }\n"
         "}\n";
}

inline std::string withTwoMacsInGroup() {
  std::string w = "tensor<4x4xsi8, scale=" + scaleList(4, "0.01") + ", axis=0>";
  std::string acc = "tensor<1x4xsi32, scale=" + scaleList(4, "0.0005") + ", axis=1>";
  return "module @bad {\n"
         "  func @main(%x: tensor<1x4xf32>) -> (tensor<1x4xf32>) {\n"
         "    %q = quantize(%x) : tensor<1x4xsi8, scale=0.05>\n"
         "    %w = constant {value = dense_resource<w>} : " +
         w +
         "\n"
         "    %a = linear(%q, %w) {bpu.group = 0} : " +
         acc +
         "\n"
         "    %r = requantize(%a) {bpu.group = 0} : tensor<1x4xsi8, scale=0.05>\n"
         "    %a2 = linear(%r, %w) {bpu.group = 0} : " +
         acc +
         "\n"
         "    %r2 = requantize(%a2) {bpu.group = 0} : tensor<1x4xsi8, scale=0.05>\n"
         "    %o = dequantize(%r2) : tensor<1x4xf32>\n"
         "    return %o\n"
         "  }\n"
         "}\n\n"
         "resources {\n"
         "  w = " +
         hexFill(16, 7) +
         "\n"
         "}\n";
}

}  // namespace testgraphs
