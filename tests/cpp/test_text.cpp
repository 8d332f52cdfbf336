// Tests for the .hbir text form and the verifier: byte-exact round trips of tests/ir/roundtrip/,
// each case of tests/ir/malformed/ giving exactly its expected error (file:line:col), binary garbage, float
// formatting, value naming, resource order, and verifier checks on modules built in C++.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "ir/text.h"
#include "ir/verifier.h"
#include "testing.h"
#include "text_cases.h"

using namespace hbdk::ir;
namespace fs = std::filesystem;

namespace {

const fs::path kIrDir = fs::path(HBDK_SOURCE_DIR) / "tests" / "ir";

std::string readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<fs::path> hbirFiles(const fs::path& dir) {
  std::vector<fs::path> out;
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".hbir") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// "" when a == b, else the first differing line of each.
std::string firstDifference(const std::string& a, const std::string& b) {
  if (a == b) return "";
  std::istringstream sa(a), sb(b);
  std::string la, lb;
  for (int line = 1;; ++line) {
    bool ha = static_cast<bool>(std::getline(sa, la)), hb = static_cast<bool>(std::getline(sb, lb));
    if (!ha && !hb) return "texts differ only in their final newline";
    if (la != lb || ha != hb)
      return "line " + std::to_string(line) + ":\n  got:      " + (ha ? la : "<end>") +
             "\n  expected: " + (hb ? lb : "<end>");
  }
}

// Parses `text` expecting exactly one ParseError or VerifyError; returns its message ("" if none).
std::string parseError(const std::string& text, const std::string& file) {
  try {
    parseModule(text, file);
  } catch (const ParseError& e) {
    return e.what();
  } catch (const VerifyError& e) {
    return e.what();
  }
  return "";
}

// "<file>:<line>:<col>: error: " at the start of `msg`.
bool startsWithPosition(const std::string& msg, const std::string& file) {
  if (msg.rfind(file + ":", 0) != 0) return false;
  size_t p = file.size() + 1;
  for (int part = 0; part < 2; ++part) {
    size_t digits = 0;
    while (p < msg.size() && std::isdigit(static_cast<unsigned char>(msg[p]))) ++p, ++digits;
    if (digits == 0 || p >= msg.size() || msg[p] != ':') return false;
    ++p;
  }
  return msg.compare(p, 8, " error: ") == 0;
}

std::string roundTrip(const std::string& text) { return printModule(*parseModule(text)); }

}  // namespace

// ---- round trip ---------------------------------------------------------------------------------

TEST(TextRoundTripFiles) {
  auto files = hbirFiles(kIrDir / "roundtrip");
  CHECK(files.size() >= opTable().size());
  for (const auto& f : files) {
    std::string text = readFile(f);
    try {
      std::string printed = printModule(*parseModule(text, f.filename().string()));
      std::string diff = firstDifference(printed, text);
      if (!diff.empty()) hbdk::testing::recordFailure(__FILE__, __LINE__, f.filename().string() + ": " + diff);
    } catch (const Error& e) {
      hbdk::testing::recordFailure(__FILE__, __LINE__, f.filename().string() + ": " + e.what());
    }
  }
}

TEST(TextRoundTripCoversEveryOp) {
  for (const OpDef& def : opTable()) {
    fs::path p = kIrDir / "roundtrip" / (std::string(def.name) + ".hbir");
    if (!fs::exists(p)) {
      hbdk::testing::recordFailure(__FILE__, __LINE__, "missing round-trip file " + p.string());
      continue;
    }
    auto m = parseModule(readFile(p), p.string());
    bool found = false;
    for (const auto& fn : m->functions)
      for (const auto& op : fn->ops) found = found || op->is(def.name);
    if (!found) hbdk::testing::recordFailure(__FILE__, __LINE__, p.string() + " has no '" + def.name + "' op");
  }
}

TEST(TextRoundTripOfPrintedModuleIsStable) {
  // A module built in C++ prints canonically: printing its parse gives the same text.
  Module m("built");
  Function* fn = m.addFunction("main");
  Value* x = fn->addArgument(TensorType({1, 3, 8, 8}, ElemType::F32), "x");
  Op* w = m.createConstant(fn, "conv.weight", TensorType({4, 3, 3, 3}, ElemType::F32), Blob(4 * 27 * 4, 0));
  w->result()->name = "conv.weight";
  Op* conv = m.createOp(fn, "conv2d", {x, w->result()}, {{"padding", Attribute(std::vector<int64_t>{1, 1, 1, 1})}}, {},
                        Location{"conv", "", 0, 0});
  Op* r = m.createOp(fn, "relu", {conv->result()});
  fn->addReturn(r->result());
  verifyModule(m);
  std::string text = printModule(m);
  CHECK_EQ(roundTrip(text), text);
  CHECK(text.find("%0 = conv2d(%x, %conv.weight) {stride = [1, 1], padding = [1, 1, 1, 1], dilation = [1, 1], "
                  "groups = 1} : tensor<1x4x8x8xf32> loc(\"conv\")\n") != std::string::npos);
}

// ---- malformed input ----------------------------------------------------------------------------

TEST(TextMalformedFiles) {
  auto files = hbirFiles(kIrDir / "malformed");
  size_t count = 0;
  for (const auto& f : files) {
    std::string name = f.filename().string();
    for (const auto& c : hbdk::testing::splitCases(readFile(f))) {
      std::string where = name + ":" + std::to_string(c.firstLine);
      ++count;
      std::vector<std::string> expected = hbdk::testing::expectedErrors(c.text);
      if (expected.size() != 1) {
        hbdk::testing::recordFailure(__FILE__, __LINE__, where + ": a case needs one '// expected-error: ...' line");
        continue;
      }
      std::string msg;
      try {
        msg = parseError(c.text, name);
      } catch (const std::exception& e) {
        hbdk::testing::recordFailure(__FILE__, __LINE__, where + ": wrong exception type: " + e.what());
        continue;
      }
      if (msg.empty()) {
        hbdk::testing::recordFailure(__FILE__, __LINE__, where + ": parsed without error");
        continue;
      }
      if (msg.find('\n') != std::string::npos)
        hbdk::testing::recordFailure(__FILE__, __LINE__, where + ": message spans lines: " + msg);
      if (!startsWithPosition(msg, name))
        hbdk::testing::recordFailure(__FILE__, __LINE__, where + ": message lacks 'file:line:col: error: ': " + msg);
      if (msg != name + ":" + expected[0])
        hbdk::testing::recordFailure(__FILE__, __LINE__, where + ": expected '" + expected[0] + "' but got: " + msg);
    }
  }
  CHECK(count >= 70);
}

TEST(TextEmptyAndBinaryInput) {
  CHECK_THROWS(ParseError, parseModule("", "e.hbir"), "e.hbir:1:1: error: expected 'module' but got end of file");
  CHECK_THROWS(ParseError, parseModule("\n  // nothing\n", "c.hbir"), "c.hbir:3:1: error: expected 'module'");
  CHECK_THROWS(ParseError, parseModule(std::string("module\0@m", 9), "n.hbir"),
               "n.hbir:1:7: error: unexpected NUL byte");
  CHECK_THROWS(ParseError,
               parseModule("\x7F"
                           "ELF\x02\x01",
                           "elf.hbir"),
               "elf.hbir:1:1: error: unexpected control character 0x7F");
  CHECK_THROWS(ParseError, parseModule("module @m {\xFF}", "ff.hbir"),
               "ff.hbir:1:12: error: unexpected byte 0xFF (not UTF-8)");
  CHECK_THROWS(ParseError, parseModule("// \xC0\xAF overlong\n", "o.hbir"), "o.hbir:1:4: error: unexpected byte 0xC0");
  // Columns count characters, not bytes.
  CHECK_THROWS(ParseError, parseModule("// é\nmodule @m { é", "u.hbir"),
               "u.hbir:2:13: error: unexpected non-ASCII character");
  // Random bytes: always exactly one ParseError/VerifyError, never anything else.
  std::mt19937 rng(1234);
  for (int i = 0; i < 2000; ++i) {
    std::string bytes(static_cast<size_t>(rng() % 64), '\0');
    for (char& c : bytes) c = static_cast<char>(rng() & 0xFF);
    if (i % 2) bytes = "module @m {\n  func @f(%a: tensor<2xf32>) -> (tensor<2xf32>) {\n" + bytes;
    std::string msg;
    try {
      msg = parseError(bytes, "garbage.bin");
    } catch (const std::exception& e) {
      msg = std::string("unexpected exception: ") + e.what();
    }
    CHECK(startsWithPosition(msg, "garbage.bin"));
    CHECK(msg.find('\n') == std::string::npos);
  }
}

TEST(TextParserLimits) {
  const std::string head = "module @m {\n  func @f(%a: ";
  const std::string tail = ") -> () {\n    return\n  }\n}\n";
  CHECK_THROWS(ParseError, parseModule(head + "tensor<1099511627777xf32>" + tail), "2:22: error: dimension exceeds");
  CHECK_THROWS(ParseError, parseModule(head + "tensor<99999999999999999999999xf32>" + tail), "dimension exceeds");
  CHECK_THROWS(ParseError, parseModule(head + "tensor<1048576x1048577xf32>" + tail), "has more than 2^40 elements");
  CHECK_THROWS(ParseError, parseModule(head + "tensor<0x1048576x1048577xf32>" + tail), "has more than 2^40 elements");
  CHECK_THROWS(ParseError, parseModule(head + "tensor<-1xf32>" + tail), "2:22: error: dimensions must be non-negative");
  // A long list is linear work; nesting is rejected at the first inner bracket.
  std::string big = "[";
  for (int i = 0; i < 200000; ++i) big += (i ? ", 1" : "1");
  big += "]";
  std::string op = "module @m {\n  func @f(%a: tensor<2xf32>) -> (tensor<2xf32>) {\n    %b = reshape(%a) {shape = ";
  CHECK_THROWS(VerifyError, parseModule(op + big + "} : tensor<2xf32>\n    return %b\n  }\n}\n"),
               "3:5: error: 'reshape' op");
  CHECK_THROWS(ParseError, parseModule(op + std::string(100000, '[')),
               "3:32: error: expected integer or float in list but got '['");
  CHECK_THROWS(ParseError, parseModule(op + "[9223372036854775808]"), "does not fit in 64 bits");
  CHECK_THROWS(ParseError, parseModule(op + "[1e999]"), "float literal '1e999' is out of range");
  CHECK_THROWS(VerifyError, parseModule(op + "[-9223372036854775808, 2]} : tensor<2xf32>\n    return %b\n  }\n}\n"),
               "3:5: error: 'reshape' op");
}

// ---- printing rules -----------------------------------------------------------------------------

TEST(TextFloatFormatting) {
  const std::vector<double> values = {1.0,    0.1, 1e-05, -2.5,      1e+20,        3.4028234663852886e+38,
                                      5e-324, 0.0, -0.0,  1.0 / 3.0, 123456789.125};
  const std::vector<float> scales = {1.0f, 0.1f, 1e-05f, 0.0078125f, 1.0f / 3.0f, 3.4028235e+38f, 1e-45f, 7e-39f};
  Module m("floats");
  Function* fn = m.addFunction("main");
  Value* x = fn->addArgument(TensorType({static_cast<int64_t>(scales.size())}, ElemType::SI8, Quant{scales, 0}), "x");
  Value* cur = fn->addArgument(TensorType({2}, ElemType::F32), "y");
  for (double v : values) cur = m.createOp(fn, "leaky_relu", {cur}, {{"alpha", Attribute(v)}})->result();
  cur = m.createOp(fn, "clip", {cur}, {{"min", Attribute(-INFINITY)}, {"max", Attribute(INFINITY)}})->result();
  fn->setReturns({x, cur});
  std::string text = printModule(m);
  CHECK_EQ(roundTrip(text), text);
  auto back = parseModule(text);
  const Function& f = *back->functions[0];
  CHECK(f.args[0]->type.quant->scales == scales);
  for (size_t i = 0; i < values.size(); ++i) {
    double got = f.ops[i]->getFloat("alpha");
    CHECK(std::memcmp(&got, &values[i], sizeof got) == 0);  // bit-exact, sign of zero included
  }
  for (const char* s : {"alpha = 1.0}", "alpha = 0.1}", "alpha = 1e-05}", "alpha = 1e+20}", "alpha = -0.0}",
                        "{min = -inf, max = inf}", "scale=[1.0, 0.1, 1e-05, 0.0078125, "})
    CHECK(text.find(s) != std::string::npos);
  // Integers are accepted where a float is declared and print back as floats.
  CHECK(roundTrip("module @m {\n  func @f(%a: tensor<2xf32>) -> (tensor<2xf32>) {\n"
                  "    %b = clip(%a) {min = -1, max = 6} : tensor<2xf32>\n    return %b\n  }\n}\n")
            .find("{min = -1.0, max = 6.0}") != std::string::npos);
}

TEST(TextValueNaming) {
  Module m("names");
  Function* fn = m.addFunction("main");
  Value* a = fn->addArgument(TensorType({2}, ElemType::F32));       // unnamed -> %1 (%0 is taken)
  Value* b = fn->addArgument(TensorType({2}, ElemType::F32), "0");  // keeps %0
  Value* r1 = m.createOp(fn, "add", {a, b})->result();              // unnamed -> %2
  Value* r2 = m.createOp(fn, "relu", {r1})->result();
  r2->name = "x";  // keeps %x
  Value* r3 = m.createOp(fn, "relu", {r2})->result();
  r3->name = "x";  // duplicate -> %x_1
  Value* r4 = m.createOp(fn, "relu", {r3})->result();
  r4->name = "conv/out 1";  // invalid chars -> %conv_out_1
  Value* r5 = m.createOp(fn, "relu", {r4})->result();
  r5->name = "x_1";  // explicit, so the duplicate above skips it
  fn->setReturns({r5});
  std::string text = printModule(m);
  CHECK_EQ(text,
           "module @names {\n"
           "  func @main(%1: tensor<2xf32>, %0: tensor<2xf32>) -> (tensor<2xf32>) {\n"
           "    %2 = add(%1, %0) : tensor<2xf32>\n"
           "    %x = relu(%2) : tensor<2xf32>\n"
           "    %x_2 = relu(%x) : tensor<2xf32>\n"
           "    %conv_out_1 = relu(%x_2) : tensor<2xf32>\n"
           "    %x_1 = relu(%conv_out_1) : tensor<2xf32>\n"
           "    return %x_1\n"
           "  }\n"
           "}\n");
  CHECK_EQ(roundTrip(text), text);
  // Names are per function: two functions may both use %x.
  std::string two =
      "module @m {\n  func @a(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n    return %x\n  }\n\n"
      "  func @b(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n    return %x\n  }\n}\n";
  CHECK_EQ(roundTrip(two), two);
  CHECK_THROWS(ParseError,
               parseModule("module @m {\n  func @a(%x: tensor<2xf32>) -> () {\n    return\n  }\n"
                           "  func @b() -> (tensor<2xf32>) {\n    return %x\n  }\n}\n"),
               "6:12: error: use of undefined value '%x'");
}

TEST(TextResourceOrder) {
  Module m("res");
  Function* fn = m.addFunction("main");
  m.setResource("zeta", Blob{1, 2, 3, 4});
  m.createConstant(fn, "alpha", TensorType({2}, ElemType::SI8), Blob{0xAB, 0x0F});
  m.setResource("0.unused", Blob{});
  fn->setReturns({fn->ops[0]->result()});
  std::string text = printModule(m);
  CHECK(text.find("\n}\n\nresources {\n  zeta = \"0x01020304\"\n  alpha = \"0xAB0F\"\n  0.unused = \"0x\"\n}\n") !=
        std::string::npos);
  CHECK_EQ(roundTrip(text), text);
  // Lower-case hex is accepted and printed upper-case.
  std::string lower = text;
  lower.replace(lower.find("0xAB0F"), 6, "0xab0f");
  CHECK_EQ(roundTrip(lower), text);
  // No resources: no section, and the file still ends in one newline.
  Module empty("e");
  CHECK_EQ(printModule(empty), "module @e {\n}\n");
  CHECK_EQ(roundTrip("module @e {\n}\n"), "module @e {\n}\n");
}

TEST(TextPrinterSanitizesNamesAndKeys) {
  Module m("my model");
  Function* fn = m.addFunction("1st");
  m.createConstant(fn, "conv1/weight", TensorType({1}, ElemType::SI8), Blob{7});
  m.setResource("conv1_weight", Blob{});  // collides with the sanitized key above
  fn->setReturns({fn->ops[0]->result()});
  std::string text = printModule(m);
  CHECK(text.find("module @my_model {") != std::string::npos);
  CHECK(text.find("func @_1st()") != std::string::npos);
  CHECK(text.find("dense_resource<conv1_weight_1>") != std::string::npos);
  CHECK(text.find("  conv1_weight_1 = \"0x07\"\n  conv1_weight = \"0x\"\n") != std::string::npos);
  CHECK_EQ(roundTrip(text), text);
}

// ---- verifier -----------------------------------------------------------------------------------

TEST(TextVerifierRejectsInvalidModules) {
  {  // operand from another function
    Module m;
    Function* f1 = m.addFunction("a");
    Value* x = f1->addArgument(TensorType({2}, ElemType::F32), "x");
    Function* f2 = m.addFunction("b");
    m.createOp(f2, "relu", {x});
    CHECK_THROWS(VerifyError, verifyModule(m),
                 "'relu' op: operand #0 ('%x') is not defined before this op in function @b");
  }
  {  // use before definition after a bad reordering
    Module m;
    Function* fn = m.addFunction("main");
    Value* x = fn->addArgument(TensorType({2}, ElemType::F32), "x");
    Op* r1 = m.createOp(fn, "relu", {x});
    m.createOp(fn, "relu", {r1->result()}, {}, {}, {}, r1);
    CHECK_THROWS(VerifyError, verifyModule(m), "is not defined before this op");
  }
  {  // return of a value that is not in the function
    Module m;
    Function* fn = m.addFunction("main");
    Value stray;
    fn->addReturn(&stray);
    CHECK_THROWS(VerifyError, verifyModule(m),
                 "error: function @main: return value #0 (an unnamed value) is not defined");
  }
  {  // constants against resources
    Module m;
    Function* fn = m.addFunction("main");
    Op* c = m.createConstant(fn, "w", TensorType({4}, ElemType::F32), Blob(16));
    fn->setReturns({c->result()});
    verifyModule(m);
    m.setResource("w", Blob(12));
    CHECK_THROWS(VerifyError, verifyModule(m), "resource 'w' has 12 bytes but tensor<4xf32> needs 16");
    m.eraseResource("w");
    CHECK_THROWS(VerifyError, verifyModule(m), "resource 'w' is not in the module's resource section");
  }
  {  // duplicate function names
    Module m;
    m.addFunction("f");
    m.addFunction("f");
    CHECK_THROWS(VerifyError, verifyModule(m), "function @f is defined more than once");
  }
  {  // attributes: missing, out of order, wrong kind, unknown
    Module m;
    Function* fn = m.addFunction("main");
    Value* x = fn->addArgument(TensorType({2}, ElemType::F32), "x");
    Op* op = m.createOp(fn, "leaky_relu", {x});
    op->attrs.clear();
    CHECK_THROWS(VerifyError, verifyModule(m), "expected attribute 'alpha' at position 0 but got the end of the list");
    op->attrs = {{"alpha", Attribute(int64_t{1})}};
    CHECK_THROWS(VerifyError, verifyModule(m), "attribute 'alpha' expects float but got int 1");
    op->attrs = {{"beta", Attribute(1.0)}};
    CHECK_THROWS(VerifyError, verifyModule(m), "unknown attribute 'beta'");
    op->attrs = {{"alpha", Attribute(1.0)}, {"alpha", Attribute(1.0)}};
    CHECK_THROWS(VerifyError, verifyModule(m), "attribute 'alpha' is given more than once");
  }
  {  // operand arity and result types
    Module m;
    Function* fn = m.addFunction("main");
    Value* x = fn->addArgument(TensorType({2}, ElemType::F32), "x");
    Op* op = m.createOp(fn, "add", {x, x});
    op->setOperands({x});
    CHECK_THROWS(VerifyError, verifyModule(m), "'add' op: expected 2 operand(s) but got 1");
    op->addOperand(x);
    op->result()->type = TensorType({3}, ElemType::F32);
    CHECK_THROWS(VerifyError, verifyModule(m),
                 "result #0: expected shape tensor<2xf32> but the declared type is tensor<3xf32>");
  }
  {  // quantization annotations
    auto withArg = [](TensorType t) {
      Module m;
      m.addFunction("main")->addArgument(std::move(t), "x");
      verifyModule(m);
    };
    withArg(TensorType({2, 3}, ElemType::SI8, Quant{{0.5f, 0.25f, 1.0f}, 1}));
    CHECK_THROWS(VerifyError, withArg(TensorType({2}, ElemType::SI8, Quant{{0.0f}, -1})),
                 "quantization scale must be finite and > 0 but got 0.0");
    CHECK_THROWS(VerifyError, withArg(TensorType({2}, ElemType::SI8, Quant{{NAN}, -1})), "finite and > 0 but got nan");
    CHECK_THROWS(VerifyError, withArg(TensorType({2, 3}, ElemType::SI8, Quant{{0.5f, 0.25f}, 1})),
                 "per-axis quantization along axis 1 needs 3 scales but got 2");
    CHECK_THROWS(VerifyError, withArg(TensorType({2, 3}, ElemType::SI8, Quant{{0.5f}, 2})),
                 "quantization axis 2 is out of range for rank 2");
    CHECK_THROWS(VerifyError, withArg(TensorType({2}, ElemType::SI8, Quant{{0.5f, 0.5f}, -1})),
                 "per-tensor quantization needs 1 scale but got 2");
    withArg(TensorType({2}, ElemType::F32, Quant{{0.5f}, -1}));  // a calibration scale
    CHECK_THROWS(VerifyError, withArg(TensorType({2}, ElemType::F32, Quant{{0.5f, 0.5f}, 0})),
                 "per-axis quantization scale on element type f32");
    CHECK_THROWS(VerifyError, withArg(TensorType({2}, ElemType::Bool, Quant{{0.5f}, -1})),
                 "quantization scale on element type bool");
    CHECK_THROWS(VerifyError, withArg(TensorType({2, -1}, ElemType::F32)), "argument #0: negative dimension -1");
  }
}

TEST(TextErrorsPointAtTheOp) {
  std::string text =
      "module @m {\n"
      "  func @main(%x: tensor<1x3x8x8xf32>, %w: tensor<4x3x3x3xf32>) -> (tensor<1x4x8x8xf32>) {\n"
      "    %y = conv2d(%x, %w) : tensor<1x4x8x8xf32> loc(\"conv1\")\n"
      "    return %y\n"
      "  }\n"
      "}\n";
  CHECK_THROWS(VerifyError, parseModule(text, "t.hbir"),
               "t.hbir:3:5: error: 'conv2d' op (loc(\"conv1\")): result #0: expected shape tensor<1x4x6x6xf32>");
  std::string fixed = text;
  fixed.replace(fixed.find("%w)"), 3, "%w) {padding = [1, 1, 1, 1]}");
  CHECK(parseModule(fixed, "t.hbir") != nullptr);
}
