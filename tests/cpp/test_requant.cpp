// docs/numerics.md §2: computeRequant, applyRequant and computeRequantPair on their edge cases
// (rounding ties, negative values, tiny and huge ratios, the S > 62 path), plus Tensor element
// access and the saturation ranges of every integer element type.
#include <cmath>
#include <cstdint>

#include "exec/requant.h"
#include "exec/tensor.h"
#include "testing.h"

using namespace hbdk;
using exec::applyRequant;
using exec::computeRequant;
using exec::computeRequantPair;
using exec::Requant;

namespace {

// The real value x * M / 2^S rounded half toward +infinity, computed in long double (exact for
// the small operands used here).
int64_t expectRounded(int64_t x, Requant r) {
  long double v = static_cast<long double>(x) * static_cast<long double>(r.multiplier);
  v = std::ldexp(v, -r.shift);
  return static_cast<int64_t>(std::floor(v + 0.5L));
}

}  // namespace

TEST(requant_identity_ratio) {
  Requant r = computeRequant(1.0);
  CHECK_EQ(r.multiplier, int64_t{1} << 30);
  CHECK_EQ(r.shift, 30);
  for (int64_t x = -40000; x <= 40000; x += 7) CHECK_EQ(applyRequant(x, r), x);
  CHECK_EQ(applyRequant(int64_t{1} << 40, r), int64_t{1} << 40);  // needs the 128-bit product
  CHECK_EQ(applyRequant(-(int64_t{1} << 40), r), -(int64_t{1} << 40));
}

TEST(requant_powers_of_two_are_exact) {
  for (int k = -20; k <= 20; ++k) {
    Requant r = computeRequant(std::ldexp(1.0, k));
    CHECK_EQ(r.multiplier, int64_t{1} << 30);
    CHECK_EQ(r.shift, 30 - k);
  }
}

TEST(requant_ties_round_toward_plus_infinity) {
  Requant half = computeRequant(0.5);
  CHECK_EQ(half.multiplier, int64_t{1} << 30);
  CHECK_EQ(half.shift, 31);
  CHECK_EQ(applyRequant(1, half), 1);    // 0.5 -> 1
  CHECK_EQ(applyRequant(-1, half), 0);   // -0.5 -> 0
  CHECK_EQ(applyRequant(3, half), 2);    // 1.5 -> 2
  CHECK_EQ(applyRequant(-3, half), -1);  // -1.5 -> -1
  CHECK_EQ(applyRequant(5, half), 3);    // 2.5 -> 3 (not to even)
  CHECK_EQ(applyRequant(-5, half), -2);
  CHECK_EQ(applyRequant(-4, half), -2);
  Requant quarter = computeRequant(0.25);
  CHECK_EQ(applyRequant(2, quarter), 1);    // 0.5
  CHECK_EQ(applyRequant(-2, quarter), 0);   // -0.5
  CHECK_EQ(applyRequant(-3, quarter), -1);  // -0.75
  CHECK_EQ(applyRequant(-1, quarter), 0);   // -0.25
}

TEST(requant_matches_real_rounding) {
  const double ratios[] = {0.3, 0.0123, 1.7, 0.999999, 3e-5, 123.456, 1e6, 1e-10};
  for (double ratio : ratios) {
    Requant r = computeRequant(ratio);
    CHECK(r.multiplier >= 0 && r.multiplier < (int64_t{1} << 31));
    CHECK(r.shift >= 0 && r.shift <= 62);
    for (int64_t x = -33000; x <= 33000; x += 13) CHECK_EQ(applyRequant(x, r), expectRounded(x, r));
    // The multiplier approximates the ratio to 31 significant bits (or 2^-62 absolute).
    double approx = std::ldexp(static_cast<double>(r.multiplier), -r.shift);
    CHECK(std::fabs(approx - ratio) <= std::max(ratio * std::ldexp(1.0, -30), std::ldexp(1.0, -62)));
  }
}

TEST(requant_m_rounding_up_to_2_pow_31) {
  // m * 2^31 rounds to 2^31: M becomes 2^30 and the exponent grows by one.
  double ratio = 1.0 - std::ldexp(1.0, -40);  // m = ratio, e = 0
  Requant r = computeRequant(ratio);
  CHECK_EQ(r.multiplier, int64_t{1} << 30);
  CHECK_EQ(r.shift, 30);
}

TEST(requant_extreme_ratios) {
  Requant big = computeRequant(1e6);
  CHECK_EQ(big.shift, 11);  // 1e6 = 0.95367... * 2^20
  CHECK_EQ(big.multiplier, static_cast<int64_t>(std::nearbyint(1e6 * 2048.0)));
  CHECK_EQ(applyRequant(-3, big), -3000000);

  Requant max = computeRequant(2147483647.0);
  CHECK_EQ(max.multiplier, 2147483647);
  CHECK_EQ(max.shift, 0);
  CHECK_EQ(applyRequant(-2, max), -4294967294LL);

  Requant tiny = computeRequant(1e-10);  // e = -33: S would be 64
  CHECK_EQ(tiny.shift, 62);
  CHECK_EQ(tiny.multiplier, static_cast<int64_t>(std::nearbyint(std::ldexp(1e-10, 62))));
  CHECK_EQ(applyRequant(32767, tiny), 0);
  CHECK_EQ(applyRequant(int64_t{1} << 40, tiny), 110);  // 2^40 * 1e-10 = 109.95

  Requant p40 = computeRequant(std::ldexp(1.0, -40));  // S > 62 path with an exact multiplier
  CHECK_EQ(p40.multiplier, int64_t{1} << 22);
  CHECK_EQ(p40.shift, 62);

  Requant zero = computeRequant(1e-30);  // M rounds to 0: everything maps to 0
  CHECK_EQ(zero.multiplier, 0);
  CHECK_EQ(zero.shift, 62);
  CHECK_EQ(applyRequant(-2147483648LL, zero), 0);
}

TEST(requant_rejects_bad_ratios) {
  CHECK_THROWS(ir::Error, computeRequant(2147483648.0), "below 2^31");
  CHECK_THROWS(ir::Error, computeRequant(1e12), "below 2^31");
  CHECK_THROWS(ir::Error, computeRequant(std::nextafter(2147483648.0, 0.0)), "below 2^31");
  CHECK_THROWS(ir::Error, computeRequant(0.0), "finite positive");
  CHECK_THROWS(ir::Error, computeRequant(-1.0), "finite positive");
  CHECK_THROWS(ir::Error, computeRequant(std::nan("")), "finite positive");
  CHECK_THROWS(ir::Error, computeRequant(INFINITY), "finite positive");
}

TEST(requant_pair) {
  exec::RequantPair p = computeRequantPair(1.0, 1.0);
  CHECK_EQ(p.shift, 30);
  CHECK_EQ(p.multiplierA, int64_t{1} << 30);
  CHECK_EQ(p.multiplierB, int64_t{1} << 30);

  p = computeRequantPair(0.75, 3.0);  // ceil(log2 3) = 2
  CHECK_EQ(p.shift, 28);
  CHECK_EQ(p.multiplierA, 3 * (int64_t{1} << 26));
  CHECK_EQ(p.multiplierB, 3 * (int64_t{1} << 28));

  p = computeRequantPair(1e-30, 1e-25);  // S clamps at 62
  CHECK_EQ(p.shift, 62);
  CHECK_EQ(p.multiplierA, 0);

  p = computeRequantPair(5e8, 0.1);  // ceil(log2 5e8) = 29: S = 1
  CHECK_EQ(p.shift, 1);
  CHECK_EQ(p.multiplierA, 1000000000);
  CHECK(p.multiplierB == 0);

  CHECK_THROWS(ir::Error, computeRequantPair(0.0, 1.0), "finite positive");
  CHECK_THROWS(ir::Error, computeRequantPair(1.0, 3e9), "below 2^31");
}

TEST(tensor_element_access_and_ranges) {
  using ir::ElemType;
  CHECK_EQ(exec::minOf(ElemType::SI8), -128);
  CHECK_EQ(exec::maxOf(ElemType::SI8), 127);
  CHECK_EQ(exec::minOf(ElemType::SI16), -32768);
  CHECK_EQ(exec::maxOf(ElemType::SI16), 32767);
  CHECK_EQ(exec::minOf(ElemType::SI32), -2147483648LL);
  CHECK_EQ(exec::maxOf(ElemType::SI32), 2147483647LL);
  CHECK_EQ(exec::minOf(ElemType::UI8), 0);
  CHECK_EQ(exec::maxOf(ElemType::UI8), 255);
  CHECK_EQ(exec::maxOf(ElemType::Bool), 1);
  CHECK_EQ(exec::saturate(300, ElemType::SI8), 127);
  CHECK_EQ(exec::saturate(-300, ElemType::SI8), -128);
  CHECK_EQ(exec::saturate(-5, ElemType::SI8), -5);
  CHECK_THROWS(ir::Error, exec::minOf(ElemType::F32), "integer element type");

  for (ElemType t : {ElemType::SI8, ElemType::SI16, ElemType::SI32, ElemType::UI8, ElemType::Bool}) {
    exec::Tensor x(ir::TensorType({2, 3}, t));
    CHECK_EQ(x.bytes.size(), 6 * ir::elemTypeBytes(t));
    for (size_t i = 0; i < 6; ++i) x.setInt(i, i % 2 ? exec::minOf(t) : exec::maxOf(t));
    for (size_t i = 0; i < 6; ++i) CHECK_EQ(x.getInt(i), i % 2 ? exec::minOf(t) : exec::maxOf(t));
  }
  exec::Tensor s16(ir::TensorType({2}, ElemType::SI16));
  s16.setInt(1, -2);
  CHECK_EQ(s16.bytes[2], 0xFE);  // little-endian
  CHECK_EQ(s16.bytes[3], 0xFF);
  exec::Tensor f(ir::TensorType({1}, ElemType::F32));
  CHECK_THROWS(ir::Error, f.getInt(0), "integer element type");
}
