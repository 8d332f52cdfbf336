// Tests for the pass manager, the registry, the passes and the float reference kernels. The text
// cases under tests/ir/<pass>/ are run here too: parse, run the RUN line's passes, compare the
// printout with <case>.expected.hbir byte for byte.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include "exec/float_reference.h"
#include "ir/text.h"
#include "ir/verifier.h"
#include "march/march.h"
#include "passes/pass.h"
#include "testing.h"
#include "text_cases.h"

using namespace hbdk;
using exec::FloatTensor;
using ir::ElemType;
using ir::Shape;
using ir::TensorType;

namespace {

FloatTensor randomTensor(const Shape& shape, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  FloatTensor t(shape);
  for (float& v : t.data) v = dist(rng);
  return t;
}

ir::Value* constant(ir::Module& m, ir::Function* fn, const std::string& key, const FloatTensor& t) {
  return m.createConstant(fn, key, TensorType(t.shape, ElemType::F32), exec::blobFromFloatTensor(t))->result();
}

// One op on constant inputs, evaluated directly through the kernel table.
FloatTensor evalOne(const std::string& opName, const std::vector<FloatTensor>& inputs, ir::AttrList attrs = {}) {
  ir::Module m;
  ir::Function* fn = m.addFunction("main");
  std::vector<ir::Value*> operands;
  for (size_t i = 0; i < inputs.size(); ++i) operands.push_back(constant(m, fn, "in" + std::to_string(i), inputs[i]));
  ir::Op* op = m.createOp(fn, opName, operands, std::move(attrs));
  auto out = exec::evalOpFloat(*op, inputs);
  CHECK(out.has_value());
  return out ? out->front() : FloatTensor();
}

bool allClose(const FloatTensor& a, const FloatTensor& b, double rel) {
  if (a.shape != b.shape) return false;
  for (size_t i = 0; i < a.data.size(); ++i)
    if (std::fabs(a.data[i] - b.data[i]) > rel * std::max(1.0f, std::fabs(a.data[i]))) return false;
  return true;
}

size_t countOps(const ir::Function& fn, const char* name) {
  return static_cast<size_t>(std::count_if(fn.ops.begin(), fn.ops.end(), [&](const auto& op) { return op->is(name); }));
}

}  // namespace

// ---- float reference kernels ------------------------------------------------------------------

TEST(FloatRefConv2dHandComputed) {
  // 1x1x3x3 input 1..9, 2x2 kernel of ones, bias 0.5, stride 1, no padding: sums of 2x2 windows.
  FloatTensor x({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  FloatTensor w({1, 1, 2, 2}, 1.0f), b({1}, 0.5f);
  FloatTensor y = evalOne("conv2d", {x, w, b});
  CHECK(y.shape == (Shape{1, 1, 2, 2}));
  CHECK(y.data == (std::vector<float>{12.5f, 16.5f, 24.5f, 28.5f}));
  // Padding 1 on every side, stride 2: corners see 1, 3, 7, 9 plus their neighbours.
  FloatTensor yp = evalOne("conv2d", {x, w},
                           {{"stride", std::vector<int64_t>{2, 2}}, {"padding", std::vector<int64_t>{1, 1, 1, 1}}});
  CHECK(yp.data == (std::vector<float>{1, 5, 11, 28}));
}

TEST(FloatRefConvTransposeMatchesScatter) {
  // A 1x1x2x2 input through a 2x2 kernel with stride 2 places scaled copies of the kernel.
  FloatTensor x({1, 1, 2, 2}, {1, 2, 3, 4});
  FloatTensor w({1, 1, 2, 2}, {1, 10, 100, 1000});
  FloatTensor y = evalOne("conv_transpose2d", {x, w}, {{"stride", std::vector<int64_t>{2, 2}}});
  CHECK(y.shape == (Shape{1, 1, 4, 4}));
  CHECK(y.data == (std::vector<float>{1, 10, 2, 20, 100, 1000, 200, 2000, 3, 30, 4, 40, 300, 3000, 400, 4000}));
}

TEST(FloatRefElementwiseAndBroadcast) {
  FloatTensor a({2, 3}, {1, 2, 3, 4, 5, 6}), b({3}, {10, 20, 30});
  CHECK(evalOne("add", {a, b}).data == (std::vector<float>{11, 22, 33, 14, 25, 36}));
  CHECK(evalOne("sub", {b, a}).data == (std::vector<float>{9, 18, 27, 6, 15, 24}));
  FloatTensor col({2, 1}, {2, 3});
  CHECK(evalOne("mul", {a, col}).data == (std::vector<float>{2, 4, 6, 12, 15, 18}));
  FloatTensor n({4}, {-2, -0.5, 3, 7});
  CHECK(evalOne("relu", {n}).data == (std::vector<float>{0, 0, 3, 7}));
  CHECK(evalOne("relu6", {n}).data == (std::vector<float>{0, 0, 3, 6}));
  CHECK(evalOne("clip", {n}, {{"min", -1.0}, {"max", 1.0}}).data == (std::vector<float>{-1, -0.5, 1, 1}));
  CHECK(evalOne("leaky_relu", {n}, {{"alpha", 0.5}}).data == (std::vector<float>{-1, -0.25, 3, 7}));
  CHECK(std::fabs(evalOne("sigmoid", {n}).data[2] - 1.0f / (1.0f + std::exp(-3.0f))) < 1e-7f);
}

TEST(FloatRefSoftmaxSumsToOne) {
  FloatTensor x({2, 3}, {1, 2, 3, 1000, 1000, 1000});
  FloatTensor y = evalOne("softmax", {x});
  CHECK(std::fabs(y.data[0] + y.data[1] + y.data[2] - 1.0f) < 1e-6f);
  CHECK(y.data[2] > y.data[1] && y.data[1] > y.data[0]);
  CHECK(std::fabs(y.data[3] - 1.0f / 3.0f) < 1e-6f);  // large inputs stay finite
  FloatTensor y0 = evalOne("softmax", {x}, {{"axis", 0}});
  CHECK(std::fabs(y0.data[0]) < 1e-6f && std::fabs(y0.data[3] - 1.0f) < 1e-6f);
}

TEST(FloatRefDataMovement) {
  FloatTensor x({2, 3}, {0, 1, 2, 3, 4, 5});
  FloatTensor t = evalOne("transpose", {x}, {{"perm", std::vector<int64_t>{1, 0}}});
  CHECK(t.data == (std::vector<float>{0, 3, 1, 4, 2, 5}));
  FloatTensor s = evalOne(
      "slice", {x},
      {{"axes", std::vector<int64_t>{1}}, {"starts", std::vector<int64_t>{-2}}, {"ends", std::vector<int64_t>{100}}});
  CHECK(s.shape == (Shape{2, 2}));
  CHECK(s.data == (std::vector<float>{1, 2, 4, 5}));
  FloatTensor st = evalOne("slice", {x},
                           {{"axes", std::vector<int64_t>{1}},
                            {"starts", std::vector<int64_t>{0}},
                            {"ends", std::vector<int64_t>{3}},
                            {"steps", std::vector<int64_t>{2}}});
  CHECK(st.data == (std::vector<float>{0, 2, 3, 5}));
  CHECK(evalOne("concat", {x, x}, {{"axis", 1}}).data == (std::vector<float>{0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5}));
  FloatTensor r({1, 3}, {1, 2, 3});
  FloatTensor pc = evalOne("pad", {r}, {{"pads", std::vector<int64_t>{0, 1, 0, 2}}, {"value", 9.0}});
  CHECK(pc.data == (std::vector<float>{9, 1, 2, 3, 9, 9}));
  FloatTensor pr = evalOne("pad", {r}, {{"pads", std::vector<int64_t>{0, 2, 0, 2}}, {"mode", "reflect"}});
  CHECK(pr.data == (std::vector<float>{3, 2, 1, 2, 3, 2, 1}));
  FloatTensor pe = evalOne("pad", {r}, {{"pads", std::vector<int64_t>{0, 1, 0, 1}}, {"mode", "edge"}});
  CHECK(pe.data == (std::vector<float>{1, 1, 2, 3, 3}));
}

TEST(FloatRefSplitInvertsConcat) {
  ir::Module m;
  ir::Function* fn = m.addFunction("main");
  FloatTensor x({2, 5}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  ir::Op* op = m.createOp(fn, "split", {constant(m, fn, "x", x)}, {{"axis", 1}, {"sizes", std::vector<int64_t>{2, 3}}});
  auto out = exec::evalOpFloat(*op, {x});
  CHECK(out && out->size() == 2);
  CHECK((*out)[0].data == (std::vector<float>{0, 1, 5, 6}));
  CHECK((*out)[1].data == (std::vector<float>{2, 3, 4, 7, 8, 9}));
}

TEST(FloatRefLinearAndMatmul) {
  FloatTensor x({2, 2}, {1, 2, 3, 4}), w({3, 2}, {1, 0, 0, 1, 1, 1}), b({3}, {0, 0, 10});
  CHECK(evalOne("linear", {x, w, b}).data == (std::vector<float>{1, 2, 13, 3, 4, 17}));
  // Batched lhs [2, 2, 2] against a broadcast rhs [2, 2].
  FloatTensor a({2, 2, 2}, {1, 0, 0, 1, 2, 0, 0, 2}), r({2, 2}, {1, 2, 3, 4});
  FloatTensor y = evalOne("matmul", {a, r});
  CHECK(y.shape == (Shape{2, 2, 2}));
  CHECK(y.data == (std::vector<float>{1, 2, 3, 4, 2, 4, 6, 8}));
}

TEST(FloatRefPooling) {
  FloatTensor x({1, 1, 2, 2}, {1, 2, 3, 4});
  ir::AttrList k3{{"kernel", std::vector<int64_t>{3, 3}},
                  {"stride", std::vector<int64_t>{1, 1}},
                  {"padding", std::vector<int64_t>{1, 1, 1, 1}}};
  CHECK(evalOne("max_pool2d", {x}, k3).data == (std::vector<float>{4, 4, 4, 4}));
  CHECK(evalOne("avg_pool2d", {x}, k3).data == (std::vector<float>{10.0f / 9, 10.0f / 9, 10.0f / 9, 10.0f / 9}));
  ir::AttrList noPad = k3;
  noPad.emplace_back("count_include_pad", false);
  CHECK(evalOne("avg_pool2d", {x}, noPad).data == (std::vector<float>{2.5f, 2.5f, 2.5f, 2.5f}));
  CHECK(evalOne("global_avg_pool2d", {x}).data == (std::vector<float>{2.5f}));
}

TEST(FloatRefNoKernelIsNullopt) {
  ir::Module m;
  ir::Function* fn = m.addFunction("main");
  FloatTensor x({4}, {1, 2, 3, 4});
  ir::Op* op = m.createOp(fn, "argmax", {constant(m, fn, "x", x)}, {{"axis", 0}});
  CHECK(!exec::hasFloatKernel(*op));
  CHECK(!exec::evalOpFloat(*op, {x}).has_value());
}

TEST(ConstantFoldSkipsResultsOver16MiB) {
  ir::Module m;
  ir::Function* fn = m.addFunction("main");
  int64_t n = (int64_t{16} << 20) / 4 + 1;  // one float over the limit
  ir::Value* big = constant(m, fn, "big", FloatTensor({n}, -1.0f));
  ir::Op* relu = m.createOp(fn, "relu", {big});
  ir::Value* small = constant(m, fn, "small", FloatTensor({4}, -1.0f));
  ir::Op* relu2 = m.createOp(fn, "relu", {small});
  fn->setReturns({relu->result(), relu2->result()});
  passes::PassManager pm;
  pm.add("constant-fold");
  pm.run(m);
  CHECK_EQ(pm.timings()[0].stats.at("skipped-too-large"), int64_t{1});
  CHECK_EQ(pm.timings()[0].stats.at("folded"), int64_t{1});
  CHECK_EQ(countOps(*fn, "relu"), size_t{1});
  CHECK(exec::constantValue(m, *fn->returns()[1]->owner).data == std::vector<float>(4, 0.0f));
}

TEST(PassesRefuseNonFiniteConstantsNamingTheElement) {
  // constant-fold would fold the NaN into a new constant, fold-bn into the conv's weights.
  {
    ir::Module m;
    ir::Function* fn = m.addFunction("main");
    FloatTensor t({2, 3}, 1.0f);
    t.data[4] = std::nanf("");
    ir::Op* relu = m.createOp(fn, "relu", {constant(m, fn, "w", t)});
    fn->setReturns({relu->result()});
    passes::PassManager pm;
    pm.add("constant-fold");
    CHECK_THROWS(ir::DataError, pm.run(m),
                 "'constant' op: resource 'w' holds NaN at [1, 1]: float constants must be finite");
  }
  {
    std::mt19937 rng(3);
    ir::Module m;
    ir::Function* fn = m.addFunction("main");
    ir::Value* x = fn->addArgument(TensorType({1, 2, 4, 4}, ElemType::F32), "x");
    ir::Op* conv = m.createOp(fn, "conv2d", {x, constant(m, fn, "conv.weight", randomTensor({3, 2, 1, 1}, rng))});
    FloatTensor var({3}, 1.0f);
    var.data[2] = -std::numeric_limits<float>::infinity();
    ir::Op* bn = m.createOp(
        fn, "batch_norm",
        {conv->result(), constant(m, fn, "bn.mean", FloatTensor({3}, 0.0f)), constant(m, fn, "bn.var", var),
         constant(m, fn, "bn.weight", FloatTensor({3}, 1.0f)), constant(m, fn, "bn.bias", FloatTensor({3}, 0.0f))});
    fn->setReturns({bn->result()});
    passes::PassManager pm;
    pm.add("fold-bn");
    // Not wrapped in "in pass '...'": the error is about the input, not the pass.
    std::string what;
    try {
      pm.run(m);
    } catch (const ir::DataError& e) {
      what = e.what();
    }
    CHECK(what.rfind("error: 'constant' op: resource 'bn.var' holds -Inf at [2]: ", 0) == 0);
  }
}

// ---- fold-bn numerics -------------------------------------------------------------------------

namespace {

// conv-like op + batch_norm on random data; checks the folded module computes the same values.
void checkFoldBnNumerics(const std::string& convName, const Shape& input, const Shape& weight, int64_t channels,
                         bool withBias, ir::AttrList attrs) {
  std::mt19937 rng(42);
  ir::Module m;
  ir::Function* fn = m.addFunction("main");
  ir::Value* x = fn->addArgument(TensorType(input, ElemType::F32), "x");
  std::vector<ir::Value*> operands{x, constant(m, fn, "conv.weight", randomTensor(weight, rng))};
  if (withBias) operands.push_back(constant(m, fn, "conv.bias", randomTensor({channels}, rng)));
  ir::Op* conv = m.createOp(fn, convName, operands, std::move(attrs), {}, ir::Location{"conv", "", 0, 0});
  std::vector<ir::Value*> bnOperands{conv->result(), constant(m, fn, "bn.mean", randomTensor({channels}, rng)),
                                     constant(m, fn, "bn.var", randomTensor({channels}, rng, 0.2f, 2.0f)),
                                     constant(m, fn, "bn.weight", randomTensor({channels}, rng, 0.5f, 2.0f)),
                                     constant(m, fn, "bn.bias", randomTensor({channels}, rng))};
  ir::Op* bn = m.createOp(fn, "batch_norm", bnOperands, {{"eps", 1e-3}});
  fn->setReturns({bn->result()});
  ir::verifyModule(m);

  FloatTensor in = randomTensor(input, rng, -2.0f, 2.0f);
  FloatTensor before = exec::runFunctionFloat(m, *fn, {in}).at(0);
  passes::PassManager pm;
  pm.add("fold-bn");
  pm.run(m);
  CHECK_EQ(countOps(*fn, "batch_norm"), size_t{0});
  CHECK_EQ(fn->ops.back()->numOperands(), size_t{3});  // the conv now has a bias
  CHECK_EQ(m.resources().size(), size_t{2});           // bn params gone, weight + bias left
  CHECK_EQ(pm.timings().at(0).stats.at("folded"), int64_t{1});
  FloatTensor after = exec::runFunctionFloat(m, *fn, {in}).at(0);
  CHECK(allClose(before, after, 1e-5));
}

}  // namespace

TEST(FoldBnNumericConv2d) {
  checkFoldBnNumerics("conv2d", {2, 4, 6, 6}, {6, 2, 3, 3}, 6, false,
                      {{"padding", std::vector<int64_t>{1, 1, 1, 1}}, {"groups", 2}});
  checkFoldBnNumerics("conv2d", {1, 3, 5, 5}, {4, 3, 3, 3}, 4, true, {{"stride", std::vector<int64_t>{2, 2}}});
}

TEST(FoldBnNumericConvTranspose2dGrouped) {
  // Cin 4, Cout 6, groups 2: weight [4, 3, 2, 2]; channel mixing across groups would show here.
  checkFoldBnNumerics("conv_transpose2d", {1, 4, 3, 3}, {4, 3, 2, 2}, 6, true,
                      {{"stride", std::vector<int64_t>{2, 2}}, {"groups", 2}});
  checkFoldBnNumerics("conv_transpose2d", {2, 2, 3, 3}, {2, 5, 3, 3}, 5, false, {});
}

TEST(FoldBnNumericLinear) { checkFoldBnNumerics("linear", {3, 8}, {5, 8}, 5, true, {}); }

// ---- pass manager and registry ----------------------------------------------------------------

namespace {

// A tiny module: %x -> reshape to the same shape -> relu, plus a dead constant.
std::unique_ptr<ir::Module> tinyModule() {
  auto m = std::make_unique<ir::Module>("tiny");
  ir::Function* fn = m->addFunction("main");
  ir::Value* x = fn->addArgument(TensorType({1, 4}, ElemType::F32), "x");
  constant(*m, fn, "unused", FloatTensor({2}, 1.0f));
  ir::Op* r = m->createOp(fn, "reshape", {x}, {{"shape", std::vector<int64_t>{1, 4}}});
  ir::Op* relu = m->createOp(fn, "relu", {r->result()});
  fn->setReturns({relu->result()});
  return m;
}

// Deliberately corrupts the IR: declares a wrong result shape on the first relu.
class BreakTypesPass : public passes::Pass {
 public:
  const char* name() const override { return "break-types"; }
  const char* summary() const override { return "test only: corrupt a result type"; }
  passes::PassStatistics run(ir::Module& m, passes::PassContext&) override {
    for (auto& op : m.functions[0]->ops)
      if (op->is("relu")) op->result()->type.shape = {7};
    return {};
  }
};

}  // namespace

TEST(PassRegistryListsPassesSorted) {
  std::vector<std::string> names;
  for (const auto& p : passes::passRegistry()) {
    names.push_back(p.name);
    CHECK(!p.summary.empty());
    CHECK_EQ(std::string(p.create()->name()), p.name);
  }
  CHECK(names == (std::vector<std::string>{"canonicalize", "check-constraints", "constant-fold", "fold-bn", "fuse",
                                           "lower", "quantize", "serialize"}));
}

TEST(PassUnknownNameSuggestsClosest) {
  CHECK_THROWS(ir::PassError, passes::createPass("fold-bm"), "unknown pass 'fold-bm'; did you mean 'fold-bn'?");
  CHECK_THROWS(ir::PassError, passes::createPass("canonicalise"), "did you mean 'canonicalize'?");
  CHECK_THROWS(ir::PassError, passes::createPass("defualt"), "did you mean 'default'?");
  // Far from everything: no guess, but the lists of known names.
  CHECK_THROWS(ir::PassError, passes::createPass("quantize-everything"), "(passes: ");
  passes::PassManager pm;
  CHECK_THROWS(ir::PassError, pm.add("constant_fold"), "did you mean 'constant-fold'?");
}

TEST(PassPipelineExpands) {
  passes::PassManager pm;
  pm.add("default");
  CHECK(pm.passNames() == (std::vector<std::string>{"canonicalize", "fold-bn", "constant-fold", "canonicalize"}));
  CHECK(passes::expandPipeline({"fold-bn", "default"}).size() == 5);
  for (const auto& p : passes::pipelineRegistry())
    for (const auto& name : p.passes) CHECK(passes::createPass(name) != nullptr);
}

TEST(PassManagerVerifyEachNamesThePass) {
  auto m = tinyModule();
  passes::PassManager pm;
  pm.add("canonicalize");
  pm.add(std::make_unique<BreakTypesPass>());
  CHECK_THROWS(ir::VerifyError, pm.run(*m), "after pass 'break-types': ");
  // Without verification the broken module goes through unnoticed.
  auto m2 = tinyModule();
  passes::PassManagerOptions opts;
  opts.verifyEach = false;
  passes::PassManager lax(opts);
  lax.add(std::make_unique<BreakTypesPass>());
  lax.run(*m2);
  CHECK_EQ(lax.timings().size(), size_t{1});
}

TEST(PassManagerPrintIrAfter) {
  auto m = tinyModule();
  std::ostringstream dump;
  passes::PassManagerOptions opts;
  opts.printIrAfter = {"canonicalize"};
  opts.irStream = &dump;
  passes::PassManager pm(opts);
  pm.add("constant-fold");
  pm.add("canonicalize");
  pm.run(*m);
  std::string text = dump.str();
  CHECK_EQ(text, "// -----// IR Dump After canonicalize //----- //\n" + ir::printModule(*m));
  CHECK(text.find("reshape") == std::string::npos);

  auto m2 = tinyModule();
  std::ostringstream all;
  passes::PassManagerOptions allOpts;
  allOpts.printIrAfterAll = true;
  allOpts.irStream = &all;
  passes::PassManager pmAll(allOpts);
  pmAll.add("default");
  pmAll.run(*m2);
  size_t dumps = 0;
  for (size_t at = all.str().find("// -----// IR Dump After "); at != std::string::npos;
       at = all.str().find("// -----// IR Dump After ", at + 1))
    ++dumps;
  CHECK_EQ(dumps, size_t{4});

  passes::PassManagerOptions typo;
  typo.printIrAfter = {"canonicalise"};
  passes::PassManager pmTypo(typo);
  pmTypo.add("canonicalize");
  CHECK_THROWS(ir::PassError, pmTypo.run(*m), "names pass 'canonicalise', which is not in this pipeline");
}

TEST(PassManagerTimingReport) {
  auto m = tinyModule();
  passes::PassManager pm;
  pm.add("default");
  pm.run(*m);
  CHECK_EQ(pm.timings().size(), size_t{4});
  CHECK_EQ(pm.timings()[0].stats.at("forwarded-identities"), int64_t{1});
  CHECK_EQ(pm.timings()[0].stats.at("erased-dead-ops"), int64_t{2});
  CHECK_EQ(pm.timings()[0].stats.at("dropped-resources"), int64_t{1});
  std::string report = pm.timingReport();
  std::istringstream lines(report);
  std::vector<std::string> rows;
  for (std::string line; std::getline(lines, line);) rows.push_back(line);
  // title, header, four passes, verifier, total
  CHECK_EQ(rows.size(), size_t{8});
  CHECK(rows[1].find("Pass") != std::string::npos && rows[1].find("Wall ms") != std::string::npos);
  CHECK(rows[2].find("canonicalize") == 2);
  // Statistics in name order; counters that stayed zero (merged-constants) are left out.
  CHECK(rows[2].size() > 40 &&
        rows[2].substr(rows[2].find("%") + 1) == "  dropped-resources=1 erased-dead-ops=2 forwarded-identities=1");
  CHECK(rows[3].find("fold-bn") == 2);
  CHECK(rows[6].find("(verifier)") == 2);
  CHECK(rows[7].find("Total") == 2 && rows[7].find("100.0%") != std::string::npos);
  // Columns line up: every row puts its '%' at the same position.
  for (size_t i = 2; i < rows.size(); ++i) CHECK_EQ(rows[i].find('%'), rows[7].find('%'));
}

// ---- text cases: tests/ir/<pass>/<case>.hbir ---------------------------------------------------

namespace {

std::string readFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// "// RUN: --passes a,b [--march NAME] [--split-input-file]" -> {"a", "b"}, NAME (a shipped
// march, or "") and whether the file holds several cases; empty when the line is missing.
std::vector<std::string> runLinePasses(const std::string& text, std::string* marchName, bool* split) {
  const std::string prefix = "// RUN: --passes ";
  if (text.compare(0, prefix.size(), prefix) != 0) return {};
  std::string list = text.substr(prefix.size(), text.find('\n') - prefix.size());
  const std::string splitFlag = " --split-input-file";
  *split = false;
  if (size_t at = list.find(splitFlag); at != std::string::npos) {
    *split = true;
    list.erase(at, splitFlag.size());
  }
  const std::string marchFlag = " --march ";
  if (size_t at = list.find(marchFlag); at != std::string::npos) {
    if (marchName) *marchName = list.substr(at + marchFlag.size());
    list.erase(at);
  }
  std::vector<std::string> names;
  std::istringstream in(list);
  for (std::string name; std::getline(in, name, ',');) names.push_back(name);
  return names;
}

}  // namespace

TEST(PassTextCases) {
  namespace fs = std::filesystem;
  fs::path root = fs::path(HBDK_SOURCE_DIR) / "tests" / "ir";
  // Only folders named after a pass or a pipeline hold pass cases (roundtrip/ etc. belong to others).
  std::vector<std::string> dirs;
  for (const auto& p : passes::passRegistry()) dirs.push_back(p.name);
  for (const auto& p : passes::pipelineRegistry()) dirs.push_back(p.name);
  std::vector<fs::path> cases;
  for (const std::string& dir : dirs) {
    if (!fs::is_directory(root / dir)) continue;
    for (const auto& f : fs::directory_iterator(root / dir)) {
      std::string file = f.path().filename().string();
      if (f.path().extension() == ".hbir" && file.find(".expected.") == std::string::npos) cases.push_back(f.path());
    }
  }
  std::sort(cases.begin(), cases.end());
  size_t total = 0;
  for (const fs::path& c : cases) {
    std::string text = readFile(c);
    std::string marchName;
    bool split = false;
    std::vector<std::string> names = runLinePasses(text, &marchName, &split);
    if (names.empty()) {
      hbdk::testing::recordFailure(c.string().c_str(), 1, "missing '// RUN: --passes ...' first line");
      continue;
    }
    fs::path expectedPath = c;
    expectedPath.replace_extension(".expected.hbir");
    try {
      march::March target;
      passes::PassContext ctx;
      if (!marchName.empty()) {
        target = march::loadMarchFile(
            (fs::path(HBDK_SOURCE_DIR) / "python" / "hbdk_sim" / "marches" / (marchName + ".json")).string());
        ctx.march = &target;
      }
      std::vector<hbdk::testing::TextCase> parts =
          split ? hbdk::testing::splitCases(text) : std::vector<hbdk::testing::TextCase>{{1, text}};
      std::string got;
      total += parts.size();
      for (size_t i = 0; i < parts.size(); ++i) {
        // Each case keeps the file's line numbers, as the CLI parses it.
        auto m = ir::parseModule(std::string(parts[i].firstLine - 1, '\n') + parts[i].text, c.string());
        passes::PassManager pm;
        for (const auto& n : names) pm.add(n);
        pm.run(*m, ctx);
        got += (i ? "// -----\n" : "") + ir::printModule(*m);
      }
      std::string want = readFile(expectedPath);
      if (got != want)
        hbdk::testing::recordFailure(c.string().c_str(), 0,
                                     "output differs from " + expectedPath.filename().string() + "\n--- got:\n" + got +
                                         "--- expected:\n" + want);
    } catch (const std::exception& e) {
      hbdk::testing::recordFailure(c.string().c_str(), 0, e.what());
    }
  }
  CHECK(total >= 25);
}
