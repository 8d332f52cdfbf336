// Tests for the executor and the optimized integer kernels: optimized == reference bit for bit
// (and == a plain int64 loop written here) for conv2d, depthwise conv, linear and matmul on random
// si8 data with the extremes, for several thread counts; float functions == runFunctionFloat;
// argument checking.
#include <algorithm>
#include <cstring>
#include <limits>
#include <random>

#include "exec/executor.h"
#include "exec/float_reference.h"
#include "exec/int_optimized.h"
#include "testing.h"

using namespace hbdk;
using exec::ExecOptions;
using exec::Executor;
using exec::Tensor;
using ir::ElemType;
using ir::Shape;
using ir::TensorType;

namespace {

// si8 values over the whole range, a fifth of them pinned to -128 or 127.
Tensor randomSi8(const Shape& shape, std::mt19937& rng) {
  Tensor t(TensorType(shape, ElemType::SI8));
  std::uniform_int_distribution<int> value(-128, 127), pick(0, 9);
  int8_t* p = t.data<int8_t>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    int k = pick(rng);
    p[i] = static_cast<int8_t>(k == 0 ? -128 : k == 1 ? 127 : value(rng));
  }
  return t;
}

Tensor randomSi32(const Shape& shape, std::mt19937& rng, int32_t lo, int32_t hi) {
  Tensor t(TensorType(shape, ElemType::SI32));
  std::uniform_int_distribution<int32_t> value(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int32_t>()[i] = value(rng);
  return t;
}

Tensor filled(const Shape& shape, ElemType e, int64_t v) {
  Tensor t(TensorType(shape, e));
  for (int64_t i = 0; i < t.numel(); ++i) t.setInt(static_cast<size_t>(i), v);
  return t;
}

TensorType withScale(Shape shape, ElemType e, float scale) {
  return TensorType(std::move(shape), e, ir::Quant{{scale}, -1});
}

ir::Value* constant(ir::Module& m, ir::Function* fn, const std::string& key, const Tensor& t, float scale) {
  return m.createConstant(fn, key, withScale(t.type.shape, t.type.elem, scale), t.bytes)->result();
}

std::vector<Tensor> runWith(const ir::Module& m, const std::vector<Tensor>& args, bool optimized, int threads) {
  return Executor(m, "main", ExecOptions{optimized, threads}).run(args);
}

bool sameBytes(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].type.shape != b[i].type.shape || a[i].type.elem != b[i].type.elem || a[i].bytes != b[i].bytes)
      return false;
  return true;
}

// The module's integer ops must take the optimized path, and agree with the reference for 1, 2
// and 3 threads; `oracle` (when given) is checked too.
void checkOptimizedMatchesReference(const ir::Module& m, const std::vector<Tensor>& args,
                                    const Tensor* oracle = nullptr) {
  std::vector<Tensor> reference = runWith(m, args, false, 1);
  if (oracle) CHECK(reference.front().bytes == oracle->bytes);
  for (int threads : {1, 2, 3}) {
    std::vector<Tensor> optimized = runWith(m, args, true, threads);
    CHECK(sameBytes(optimized, reference));
    if (oracle) CHECK(optimized.front().bytes == oracle->bytes);
  }
}

int32_t saturate32(int64_t v) {
  return static_cast<int32_t>(
      std::clamp<int64_t>(v, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
}

struct ConvCase {
  int64_t n, cin, h, w, cout, kh, kw, sh, sw;
  std::vector<int64_t> pad;  // top, left, bottom, right
  int64_t dh, dw, groups;
  bool bias;
  int32_t biasLo = -100000, biasHi = 100000;
};

int64_t convOut(int64_t in, int64_t padA, int64_t padB, int64_t k, int64_t d, int64_t s) {
  return (in + padA + padB - d * (k - 1) - 1) / s + 1;
}

// docs/numerics.md for conv2d, as plainly as it can be said.
Tensor convOracle(const ConvCase& c, const Tensor& x, const Tensor& w, const Tensor* b, const Shape& outShape) {
  Tensor y(TensorType(outShape, ElemType::SI32));
  int64_t oh = outShape[2], ow = outShape[3], cinG = c.cin / c.groups, coutG = c.cout / c.groups;
  for (int64_t n = 0; n < c.n; ++n)
    for (int64_t co = 0; co < c.cout; ++co)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          int64_t acc = b ? b->data<int32_t>()[co] : 0;
          for (int64_t ci = 0; ci < cinG; ++ci)
            for (int64_t ky = 0; ky < c.kh; ++ky)
              for (int64_t kx = 0; kx < c.kw; ++kx) {
                int64_t iy = oy * c.sh - c.pad[0] + ky * c.dh, ix = ox * c.sw - c.pad[1] + kx * c.dw;
                if (iy < 0 || iy >= c.h || ix < 0 || ix >= c.w) continue;
                int64_t xc = (co / coutG) * cinG + ci;
                acc += int64_t{x.data<int8_t>()[((n * c.cin + xc) * c.h + iy) * c.w + ix]} *
                       w.data<int8_t>()[((co * cinG + ci) * c.kh + ky) * c.kw + kx];
              }
          y.data<int32_t>()[((n * c.cout + co) * oh + oy) * ow + ox] = saturate32(acc);
        }
  return y;
}

void checkConv(const ConvCase& c, uint32_t seed, bool weightIsArgument = false) {
  std::mt19937 rng(seed);
  Shape outShape{c.n, c.cout, convOut(c.h, c.pad[0], c.pad[2], c.kh, c.dh, c.sh),
                 convOut(c.w, c.pad[1], c.pad[3], c.kw, c.dw, c.sw)};
  Tensor x = randomSi8({c.n, c.cin, c.h, c.w}, rng);
  Tensor w = randomSi8({c.cout, c.cin / c.groups, c.kh, c.kw}, rng);
  Tensor b = randomSi32({c.cout}, rng, c.biasLo, c.biasHi);

  ir::Module m;
  ir::Function* fn = m.addFunction("main");
  std::vector<ir::Value*> operands{fn->addArgument(withScale(x.type.shape, ElemType::SI8, 0.5f), "x")};
  std::vector<Tensor> args{x};
  if (weightIsArgument) {
    operands.push_back(fn->addArgument(withScale(w.type.shape, ElemType::SI8, 0.25f), "w"));
    args.push_back(w);
  } else {
    operands.push_back(constant(m, fn, "w", w, 0.25f));
  }
  if (c.bias) operands.push_back(constant(m, fn, "b", b, 0.125f));
  ir::AttrList attrs{{"stride", ir::Attribute(std::vector<int64_t>{c.sh, c.sw})},
                     {"padding", ir::Attribute(c.pad)},
                     {"dilation", ir::Attribute(std::vector<int64_t>{c.dh, c.dw})},
                     {"groups", ir::Attribute(c.groups)}};
  ir::Op* conv = m.createOp(fn, "conv2d", operands, attrs, {withScale(outShape, ElemType::SI32, 0.125f)});
  fn->setReturns({conv->result()});

  std::vector<const Tensor*> constants(operands.size(), nullptr);
  if (!weightIsArgument) constants[1] = &w;
  CHECK(exec::makeOptimizedKernel(*conv, constants) != nullptr);
  Tensor oracle = convOracle(c, x, w, c.bias ? &b : nullptr, outShape);
  checkOptimizedMatchesReference(m, args, &oracle);
}

}  // namespace

TEST(executor_conv_optimized_matches_reference) {
  std::vector<ConvCase> cases{
      {1, 3, 11, 13, 8, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1, true},     // first layer, 3 channels
      {2, 16, 9, 7, 17, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1, true},     // 1x1 read in place, odd cout
      {1, 5, 9, 9, 7, 1, 1, 2, 2, {0, 0, 0, 0}, 1, 1, 1, false},      // 1x1 stride 2
      {1, 7, 15, 16, 9, 7, 7, 2, 2, {3, 3, 3, 3}, 1, 1, 1, true},     // 7x7 stem
      {1, 6, 12, 12, 6, 3, 3, 1, 1, {2, 2, 2, 2}, 2, 2, 1, true},     // dilation 2
      {1, 12, 10, 10, 9, 3, 3, 2, 1, {1, 0, 2, 1}, 1, 1, 3, true},    // groups 3, asymmetric padding
      {1, 9, 6, 20, 5, 2, 4, 3, 1, {0, 2, 1, 1}, 1, 3, 1, false},     // odd kernel, dilation_w 3
      {1, 64, 8, 8, 33, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1, true},     // long K, tail rows
      {1, 32, 3, 3, 70, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1, true},     // few pixels: split cout
      {1, 13, 14, 14, 13, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 13, true},  // depthwise
      {2, 8, 15, 16, 8, 3, 3, 2, 2, {1, 1, 1, 1}, 1, 1, 8, true},     // depthwise stride 2
      {1, 4, 10, 9, 8, 5, 3, 1, 2, {2, 1, 2, 1}, 2, 1, 4, true},      // depthwise multiplier 2, dilation
      {1, 5, 7, 7, 5, 7, 7, 3, 3, {3, 3, 3, 3}, 1, 1, 5, false},      // depthwise 7x7 stride 3
  };
  uint32_t seed = 1;
  for (const ConvCase& c : cases) checkConv(c, seed++);
}

TEST(executor_conv_weight_argument_packs_per_run) {
  checkConv({1, 6, 9, 9, 10, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1, true}, 40, true);
  checkConv({1, 6, 9, 9, 6, 3, 3, 2, 2, {1, 1, 1, 1}, 1, 1, 6, true}, 41, true);
}

TEST(executor_conv_bias_saturates_in_int64) {
  ConvCase c{1, 16, 5, 5, 4, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1, true};
  c.biasLo = std::numeric_limits<int32_t>::max() - 1000;
  c.biasHi = std::numeric_limits<int32_t>::max();
  checkConv(c, 50);
  c.biasLo = std::numeric_limits<int32_t>::min();
  c.biasHi = std::numeric_limits<int32_t>::min() + 1000;
  checkConv(c, 51);
  c.groups = 16;
  c.cout = 16;
  checkConv(c, 52);
}

namespace {

void checkLinear(int64_t rows, int64_t k, int64_t n, bool bias, uint32_t seed) {
  std::mt19937 rng(seed);
  Tensor x = randomSi8({rows, k}, rng);
  Tensor w = randomSi8({n, k}, rng);
  Tensor b = randomSi32({n}, rng, -1000000, 1000000);
  ir::Module m;
  ir::Function* fn = m.addFunction("main");
  std::vector<ir::Value*> operands{fn->addArgument(withScale({rows, k}, ElemType::SI8, 0.5f), "x"),
                                   constant(m, fn, "w", w, 0.25f)};
  if (bias) operands.push_back(constant(m, fn, "b", b, 0.125f));
  ir::Op* op = m.createOp(fn, "linear", operands, {}, {withScale({rows, n}, ElemType::SI32, 0.125f)});
  fn->setReturns({op->result()});
  Tensor oracle(TensorType({rows, n}, ElemType::SI32));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) {
      int64_t acc = bias ? b.data<int32_t>()[j] : 0;
      for (int64_t i = 0; i < k; ++i) acc += int64_t{x.data<int8_t>()[r * k + i]} * w.data<int8_t>()[j * k + i];
      oracle.data<int32_t>()[r * n + j] = saturate32(acc);
    }
  checkOptimizedMatchesReference(m, {x}, &oracle);
}

}  // namespace

TEST(executor_linear_optimized_matches_reference) {
  checkLinear(6, 37, 19, true, 60);
  checkLinear(1, 1, 1, false, 61);
  checkLinear(1, 200, 130, true, 62);
  checkLinear(67, 64, 5, true, 63);
}

TEST(executor_matmul_optimized_matches_reference) {
  struct Case {
    Shape lhs, rhs;
    bool rhsConstant;
  };
  std::vector<Case> cases{{{2, 1, 5, 7}, {3, 7, 6}, true},
                          {{2, 1, 5, 7}, {3, 7, 6}, false},
                          {{4, 9}, {9, 3}, false},
                          {{3, 2, 9}, {1, 9, 11}, true},
                          {{1, 17}, {2, 2, 17, 1}, false}};
  uint32_t seed = 70;
  for (const Case& c : cases) {
    std::mt19937 rng(seed++);
    Tensor a = randomSi8(c.lhs, rng), b = randomSi8(c.rhs, rng);
    ir::Module m;
    ir::Function* fn = m.addFunction("main");
    ir::Value* lhs = fn->addArgument(withScale(c.lhs, ElemType::SI8, 0.5f), "a");
    ir::Value* rhs =
        c.rhsConstant ? constant(m, fn, "b", b, 0.5f) : fn->addArgument(withScale(c.rhs, ElemType::SI8, 0.5f), "b");
    // numpy's result shape: broadcast batch dims, then [M, N].
    Shape lb(c.lhs.begin(), c.lhs.end() - 2), rb(c.rhs.begin(), c.rhs.end() - 2), out;
    while (lb.size() < rb.size()) lb.insert(lb.begin(), 1);
    while (rb.size() < lb.size()) rb.insert(rb.begin(), 1);
    for (size_t i = 0; i < lb.size(); ++i) out.push_back(std::max(lb[i], rb[i]));
    out.push_back(c.lhs[c.lhs.size() - 2]);
    out.push_back(c.rhs.back());
    ir::Op* op = m.createOp(fn, "matmul", {lhs, rhs}, {}, {withScale(out, ElemType::SI32, 0.25f)});
    fn->setReturns({op->result()});
    std::vector<Tensor> args{a};
    if (!c.rhsConstant) args.push_back(b);
    CHECK(exec::makeOptimizedKernel(*op, {nullptr, c.rhsConstant ? &b : nullptr}) != nullptr);
    checkOptimizedMatchesReference(m, args);
  }
}

TEST(executor_int32_accumulation_guard) {
  // K = 2^17 - 1 is the longest reduction that int32 holds exactly: all -128 * -128 sums to
  // 2147467264, and a bias on top saturates (in int64) instead of wrapping.
  const int64_t k = exec::kMaxExactInt8Reduction;
  ir::Module m;
  ir::Function* fn = m.addFunction("main");
  Tensor w = filled({2, k}, ElemType::SI8, -128);
  Tensor b(TensorType({2}, ElemType::SI32));
  b.data<int32_t>()[0] = 0;
  b.data<int32_t>()[1] = 100000;
  ir::Value* x = fn->addArgument(withScale({1, k}, ElemType::SI8, 0.5f), "x");
  ir::Op* op = m.createOp(fn, "linear", {x, constant(m, fn, "w", w, 0.5f), constant(m, fn, "b", b, 0.25f)}, {},
                          {withScale({1, 2}, ElemType::SI32, 0.25f)});
  fn->setReturns({op->result()});
  CHECK(exec::makeOptimizedKernel(*op, {nullptr, &w, &b}) != nullptr);
  std::vector<Tensor> out = runWith(m, {filled({1, k}, ElemType::SI8, -128)}, true, 2);
  CHECK_EQ(out[0].data<int32_t>()[0], 2147467264);
  CHECK_EQ(out[0].data<int32_t>()[1], std::numeric_limits<int32_t>::max());

  // One more element and the optimized kernel declines; the reference runs instead.
  ir::Module big;
  ir::Function* bfn = big.addFunction("main");
  Tensor wb = filled({1, k + 1}, ElemType::SI8, 1);
  ir::Value* xb = bfn->addArgument(withScale({1, k + 1}, ElemType::SI8, 0.5f), "x");
  ir::Op* opb = big.createOp(bfn, "linear", {xb, constant(big, bfn, "w", wb, 0.5f)}, {},
                             {withScale({1, 1}, ElemType::SI32, 0.25f)});
  bfn->setReturns({opb->result()});
  CHECK(exec::makeOptimizedKernel(*opb, {nullptr, &wb}) == nullptr);
  std::vector<Tensor> outb = runWith(big, {filled({1, k + 1}, ElemType::SI8, 1)}, true, 2);
  CHECK_EQ(outb[0].data<int32_t>()[0], static_cast<int32_t>(k + 1));
}

namespace {

Tensor floatTensor(const Shape& shape, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  exec::FloatTensor t(shape);
  for (float& v : t.data) v = dist(rng);
  return Tensor(TensorType(shape, ElemType::F32), exec::blobFromFloatTensor(t));
}

// x -> conv2d -> relu -> add(x') -> global_avg_pool2d, returning the pool and the relu twice.
std::unique_ptr<ir::Module> floatModule(std::mt19937& rng) {
  auto m = std::make_unique<ir::Module>();
  ir::Function* fn = m->addFunction("main");
  ir::Value* x = fn->addArgument(TensorType({1, 3, 8, 8}, ElemType::F32), "x");
  Tensor w = floatTensor({4, 3, 3, 3}, rng), b = floatTensor({4}, rng);
  ir::Value* wv = m->createConstant(fn, "w", w.type, w.bytes)->result();
  ir::Value* bv = m->createConstant(fn, "b", b.type, b.bytes)->result();
  ir::Value* conv =
      m->createOp(fn, "conv2d", {x, wv, bv}, {{"padding", ir::Attribute(std::vector<int64_t>{1, 1, 1, 1})}})->result();
  ir::Value* relu = m->createOp(fn, "relu", {conv})->result();
  ir::Value* sum = m->createOp(fn, "add", {relu, conv})->result();
  ir::Value* pool = m->createOp(fn, "global_avg_pool2d", {sum})->result();
  fn->setReturns({pool, relu, relu});
  return m;
}

}  // namespace

TEST(executor_float_function_equals_float_reference) {
  std::mt19937 rng(80);
  auto m = floatModule(rng);
  Tensor x = floatTensor({1, 3, 8, 8}, rng);
  std::vector<exec::FloatTensor> expected =
      exec::runFunctionFloat(*m, *m->function("main"), {exec::floatTensorFromBlob(x.type.shape, x.bytes)});
  for (bool optimized : {true, false}) {
    std::vector<Tensor> got = runWith(*m, {x}, optimized, 2);
    CHECK_EQ(got.size(), expected.size());
    for (size_t i = 0; i < got.size() && i < expected.size(); ++i) {
      CHECK(got[i].type.shape == expected[i].shape);
      CHECK(got[i].bytes == exec::blobFromFloatTensor(expected[i]));
    }
  }
  // runAll keeps every value, arguments and constants included.
  Executor ex(*m);
  auto all = ex.runAll({x});
  CHECK_EQ(all.size(), size_t{7});
  const ir::Function& fn = ex.function();
  CHECK(all.at(fn.args[0].get()).bytes == x.bytes);
  CHECK(all.at(fn.returns()[0]).bytes == ex.run({x})[0].bytes);
}

TEST(executor_argument_errors) {
  std::mt19937 rng(90);
  auto m = floatModule(rng);
  Executor ex(*m);
  Tensor x = floatTensor({1, 3, 8, 8}, rng);
  CHECK_THROWS(ir::Error, ex.run({}), "@main takes 1 argument(s) but got 0");
  CHECK_THROWS(ir::Error, ex.run({x, x}), "takes 1 argument(s) but got 2");
  CHECK_THROWS(ir::Error, ex.run({filled({1, 3, 8, 8}, ElemType::SI8, 0)}),
               "argument #0 (%x) of @main expects element type f32 but got si8");
  CHECK_THROWS(ir::Error, ex.run({floatTensor({1, 3, 8, 9}, rng)}),
               "argument #0 (%x) of @main expects shape [1x3x8x8] but got [1x3x8x9]");
  Tensor truncated = x;
  truncated.bytes.resize(10);
  CHECK_THROWS(ir::Error, ex.run({truncated}), "expects 768 bytes of data but got 10");
  CHECK_THROWS(ir::Error, Executor(*m, "other"), "no function @other");
}

TEST(executor_argument_takes_declared_scales) {
  // A caller's tensor without scales runs with the argument's declared type.
  std::mt19937 rng(95);
  ConvCase c{1, 4, 5, 5, 3, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1, false};
  Tensor x = randomSi8({1, 4, 5, 5}, rng);
  Tensor w = randomSi8({3, 4, 3, 3}, rng);
  ir::Module m;
  ir::Function* fn = m.addFunction("main");
  ir::Value* xv = fn->addArgument(withScale(x.type.shape, ElemType::SI8, 0.5f), "x");
  ir::Op* conv = m.createOp(fn, "conv2d", {xv, constant(m, fn, "w", w, 0.25f)},
                            {{"padding", ir::Attribute(std::vector<int64_t>{1, 1, 1, 1})}},
                            {withScale({1, 3, 5, 5}, ElemType::SI32, 0.125f)});
  fn->setReturns({conv->result(), xv});
  std::vector<Tensor> out = Executor(m).run({x});
  CHECK(out[0].bytes == convOracle(c, x, w, nullptr, {1, 3, 5, 5}).bytes);
  CHECK(out[1].type == xv->type);
}

TEST(thread_pool_runs_every_task_once_and_rethrows) {
  exec::ThreadPool pool(3);
  CHECK_EQ(pool.size(), 3);
  std::vector<int> hits(1000, 0);
  for (int round = 0; round < 20; ++round) pool.parallelFor(1000, [&](int64_t i) { ++hits[static_cast<size_t>(i)]; });
  CHECK(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 20; }));
  CHECK_THROWS(std::runtime_error,
               pool.parallelFor(50,
                                [](int64_t i) {
                                  if (i == 17) throw std::runtime_error("task 17 failed");
                                }),
               "task 17 failed");
  int after = 0;
  pool.parallelFor(1, [&](int64_t) { ++after; });
  CHECK_EQ(after, 1);
}
