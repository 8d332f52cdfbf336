// Tests of every op's example line in the op table: each parses, verifies and prints back
// canonically inside a function, and no mutation of it (types, shapes, attributes) crashes the
// parser, the verifier or shape inference.
#include <cstdint>
#include <iterator>
#include <limits>
#include <map>
#include <set>
#include <string>

#include "ir/ir.h"
#include "ir/text.h"
#include "op_test_graph.h"
#include "testing.h"

// ---- Examples -----------------------------------------------------------------------------------

namespace {

// Argument declarations that make each op's example a valid function body.
const std::map<std::string, std::string>& exampleArgs() {
  static const std::map<std::string, std::string> args = {
      {"constant", ""},
      {"conv2d", "%x: tensor<1x8x32x32xf32>, %w: tensor<16x8x3x3xf32>, %b: tensor<16xf32>"},
      {"conv_transpose2d", "%x: tensor<1x16x8x8xf32>, %w: tensor<16x8x3x3xf32>, %b: tensor<8xf32>"},
      {"linear", "%x: tensor<1x64xf32>, %w: tensor<10x64xf32>, %b: tensor<10xf32>"},
      {"matmul", "%a: tensor<2x4x16x32xf32>, %b: tensor<2x4x32x16xf32>"},
      {"layer_norm", "%x: tensor<1x16x64xf32>, %gamma: tensor<64xf32>, %beta: tensor<64xf32>"},
      {"batch_norm",
       "%x: tensor<1x16x8x8xf32>, %mean: tensor<16xf32>, %var: tensor<16xf32>, "
       "%gamma: tensor<16xf32>, %beta: tensor<16xf32>"},
      {"softmax", "%x: tensor<1x1000xf32>"},
      {"concat", "%a: tensor<1x8x8x8xf32>, %b: tensor<1x8x8x8xf32>"},
      {"split", "%x: tensor<1x16x4x4xf32>"},
      {"gather", "%x: tensor<100x64xf32>, %idx: tensor<5xsi32>"},
      {"max_pool2d", "%x: tensor<1x8x32x32xf32>"},
      {"avg_pool2d", "%x: tensor<1x8x32x32xf32>"},
      {"global_avg_pool2d", "%x: tensor<1x512x7x7xf32>"},
      {"resize2d", "%x: tensor<1x8x8x8xf32>"},
      {"grid_sample", "%x: tensor<1x32x25x45xf32>, %grid: tensor<1x1x100x2xf32>"},
      {"dequantize", "%q: tensor<1x8x4x4xsi8, scale=0.05>"},
      {"requantize", "%acc: tensor<1x8x4x4xsi32, scale=0.001>"},
      {"lut", "%x: tensor<1x8x4x4xsi8, scale=0.05>, %table: tensor<256xsi8>"},
      {"point_pillar_scatter", "%feat: tensor<12000x64xf32>, %coords: tensor<12000x4xsi32>"},
      {"argmax", "%x: tensor<1x19x64x64xf32>"},
      {"topk", "%x: tensor<1x100xf32>"},
  };
  return args;
}

// Splits "a, b" at top-level ", " (not inside <...>).
std::vector<std::string> splitTopLevel(const std::string& s) {
  std::vector<std::string> out(1);
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    depth += s[i] == '<' ? 1 : s[i] == '>' ? -1 : 0;
    if (depth == 0 && s.compare(i, 2, ", ") == 0) {
      out.emplace_back();
      ++i;
      continue;
    }
    out.back() += s[i];
  }
  return out;
}

std::string join(const std::vector<std::string>& parts) {
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : ", ") + p;
  return s;
}

// The op's example wrapped in a module whose arguments give it valid operands; "" when the
// example is malformed.
std::string exampleModule(const OpDef& d) {
  std::string example = d.example;
  auto it = exampleArgs().find(d.name);
  std::string args = it != exampleArgs().end() ? it->second : "%x: tensor<1x8x4x4xf32>";
  if (d.operands.size() == 2 && it == exampleArgs().end()) args += ", %y: tensor<1x8x4x4xf32>";
  size_t eq = example.find(" = "), colon = example.find(" : ");
  if (eq == std::string::npos || colon == std::string::npos) return "";
  std::vector<std::string> results = splitTopLevel(example.substr(0, eq));
  std::string types = example.substr(colon + 3);
  std::string text = "module @m {\n  func @main(" + args + ") -> (" + types + ") {\n    " + example + "\n    return " +
                     join(results) + "\n  }\n}\n";
  if (d.operands.empty()) text += "\nresources {\n  w = \"0x" + std::string(16 * 8 * 3 * 3 * 4 * 2, '0') + "\"\n}\n";
  return text;
}

}  // namespace

// Every example is canonical IR text that verifies: wrapped in a function, it round-trips.
TEST(ops_examples_parse_verify_and_print_canonically) {
  for (const OpDef& d : opTable()) {
    std::string text = exampleModule(d);
    if (text.empty()) {
      hbdk::testing::recordFailure(__FILE__, __LINE__, std::string(d.name) + ": malformed example");
      continue;
    }
    try {
      std::string printed = printModule(*parseModule(text, std::string(d.name) + ".hbir"));
      if (printed != text) hbdk::testing::recordFailure(__FILE__, __LINE__, "not canonical:\n" + printed);
    } catch (const Error& e) {
      hbdk::testing::recordFailure(__FILE__, __LINE__, std::string(d.name) + ": " + e.what());
    }
  }
}

// ---- Robustness ---------------------------------------------------------------------------------

// Each op's valid example, mutated at random (dims, element types, attribute values, operand
// count, extreme values included): every variant either infers or raises VerifyError, and nothing
// else escapes. Run under -fsanitize=address,undefined to catch overflow and out-of-range reads.
TEST(ops_mutated_examples_never_crash) {
  uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&state](uint64_t n) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return static_cast<size_t>(state % n);
  };
  const int64_t extremes[] = {-5,
                              -1,
                              0,
                              1,
                              2,
                              3,
                              7,
                              int64_t{1} << 31,
                              int64_t{1} << 40,
                              std::numeric_limits<int64_t>::max(),
                              std::numeric_limits<int64_t>::min()};
  const double floats[] = {
      0.0, -1.0, 0.5, 6.0, std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()};
  const char* strings[] = {"nearest",  "bilinear", "half_pixel", "align_corners", "asymmetric",
                           "constant", "edge",     "reflect",    "bogus"};
  const ElemType elems[] = {F32, SI8, ElemType::SI16, SI32, ElemType::UI8, ElemType::Bool};
  auto mutateInt = [&](int64_t v) { return next(2) ? v + static_cast<int64_t>(next(5)) - 2 : extremes[next(11)]; };
  for (const OpDef& d : opTable()) {
    std::unique_ptr<Module> m = parseModule(exampleModule(d));
    const Op& base = *m->functions[0]->ops.back();
    for (int iter = 0; iter < 400; ++iter) {
      Graph g;
      std::vector<Value*> operands;
      for (const Value* v : base.operands()) {
        TensorType t = v->type;
        if (next(4) == 0) {
          if (!t.shape.empty() && next(2)) t.shape[next(t.shape.size())] = mutateInt(t.shape[0]);
          if (next(3) == 0) t.shape.resize(next(6), 2);
          if (next(3) == 0) t.elem = elems[next(std::size(elems))];
          if (next(3) == 0) t.quant = next(2) ? std::optional<Quant>(scale(0.5f)) : std::nullopt;
        }
        operands.push_back(g.arg(t.shape, t.elem, t.quant));
      }
      if (next(10) == 0 && !operands.empty()) operands.pop_back();
      if (next(10) == 0 && !operands.empty()) operands.push_back(operands.front());
      if (static_cast<int>(operands.size()) < d.minOperands() ||
          (d.maxOperands() >= 0 && static_cast<int>(operands.size()) > d.maxOperands()))
        continue;  // arity is Module::createOp's check, not the op's
      AttrList attrs = base.attrs;
      for (auto& [name, a] : attrs) {
        if (next(3) != 0) continue;
        switch (a.kind()) {
          case AttrKind::Bool: a = Attribute(!a.asBool()); break;
          case AttrKind::Int: a = Attribute(mutateInt(a.asInt())); break;
          case AttrKind::Float: a = Attribute(floats[next(std::size(floats))]); break;
          case AttrKind::String: a = Attribute(strings[next(std::size(strings))]); break;
          case AttrKind::IntList: {
            Ints v = a.asInts();
            if (!v.empty() && next(2)) v[next(v.size())] = mutateInt(v[0]);
            if (next(4) == 0) v.resize(next(9), 1);
            a = Attribute(v);
            break;
          }
          case AttrKind::FloatList:
          case AttrKind::Resource: break;
        }
      }
      Op op(&d, operands, attrs, {});
      try {
        std::vector<InferredType> inferred = d.infer(op);
        for (const InferredType& r : inferred)
          op.addResult(TensorType(r.shape.value_or(Shape{4}), r.elem.value_or(elems[next(std::size(elems))]),
                                  next(2) ? std::optional<Quant>(scale(0.25f)) : std::nullopt));
        if (d.verify) d.verify(op);
        if (d.macs) CHECK(d.macs(op) >= 0);
      } catch (const VerifyError&) {
      }
    }
  }
}
