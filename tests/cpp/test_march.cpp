// Tests for the march layer: the strict JSON reader, the march loader's messages, the shipped
// march files, every constraint rule (one passing and one failing op each) and the
// check-constraints pass.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ir/text.h"
#include "march/constraints.h"
#include "march/json.h"
#include "march/march.h"
#include "passes/pass.h"
#include "testing.h"

using namespace hbdk;

namespace {

const char* kTestMarch = R"({
  "name": "test_npu",
  "description": "small limits for rule tests",
  "clock_mhz": 1000,
  "mac_array": {"rows": 4, "cols": 4, "dataflow": "output_stationary", "macs_per_cycle": {"int8": 16, "int16": 4},
                "depthwise_macs_per_cycle": {"int8": 8, "int16": 2}},
  "vector_unit": {"lanes": 4},
  "sram": {"size_kib": 64, "banks": 2, "bytes_per_cycle": 16},
  "ddr": {"bandwidth_gbps": 1.5, "latency_cycles": 10},
  "dma": {"engines": 1, "bytes_per_cycle": 8},
  "tensor": {"max_rank": 4, "max_dim": 1024},
  "ops": {
    "conv2d": {"dtypes": ["si8"], "kernel_max": 3, "strides": [1, 2], "dilation_max": 2, "channels_max": 64,
               "groups": "depthwise_or_1"},
    "conv_transpose2d": {"dtypes": ["si8"], "groups": "1"},
    "linear": {"dtypes": ["si8"], "k_max": 128, "channels_max": 256},
    "matmul": {"dtypes": ["si8"], "k_max": 64},
    "relu": {"dtypes": ["si8"]},
    "reshape": {"dtypes": ["si8", "si16"]},
    "resize2d": {"dtypes": ["si8"], "resize_factors": [2], "modes": ["nearest"]},
    "pad": {"dtypes": ["si8"], "modes": ["constant"]},
    "topk": {"dtypes": ["si8"], "k_max": 8},
    "quantize": {"dtypes": ["si8"]},
    "dequantize": {"dtypes": ["si8"]},
    "max_pool2d": {"dtypes": ["si8"], "kernel_max": 3, "strides": [1, 2]}
  },
  "fuse": {"conv_activation": true, "conv_add": false}
})";

const march::March& testMarch() {
  static const march::March m = march::parseMarch(kTestMarch, "test_npu.json");
  return m;
}

std::string moduleText(const std::string& args, const std::string& rets, const std::string& body) {
  return "module @t {\n  func @main(" + args + ") -> (" + rets + ") {\n" + body + "  }\n}\n";
}

// A module with one op `%y = <op> : <resultType>` returning %y.
std::string oneOp(const std::string& args, const std::string& op, const std::string& resultType) {
  return moduleText(args, resultType, "    %y = " + op + " : " + resultType + "\n    return %y\n");
}

// The rules the module violates on the test march, comma-separated in report order.
std::string rulesHit(const std::string& text, const march::March& m = testMarch()) {
  auto mod = ir::parseModule(text, "case.hbir");
  std::string out;
  for (const auto& v : march::checkModule(*mod, m)) out += (out.empty() ? "" : ",") + v.rule;
  return out;
}

std::string conv(int cin, int cout, int k, int stride, int dil, int groups, int hw = 16) {
  int out = (hw - dil * (k - 1) - 1) / stride + 1;
  std::string args = "%x: tensor<1x" + std::to_string(cin) + "x" + std::to_string(hw) + "x" + std::to_string(hw) +
                     "xsi8>, %w: tensor<" + std::to_string(cout) + "x" + std::to_string(cin / groups) + "x" +
                     std::to_string(k) + "x" + std::to_string(k) + "xsi8>";
  std::string op = "conv2d(%x, %w) {stride = [" + std::to_string(stride) + ", " + std::to_string(stride) +
                   "], padding = [0, 0, 0, 0], dilation = [" + std::to_string(dil) + ", " + std::to_string(dil) +
                   "], groups = " + std::to_string(groups) + "}";
  return oneOp(args, op,
               "tensor<1x" + std::to_string(cout) + "x" + std::to_string(out) + "x" + std::to_string(out) + "xsi32>");
}

std::string shipped(const std::string& name) {
  return std::string(HBDK_SOURCE_DIR) + "/python/hbdk_sim/marches/" + name + ".json";
}

}  // namespace

// ---- JSON reader --------------------------------------------------------------------------------

TEST(json_parses_every_kind) {
  auto v = march::json::parse(R"({"a": [1, -2.5e3, true, false, null], "s": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"})",
                              "t.json");
  CHECK(v.kind == march::json::Kind::Object);
  const auto& a = *v.find("a");
  CHECK_EQ(a.items.size(), size_t{5});
  CHECK(a.items[0].isInteger && a.items[0].integer == 1);
  CHECK(!a.items[1].isInteger && a.items[1].number == -2500.0);
  CHECK(a.items[2].boolean && !a.items[3].boolean);
  CHECK(a.items[4].kind == march::json::Kind::Null);
  CHECK_EQ(v.find("s")->text, std::string("x\"\\/\b\f\n\r\t\xC3\xA9\xF0\x9F\x98\x80"));
  CHECK_EQ(a.items[1].line, 1);
  CHECK_EQ(a.items[1].col, 11);
}

TEST(json_errors_have_line_and_column) {
  using march::json::parse;
  CHECK_THROWS(ir::ParseError, parse("{\n  \"a\": 1,\n  \"b\" 2\n}", "f.json"), "f.json:3:7: error: expected ':'");
  CHECK_THROWS(ir::ParseError, parse("{\"a\": 1,}", "f.json"), "f.json:1:9: error: trailing comma");
  CHECK_THROWS(ir::ParseError, parse("[1, 2,]", "f.json"), "trailing comma before ']'");
  CHECK_THROWS(ir::ParseError, parse("{\"a\": 1, \"a\": 2}", "f.json"), "f.json:1:10: error: duplicate key \"a\"");
  CHECK_THROWS(ir::ParseError, parse("{\"a\": 01}", "f.json"), "leading zeros");
  CHECK_THROWS(ir::ParseError, parse("{\"a\": 1.}", "f.json"), "digit after the decimal point");
  CHECK_THROWS(ir::ParseError, parse("{\"a\": nan}", "f.json"), "no NaN");
  CHECK_THROWS(ir::ParseError, parse("{\"a\": \"x}", "f.json"), "unterminated string");
  CHECK_THROWS(ir::ParseError, parse("{\"a\": \"\\q\"}", "f.json"), "invalid escape");
  CHECK_THROWS(ir::ParseError, parse("{\"a\": \"\\ud800\"}", "f.json"), "low surrogate");
  CHECK_THROWS(ir::ParseError, parse("{\"a\": \"\xC3\"}", "f.json"), "invalid UTF-8");
  CHECK_THROWS(ir::ParseError, parse("{\"a\": \"\xFF\"}", "f.json"), "invalid UTF-8 byte 0xff");
  CHECK_THROWS(ir::ParseError, parse("{\"a\": \"tab\there\"}", "f.json"), "control character 0x09");
  CHECK_THROWS(ir::ParseError, parse("// note\n{}", "f.json"), "comments are not JSON");
  CHECK_THROWS(ir::ParseError, parse("{} {}", "f.json"), "f.json:1:4: error: expected the end of the input");
  CHECK_THROWS(ir::ParseError, parse("", "f.json"), "input is empty");
  CHECK_THROWS(ir::ParseError, parse("{\"a\": tru}", "f.json"), "got 'tru'");
  // Columns count characters, not UTF-8 bytes.
  CHECK_THROWS(ir::ParseError, parse("{\"\xC3\xA9\": x}", "f.json"), "f.json:1:7:");
}

TEST(json_limits) {
  march::json::Limits small;
  small.maxDepth = 3;
  small.maxBytes = 64;
  CHECK_THROWS(ir::ParseError, march::json::parse("[[[[1]]]]", "f.json", small), "nesting deeper than 3 levels");
  march::json::parse("[[1]]", "f.json", small);
  CHECK_THROWS(ir::ParseError, march::json::parse(std::string(100, ' ') + "1", "f.json", small),
               "over the limit of 64");
  // Deep nesting is refused by the default limit instead of overflowing the stack.
  CHECK_THROWS(ir::ParseError, march::json::parse(std::string(100000, '['), "f.json"), "nesting deeper than 64");
}

// ---- march loader -------------------------------------------------------------------------------

TEST(march_shipped_files_load) {
  for (const char* name : {"bpu_nano", "bpu", "bpu_max"}) {
    march::March m = march::loadMarchFile(shipped(name));
    CHECK_EQ(m.name, std::string(name));
    CHECK_EQ(m.macArray.macsPerCycle.at("int16") * 4, m.macArray.macsPerCycle.at("int8"));
    CHECK(m.peakTops("int16") * 4 == m.peakTops("int8"));
    // The depthwise datapath: one 3x3 window per vector lane per cycle, int16 at a quarter.
    CHECK_EQ(m.macArray.depthwiseMacsPerCycle.at("int8"), m.vectorUnit.lanes * 9);
    CHECK_EQ(m.macArray.depthwiseMacsPerCycle.at("int16") * 4, m.macArray.depthwiseMacsPerCycle.at("int8"));
  }
  march::March nano = march::loadMarchFile(shipped("bpu_nano"));
  march::March bpu = march::loadMarchFile(shipped("bpu"));
  march::March max = march::loadMarchFile(shipped("bpu_max"));
  CHECK(nano.peakTops() > 4.5 && nano.peakTops() < 5.5);
  CHECK(bpu.peakTops() > 15 && bpu.peakTops() < 17);
  CHECK(max.peakTops() > 120 && max.peakTops() < 135);
  CHECK_EQ(bpu.macArray.rows, int64_t{64});
  CHECK_EQ(bpu.sram.sizeBytes, int64_t{2} << 20);
  CHECK(bpu.macArray.dataflow == march::Dataflow::OutputStationary);
  CHECK_THROWS(march::MarchError, bpu.peakTops("int4"), "no MAC throughput for 'int4'");
  // Everything the task models are built from runs on the default march.
  for (const char* op : {"constant",   "conv2d",     "conv_transpose2d",
                         "linear",     "matmul",     "relu",
                         "relu6",      "clip",       "lut",
                         "add",        "sub",        "mul",
                         "concat",     "split",      "slice",
                         "reshape",    "transpose",  "flatten",
                         "max_pool2d", "avg_pool2d", "global_avg_pool2d",
                         "resize2d",   "pad",        "quantize",
                         "dequantize", "requantize", "point_pillar_scatter",
                         "gather",     "argmax",     "topk",
                         "softmax"})
    CHECK(bpu.opConstraints(op) != nullptr);
  CHECK(nano.opConstraints("point_pillar_scatter") == nullptr);
}

namespace {

// The test march with one edit: `from` replaced by `to` (which must occur exactly once).
std::string edited(const std::string& from, const std::string& to) {
  std::string s = kTestMarch;
  size_t at = s.find(from);
  if (at == std::string::npos || s.find(from, at + 1) != std::string::npos) throw std::logic_error("bad edit " + from);
  return s.replace(at, from.size(), to);
}

}  // namespace

TEST(march_errors_name_the_json_path) {
  using march::MarchError;
  auto load = [](const std::string& text) { return march::parseMarch(text, "my_npu.json"); };
  CHECK_THROWS(MarchError, load(edited("\"rows\": 4", "\"rows\": -4")),
               "my_npu.json:5:25: error: mac_array.rows: expected a positive integer but got -4");
  CHECK_THROWS(MarchError, load(edited("\"rows\": 4", "\"rows\": 4.5")),
               "mac_array.rows: expected a positive integer but got 4.5");
  CHECK_THROWS(MarchError, load(edited("\"rows\": 4", "\"rows\": \"4\"")),
               "mac_array.rows: expected a positive integer but got \"4\"");
  CHECK_THROWS(MarchError, load(edited("\"rows\": 4, ", "")), "mac_array: missing required field \"rows\"");
  CHECK_THROWS(MarchError, load(edited("\"rows\": 4", "\"rowz\": 4")),
               "mac_array.rowz: unknown key; did you mean \"rows\"?");
  CHECK_THROWS(MarchError, load(edited("\"clock_mhz\": 1000", "\"clock_mhz\": 0")),
               "clock_mhz: expected a positive number but got 0");
  CHECK_THROWS(MarchError, load(edited("\"latency_cycles\": 10", "\"latency_cycles\": -1")),
               "ddr.latency_cycles: expected a non-negative integer but got -1");
  CHECK_THROWS(
      MarchError, load(edited("\"output_stationary\"", "\"row_stationary\"")),
      "mac_array.dataflow: expected one of \"output_stationary\", \"weight_stationary\", \"input_stationary\"");
  CHECK_THROWS(MarchError, load(edited("\"int8\": 16", "\"int8\": 17")),
               "mac_array.macs_per_cycle.int8: expected at most rows*cols = 16 but got 17");
  CHECK_THROWS(MarchError, load(edited("\"int16\": 4", "\"int4\": 4")),
               "mac_array.macs_per_cycle.int4: unknown precision");
  // The depthwise datapath: required, and exactly the array's precisions.
  CHECK_THROWS(MarchError,
               load(edited(",\n                \"depthwise_macs_per_cycle\": {\"int8\": 8, \"int16\": 2}", "")),
               "mac_array: missing required field \"depthwise_macs_per_cycle\"");
  CHECK_THROWS(MarchError, load(edited("\"int8\": 8, \"int16\": 2", "\"int8\": 8")),
               "mac_array.depthwise_macs_per_cycle: missing \"int16\": expected the precisions of "
               "mac_array.macs_per_cycle");
  CHECK_THROWS(MarchError, load(edited("\"int8\": 16, \"int16\": 4", "\"int8\": 16")),
               "mac_array.depthwise_macs_per_cycle.int16: expected only the precisions of mac_array.macs_per_cycle");
  CHECK_THROWS(MarchError, load(edited("\"int8\": 8, \"int16\": 2", "\"int8\": 0, \"int16\": 2")),
               "mac_array.depthwise_macs_per_cycle.int8: expected a positive integer but got 0");
  CHECK_THROWS(MarchError,
               load(edited("\"kernel_max\": 3, \"strides\": [1, 2], \"dilation_max\"",
                           "\"kernal_max\": 3, \"strides\": [1, 2], \"dilation_max\"")),
               "ops.conv2d.kernal_max: unknown key; did you mean \"kernel_max\"?");
  CHECK_THROWS(MarchError, load(edited("\"relu\": {", "\"relux\": {")),
               "ops.relux: unknown op; did you mean \"relu\"?");
  CHECK_THROWS(
      MarchError,
      load(edited("\"relu\": {\"dtypes\": [\"si8\"]}", "\"relu\": {\"dtypes\": [\"si8\"], \"kernel_max\": 3}")),
      "ops.relu.kernel_max: does not apply to relu");
  CHECK_THROWS(MarchError, load(edited("\"modes\": [\"constant\"]", "\"modes\": [\"wrap\"]")),
               "ops.pad.modes[0]: expected one of \"constant\", \"edge\", \"reflect\" but got \"wrap\"");
  CHECK_THROWS(MarchError, load(edited("\"strides\": [1, 2], \"dilation_max\"", "\"strides\": [], \"dilation_max\"")),
               "ops.conv2d.strides: expected a non-empty list but got []");
  CHECK_THROWS(MarchError,
               load(edited("\"strides\": [1, 2], \"dilation_max\"", "\"strides\": [1, 1], \"dilation_max\"")),
               "ops.conv2d.strides[1]: duplicate value 1");
  CHECK_THROWS(MarchError, load(edited("\"dtypes\": [\"si8\"], \"k_max\": 8", "\"dtypes\": [\"int8\"], \"k_max\": 8")),
               "ops.topk.dtypes[0]: expected one of \"si8\"");
  CHECK_THROWS(MarchError, load(edited("\"groups\": \"1\"", "\"groups\": 1")),
               "ops.conv_transpose2d.groups: expected one of \"any\", \"depthwise_or_1\", \"1\" but got 1");
  CHECK_THROWS(MarchError, load(edited("\"name\": \"test_npu\"", "\"name\": \"my npu\"")), "name: expected a name");
  CHECK_THROWS(MarchError, load(edited("\"vector_unit\": {\"lanes\": 4}", "\"vector_unit\": [4]")),
               "vector_unit: expected an object but got an array");
  CHECK_THROWS(MarchError, load("[]"), "expected a JSON object at the top level");
  CHECK_THROWS(ir::ParseError, load(edited("\"lanes\": 4}", "\"lanes\" 4}")),
               "my_npu.json:7:27: error: expected ':' after the key but got '4'");
  CHECK_THROWS(MarchError, march::loadMarchFile("/nonexistent/npu.json"), "cannot open the march file");
}

TEST(march_schema_lists_every_field) {
  auto schema = march::marchSchema();
  auto has = [&](const std::string& p) {
    for (const auto& f : schema)
      if (f.path == p) return true;
    return false;
  };
  for (const char* p : {"name", "clock_mhz", "mac_array.rows", "mac_array.macs_per_cycle",
                        "mac_array.depthwise_macs_per_cycle", "sram.size_kib", "ddr.bandwidth_gbps", "dma.engines",
                        "tensor.max_rank", "ops.<op>.kernel_max", "ops.<op>.groups", "fuse.conv_add"})
    CHECK(has(p));
}

// ---- constraint rules: one passing and one failing case each ------------------------------------

TEST(rule_supported_op) {
  const std::string t = "tensor<1x8xsi8, scale=0.5>";
  CHECK_EQ(rulesHit(oneOp("%x: " + t, "relu(%x)", t)), std::string(""));
  CHECK_EQ(rulesHit(oneOp("%x: " + t + ", %z: " + t, "add(%x, %z)", t)), std::string("supported-op"));
}

TEST(rule_quantized) {
  const std::string q = "tensor<1x8xsi8, scale=0.5>", f = "tensor<1x8xf32>";
  CHECK_EQ(rulesHit(oneOp("%x: " + f, "relu(%x)", f)), std::string("quantized"));
  CHECK_EQ(rulesHit(oneOp("%x: " + f, "quantize(%x)", q)), std::string(""));
  CHECK_EQ(rulesHit(oneOp("%x: " + q, "dequantize(%x)", f)), std::string(""));
  // Float in the middle: the dequantize feeds an op and the quantize reads an intermediate.
  CHECK_EQ(
      rulesHit(moduleText("%x: " + q, q,
                          "    %d = dequantize(%x) : " + f + "\n    %y = quantize(%d) : " + q + "\n    return %y\n")),
      std::string("quantized,quantized"));
}

TEST(rule_dtype) {
  const std::string s8 = "tensor<1x8xsi8, scale=0.5>", s16 = "tensor<1x8xsi16, scale=0.5>";
  CHECK_EQ(rulesHit(oneOp("%x: " + s8, "relu(%x)", s8)), std::string(""));
  CHECK_EQ(rulesHit(oneOp("%x: " + s16, "relu(%x)", s16)), std::string("dtype"));
  auto mod = ir::parseModule(oneOp("%x: " + s16, "relu(%x)", s16));
  auto v = march::checkModule(*mod, testMarch());
  CHECK_EQ(v.at(0).actual, std::string("si16"));
  CHECK_EQ(v.at(0).limit, std::string("one of si8"));
}

TEST(rule_tensor_rank_and_dim) {
  CHECK_EQ(rulesHit(oneOp("%x: tensor<2x3x4x5xsi8>", "reshape(%x) {shape = [6, 4, 5]}", "tensor<6x4x5xsi8>")),
           std::string(""));
  CHECK_EQ(rulesHit(oneOp("%x: tensor<2x3x4x5xsi8>", "reshape(%x) {shape = [2, 3, 2, 2, 5]}", "tensor<2x3x2x2x5xsi8>")),
           std::string("tensor-rank"));
  CHECK_EQ(rulesHit(oneOp("%x: tensor<2x3x4x100xsi8>", "reshape(%x) {shape = [1, 2400]}", "tensor<1x2400xsi8>")),
           std::string("tensor-dim"));
  // A graph input is checked where it is read.
  CHECK_EQ(rulesHit(oneOp("%x: tensor<1x2000xsi8>", "reshape(%x) {shape = [2, 1000]}", "tensor<2x1000xsi8>")),
           std::string("tensor-dim"));
}

TEST(rule_kernel_size) {
  CHECK_EQ(rulesHit(conv(8, 8, 3, 1, 1, 1)), std::string(""));
  CHECK_EQ(rulesHit(conv(8, 8, 5, 1, 1, 1)), std::string("kernel-size"));
  CHECK_EQ(rulesHit(oneOp("%x: tensor<1x8x16x16xsi8>", "max_pool2d(%x) {kernel = [4, 4], stride = [2, 2]}",
                          "tensor<1x8x7x7xsi8>")),
           std::string("kernel-size"));
  auto mod = ir::parseModule(conv(8, 8, 5, 1, 1, 1));
  auto v = march::checkModule(*mod, testMarch());
  CHECK_EQ(v.at(0).str(), std::string("<string>:3:5: 'conv2d' op %y: kernel-size: expected a kernel of at most 3x3 but "
                                      "got a 5x5 kernel; replace the large kernel by a stack of smaller ones (two 3x3 "
                                      "see as far as one 5x5)"));
}

TEST(rule_stride) {
  CHECK_EQ(rulesHit(conv(8, 8, 3, 2, 1, 1)), std::string(""));
  CHECK_EQ(rulesHit(conv(8, 8, 3, 3, 1, 1)), std::string("stride"));
}

TEST(rule_dilation) {
  CHECK_EQ(rulesHit(conv(8, 8, 3, 1, 2, 1)), std::string(""));
  CHECK_EQ(rulesHit(conv(8, 8, 3, 1, 3, 1)), std::string("dilation"));
}

TEST(rule_channels) {
  CHECK_EQ(rulesHit(conv(64, 64, 1, 1, 1, 1, 4)), std::string(""));
  CHECK_EQ(rulesHit(conv(8, 128, 1, 1, 1, 1, 4)), std::string("channels"));
  CHECK_EQ(rulesHit(oneOp("%x: tensor<2x100xsi8>, %w: tensor<300x100xsi8>", "linear(%x, %w)", "tensor<2x300xsi32>")),
           std::string("channels"));
}

TEST(rule_groups) {
  CHECK_EQ(rulesHit(conv(8, 8, 3, 1, 1, 8)), std::string(""));  // depthwise
  CHECK_EQ(rulesHit(conv(8, 8, 3, 1, 1, 2)), std::string("groups"));
  CHECK_EQ(rulesHit(conv(8, 16, 3, 1, 1, 8)), std::string("groups"));  // channel multiplier 2 is not depthwise here
  CHECK_EQ(rulesHit(oneOp("%x: tensor<1x4x4x4xsi8>, %w: tensor<4x1x2x2xsi8>",
                          "conv_transpose2d(%x, %w) {stride = [2, 2], groups = 4}", "tensor<1x4x8x8xsi32>")),
           std::string("groups"));
  CHECK_EQ(rulesHit(oneOp("%x: tensor<1x4x4x4xsi8>, %w: tensor<4x4x2x2xsi8>",
                          "conv_transpose2d(%x, %w) {stride = [2, 2]}", "tensor<1x4x8x8xsi32>")),
           std::string(""));
}

TEST(rule_resize_factor_and_mode) {
  auto resize = [](int in, int out, const std::string& mode) {
    return oneOp(
        "%x: tensor<1x4x" + std::to_string(in) + "x" + std::to_string(in) + "xsi8>",
        "resize2d(%x) {size = [" + std::to_string(out) + ", " + std::to_string(out) + "], mode = \"" + mode + "\"}",
        "tensor<1x4x" + std::to_string(out) + "x" + std::to_string(out) + "xsi8>");
  };
  CHECK_EQ(rulesHit(resize(8, 16, "nearest")), std::string(""));
  CHECK_EQ(rulesHit(resize(8, 4, "nearest")), std::string(""));
  CHECK_EQ(rulesHit(resize(8, 8, "nearest")), std::string(""));
  CHECK_EQ(rulesHit(resize(8, 24, "nearest")), std::string("resize-factor"));
  CHECK_EQ(rulesHit(resize(8, 12, "nearest")), std::string("resize-factor"));
  CHECK_EQ(rulesHit(resize(8, 16, "bilinear")), std::string("resize-mode"));
}

TEST(rule_pad_mode) {
  auto pad = [](const std::string& mode) {
    return oneOp("%x: tensor<1x4x4x4xsi8>", "pad(%x) {pads = [0, 0, 1, 1, 0, 0, 1, 1], mode = \"" + mode + "\"}",
                 "tensor<1x4x6x6xsi8>");
  };
  CHECK_EQ(rulesHit(pad("constant")), std::string(""));
  CHECK_EQ(rulesHit(pad("edge")), std::string("pad-mode"));
}

TEST(rule_topk_k) {
  auto topk = [](int k) {
    std::string ks = std::to_string(k);
    return moduleText("%x: tensor<1x100xsi8>", "tensor<1x" + ks + "xsi8>, tensor<1x" + ks + "xsi32>",
                      "    %v, %i = topk(%x) {k = " + ks + "} : tensor<1x" + ks + "xsi8>, tensor<1x" + ks +
                          "xsi32>\n    return %v, %i\n");
  };
  CHECK_EQ(rulesHit(topk(8)), std::string(""));
  CHECK_EQ(rulesHit(topk(16)), std::string("topk-k"));
}

TEST(rule_reduction_size) {
  CHECK_EQ(rulesHit(oneOp("%x: tensor<2x128xsi8>, %w: tensor<10x128xsi8>", "linear(%x, %w)", "tensor<2x10xsi32>")),
           std::string(""));
  CHECK_EQ(rulesHit(oneOp("%x: tensor<2x200xsi8>, %w: tensor<10x200xsi8>", "linear(%x, %w)", "tensor<2x10xsi32>")),
           std::string("reduction-size"));
  CHECK_EQ(rulesHit(oneOp("%a: tensor<4x64xsi8>, %b: tensor<64x4xsi8>", "matmul(%a, %b)", "tensor<4x4xsi32>")),
           std::string(""));
  CHECK_EQ(rulesHit(oneOp("%a: tensor<4x65xsi8>, %b: tensor<65x4xsi8>", "matmul(%a, %b)", "tensor<4x4xsi32>")),
           std::string("reduction-size"));
}

TEST(check_reports_every_violation) {
  std::string text = moduleText(
      "%x: tensor<1x8x16x16xsi8>, %w: tensor<8x8x5x5xsi8>, %f: tensor<1x8xf32>",
      "tensor<1x8x4x4xsi32>, tensor<1x8xf32>",
      "    %y = conv2d(%x, %w) {stride = [3, 3], padding = [0, 0, 0, 0]} : tensor<1x8x4x4xsi32> loc(\"stem\")\n"
      "    %s = sigmoid(%f) : tensor<1x8xf32>\n"
      "    return %y, %s\n");
  auto mod = ir::parseModule(text, "model.hbir");
  auto v = march::checkModule(*mod, testMarch());
  CHECK_EQ(rulesHit(text), std::string("kernel-size,stride,supported-op,quantized"));
  CHECK_EQ(v.at(0).location, std::string("model.hbir:3:5 loc(\"stem\")"));
  CHECK_EQ(v.at(2).op, std::string("sigmoid"));
  CHECK_EQ(v.at(2).value, std::string("%s"));

  march::March m = testMarch();
  passes::PassContext ctx;
  ctx.march = &m;
  auto pass = passes::createPass("check-constraints");
  try {
    pass->run(*mod, ctx);
    CHECK(false);
  } catch (const march::ConstraintError& e) {
    CHECK_EQ(e.violations().size(), size_t{4});
    std::string what = e.what();
    CHECK_EQ(what.substr(0, what.find('\n')), std::string("4 violations of march 'test_npu'"));
    CHECK_EQ(std::count(what.begin(), what.end(), '\n'), 4);
    CHECK(what.find("model.hbir:4:5: 'sigmoid' op %s: supported-op: expected one of the 12 ops march 'test_npu' runs "
                    "but got 'sigmoid'") != std::string::npos);
  }
}

TEST(check_constraints_pass) {
  auto mod = ir::parseModule(conv(8, 8, 3, 1, 1, 1));
  passes::PassContext none;
  auto pass = passes::createPass("check-constraints");
  CHECK_THROWS(ir::PassError, pass->run(*mod, none), "needs a target march");
  march::March m = testMarch();
  passes::PassContext ctx;
  ctx.march = &m;
  auto stats = pass->run(*mod, ctx);
  CHECK_EQ(stats.at("ops-checked"), int64_t{1});
  // The report's summary is singular for one violation.
  auto bad = ir::parseModule(conv(8, 8, 5, 1, 1, 1));
  CHECK_THROWS(march::ConstraintError, pass->run(*bad, ctx), "1 violation of march 'test_npu'\n");
}

TEST(every_roundtrip_module_runs_through_every_rule) {
  // The rules read shapes and attributes the verifier guarantees: no predicate may throw on any
  // valid module, float or quantized, on any shipped march. Float ops are reported as such.
  for (const char* name : {"bpu_nano", "bpu", "bpu_max"}) {
    march::March m = march::loadMarchFile(shipped(name));
    size_t files = 0;
    for (const auto& entry :
         std::filesystem::directory_iterator(std::string(HBDK_SOURCE_DIR) + "/tests/ir/roundtrip")) {
      std::ifstream in(entry.path());
      std::ostringstream ss;
      ss << in.rdbuf();
      auto mod = ir::parseModule(ss.str(), entry.path().string());
      bool hasFloat = false;
      for (const auto& fn : mod->functions)
        for (const auto& op : fn->ops)
          if (!op->is("quantize") && !op->is("dequantize")) {
            for (const ir::Value* v : op->operands()) hasFloat = hasFloat || ir::isFloat(v->type.elem);
            for (const auto& r : op->results) hasFloat = hasFloat || ir::isFloat(r->type.elem);
          }
      bool reportedFloat = false;
      for (const auto& v : march::checkModule(*mod, m)) reportedFloat = reportedFloat || v.rule == "quantized";
      CHECK_EQ(hasFloat, reportedFloat);
      ++files;
    }
    CHECK(files > 30);
  }
}
