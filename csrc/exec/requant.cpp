// computeRequant / applyRequant / computeRequantPair: docs/numerics.md §2 and the add/sub pair
// rule of §4, stated once. Every other component obtains its multipliers and shifts from here.
#include "exec/requant.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "ir/diagnostics.h"
#include "ir/types.h"

namespace hbdk::exec {

namespace {

// std::nearbyint honours the current rounding mode, which is round-to-nearest-even by default;
// the callers never change it.
int64_t roundHalfEven(double v) { return static_cast<int64_t>(std::nearbyint(v)); }

void checkRatio(double ratio, const char* what) {
  if (!std::isfinite(ratio) || !(ratio > 0))
    throw ir::Error(std::string(what) + ": expected a finite positive ratio but got " + ir::formatDouble(ratio));
  if (ratio >= 2147483648.0)
    throw ir::Error(std::string(what) + ": expected a ratio below 2^31 but got " + ir::formatDouble(ratio));
}

}  // namespace

Requant computeRequant(double ratio) {
  checkRatio(ratio, "requantization");
  int e = 0;
  double m = std::frexp(ratio, &e);
  int64_t mult = roundHalfEven(std::ldexp(m, 31));
  if (mult == (int64_t{1} << 31)) {
    mult = int64_t{1} << 30;
    ++e;
  }
  int shift = 31 - e;
  if (shift > 62) {
    mult = roundHalfEven(std::ldexp(ratio, 62));
    shift = 62;
  }
  // A ratio just below 2^31 can round M up to 2^31 and push e to 32: still too large.
  if (shift < 0) throw ir::Error("requantization: expected a ratio below 2^31 but got " + ir::formatDouble(ratio));
  return {mult, shift};
}

// GCC and Clang provide a 128-bit integer on every 64-bit target; __extension__ keeps
// -Wpedantic quiet about it.
__extension__ using Int128 = __int128;

int64_t applyRequant(int64_t x, Requant r) {
  Int128 p = static_cast<Int128>(x) * r.multiplier;
  if (r.shift >= 1) p = (p + (static_cast<Int128>(1) << (r.shift - 1))) >> r.shift;
  return static_cast<int64_t>(p);
}

RequantPair computeRequantPair(double ratioA, double ratioB) {
  checkRatio(ratioA, "requantization pair");
  checkRatio(ratioB, "requantization pair");
  auto ceilLog2 = [](double r) {
    int e = 0;
    double m = std::frexp(r, &e);  // r = m * 2^e, m in [0.5, 1): ceil(log2 r) = e, or e-1 at m == 0.5
    return m == 0.5 ? e - 1 : e;
  };
  int s = 30 - std::max(ceilLog2(ratioA), ceilLog2(ratioB));
  s = std::min(std::max(s, 0), 62);
  RequantPair p;
  p.multiplierA = roundHalfEven(std::ldexp(ratioA, s));
  p.multiplierB = roundHalfEven(std::ldexp(ratioB, s));
  p.shift = s;
  // Only ratios near 2^31 (where S is clamped to 0) can round a multiplier up to 2^31.
  if (p.multiplierA >= (int64_t{1} << 31) || p.multiplierB >= (int64_t{1} << 31))
    throw ir::Error("requantization pair: expected ratios below 2^30 but got " + ir::formatDouble(ratioA) + " and " +
                    ir::formatDouble(ratioB));
  return p;
}

}  // namespace hbdk::exec
