// Integer layer_norm (docs/numerics.md §4): every step is exact integer arithmetic, so the C++
// kernel and int_infer agree bit for bit; only the per-channel parameters come from doubles, and
// they are computed here once for both.
#include "exec/layer_norm.h"

#include <cmath>
#include <limits>
#include <string>

#include "ir/diagnostics.h"

namespace hbdk::exec {

namespace {

int64_t floorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// floor(sqrt(w)) exactly for w < 2^62: the double square root is within one of it.
int64_t isqrt(int64_t w) {
  auto r = static_cast<int64_t>(std::sqrt(static_cast<double>(w)));
  while (r > 0 && r * r > w) --r;
  while ((r + 1) * (r + 1) <= w) ++r;
  return r;
}

int bitLength(int64_t v) {
  int b = 0;
  while (v > 0) v >>= 1, ++b;
  return b;
}

int64_t roundToInt64(double v, double limit) {
  if (std::isnan(v)) return 0;
  return static_cast<int64_t>(std::nearbyint(std::fmin(std::fmax(v, -limit), limit)));
}

}  // namespace

LayerNormParams layerNormParams(int64_t n, double eps, double inScale, double outScale, const std::vector<float>& gamma,
                                const std::vector<float>& beta) {
  if (!(inScale > 0 && outScale > 0 && std::isfinite(inScale) && std::isfinite(outScale)))
    throw ir::Error("layer_norm: expected finite positive input and output scales");
  LayerNormParams p;
  p.epsTerm = roundToInt64(static_cast<double>(n) * eps / (inScale * inScale), 1099511627776.0);  // 2^40
  const double int32Max = static_cast<double>(std::numeric_limits<int32_t>::max());
  for (size_t c = 0; c < gamma.size(); ++c) {
    LayerNormChannel ch;
    double a = std::sqrt(static_cast<double>(n)) * static_cast<double>(gamma[c]) / (65536.0 * outScale);
    if (a != 0.0) {
      try {
        ch.requant = computeRequant(std::fabs(a));
      } catch (const ir::Error& e) {
        throw ir::Error("layer_norm: channel " + std::to_string(c) + ": " + e.what());
      }
      ch.sign = a > 0 ? 1 : -1;
    }
    ch.bias = roundToInt64(static_cast<double>(beta[c]) / outScale, int32Max);
    p.channels.push_back(ch);
  }
  return p;
}

void layerNormRow(const int64_t* q, int64_t n, int64_t epsTerm, int64_t* z) {
  int64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += q[i];
  int64_t mean = floorDiv(2 * sum + n, 2 * n);  // round half up
  int64_t squares = 0;
  for (int64_t i = 0; i < n; ++i) squares += (q[i] - mean) * (q[i] - mean);
  int64_t v = squares + epsTerm;
  if (v < 1) v = 1;
  int k = (62 - bitLength(v)) / 2;
  if (k < 0) k = 0;
  int64_t r = isqrt(v << (2 * k));  // floor(sqrt(v) * 2^k), in [2^29, 2^31)
  for (int64_t i = 0; i < n; ++i) {
    int64_t num = (q[i] - mean) * (int64_t{1} << (k + 16));  // |q - mean| * 2^k <= sqrt(v << 2k) < 2^31
    z[i] = floorDiv(2 * num + r, 2 * r);                     // round half up
  }
}

}  // namespace hbdk::exec
