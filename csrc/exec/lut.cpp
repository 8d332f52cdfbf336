// Table construction and lookup for the `lut` op (docs/numerics.md §5). The quantize pass builds
// tables here, the reference and optimized kernels read them through applyLut.
#include "exec/lut.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "exec/tensor.h"
#include "ir/diagnostics.h"

namespace hbdk::exec {

std::optional<LutFunction> parseLutFunction(std::string_view name) {
  if (name == "leaky_relu") return LutFunction::LeakyRelu;
  if (name == "sigmoid") return LutFunction::Sigmoid;
  if (name == "tanh") return LutFunction::Tanh;
  if (name == "exp") return LutFunction::Exp;
  if (name == "silu") return LutFunction::Silu;
  if (name == "hardswish") return LutFunction::Hardswish;
  if (name == "hardsigmoid") return LutFunction::Hardsigmoid;
  if (name == "gelu") return LutFunction::Gelu;
  if (name == "sin") return LutFunction::Sin;
  if (name == "cos") return LutFunction::Cos;
  return std::nullopt;
}

double evalLutFunction(LutFunction f, double x, double alpha) {
  switch (f) {
    case LutFunction::LeakyRelu: return x >= 0 ? x : alpha * x;
    case LutFunction::Sigmoid: return 1.0 / (1.0 + std::exp(-x));
    case LutFunction::Tanh: return std::tanh(x);
    case LutFunction::Exp: return std::exp(x);
    case LutFunction::Silu: return x / (1.0 + std::exp(-x));
    case LutFunction::Hardswish: return x * std::min(std::max(x + 3.0, 0.0), 6.0) / 6.0;
    case LutFunction::Hardsigmoid: return std::min(std::max(x + 3.0, 0.0), 6.0) / 6.0;
    case LutFunction::Gelu: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case LutFunction::Sin: return std::sin(x);
    case LutFunction::Cos: return std::cos(x);
  }
  return 0.0;
}

size_t lutEntries(ir::ElemType inType) {
  if (inType == ir::ElemType::SI8) return 256;
  if (inType == ir::ElemType::SI16) return 257;
  throw ir::Error(std::string("lookup table: expected an si8 or si16 input but got ") + ir::elemTypeName(inType));
}

namespace {

// The sample positions of §5: every si8 value, or every 256th si16 value from -32768 to 32768.
int64_t samplePoint(ir::ElemType inType, size_t i) {
  int64_t k = static_cast<int64_t>(i);
  return inType == ir::ElemType::SI8 ? k - 128 : -32768 + 256 * k;
}

void checkScale(double s, const char* which) {
  if (!std::isfinite(s) || !(s > 0))
    throw ir::Error(std::string("lookup table: expected a finite positive ") + which + " scale but got " +
                    ir::formatDouble(s));
}

// sat_T(round_half_even(v)) on a double that may be huge, infinite (exp overflow) or NaN (0).
int64_t saturateRound(double v, ir::ElemType t) {
  if (std::isnan(v)) return 0;
  double lo = static_cast<double>(minOf(t)), hi = static_cast<double>(maxOf(t));
  if (v <= lo) return minOf(t);
  if (v >= hi) return maxOf(t);
  return static_cast<int64_t>(std::nearbyint(v));
}

}  // namespace

std::vector<int64_t> buildLut(const std::function<double(double)>& f, ir::ElemType inType, double inScale,
                              ir::ElemType outType, double outScale) {
  size_t n = lutEntries(inType);
  if (!ir::isInteger(outType))
    throw ir::Error(std::string("lookup table: expected an integer output type but got ") + ir::elemTypeName(outType));
  checkScale(inScale, "input");
  checkScale(outScale, "output");
  std::vector<int64_t> table(n);
  for (size_t i = 0; i < n; ++i) {
    double x = static_cast<double>(samplePoint(inType, i)) * inScale;
    table[i] = saturateRound(f(x) / outScale, outType);
  }
  return table;
}

std::vector<int64_t> buildLut(LutFunction f, ir::ElemType inType, double inScale, ir::ElemType outType, double outScale,
                              double alpha) {
  return buildLut([f, alpha](double x) { return evalLutFunction(f, x, alpha); }, inType, inScale, outType, outScale);
}

int64_t applyLut(const std::vector<int64_t>& table, ir::ElemType inType, int64_t q) {
  if (inType == ir::ElemType::SI8) return table[static_cast<size_t>(q + 128)];
  // si16: segment k covers [-32768 + 256k, -32768 + 256(k+1)); r is the position inside it.
  int64_t u = q + 32768;
  size_t k = static_cast<size_t>(u >> 8);
  int64_t r = u & 255;
  int64_t lo = table[k], hi = table[k + 1];
  return lo + (((hi - lo) * r + 128) >> 8);
}

std::vector<int64_t> softmaxExpTable(ir::ElemType inType, double inScale) {
  if (inType != ir::ElemType::SI8 && inType != ir::ElemType::SI16)
    throw ir::Error(std::string("expected an si8 or si16 softmax input but got ") + ir::elemTypeName(inType));
  if (!(std::isfinite(inScale) && inScale > 0))
    throw ir::Error("expected a finite positive input scale but got " + ir::formatFloat(static_cast<float>(inScale)));
  double step = inScale * (inType == ir::ElemType::SI16 ? 256.0 : 1.0);
  std::vector<int64_t> table(256);
  for (size_t k = 0; k < table.size(); ++k)
    table[k] = static_cast<int64_t>(std::nearbyint(65535.0 * std::exp(-static_cast<double>(k) * step)));
  return table;
}

}  // namespace hbdk::exec
