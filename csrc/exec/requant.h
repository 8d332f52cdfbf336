// The one requantization rule of docs/numerics.md §2: a positive real ratio becomes an integer
// multiplier and a right shift, and applying them rounds half toward +infinity. This is the only
// implementation; the quantize pass, the executors and the torch int model all call it.
#pragma once

#include <cstdint>

namespace hbdk::exec {

struct Requant {
  int64_t multiplier = 0;  // in [0, 2^31)
  int32_t shift = 0;       // right shift in [0, 62]
  bool operator==(const Requant& o) const { return multiplier == o.multiplier && shift == o.shift; }
};

// Throws ir::Error when the ratio is not finite and positive, or too large (>= 2^31).
Requant computeRequant(double ratio);

// (x * M + 2^(S-1)) >> S exactly (128-bit product), before saturation.
int64_t applyRequant(int64_t x, Requant r);

// Shared-shift pair for add/sub (docs/numerics.md §4): Ma, Mb < 2^31 with one shift S.
struct RequantPair {
  int64_t multiplierA = 0;
  int64_t multiplierB = 0;
  int32_t shift = 0;
};
RequantPair computeRequantPair(double ratioA, double ratioB);

}  // namespace hbdk::exec
