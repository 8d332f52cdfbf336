// docs/numerics.md §6 for one axis, shared by the float and the integer resize kernels so the two
// read exactly the same source pixels: the source coordinate of output index o, the index nearest
// mode reads, and the two bilinear neighbours, all in float64 evaluated as the doc writes them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

namespace hbdk::exec {

struct ResizeAxis {
  int64_t in, out;
  std::string mode;  // "asymmetric", "half_pixel" or "align_corners"

  double source(int64_t o) const {
    double od = static_cast<double>(o), id = static_cast<double>(in), n = static_cast<double>(out);
    if (mode == "asymmetric") return od * id / n;
    if (mode == "half_pixel") return std::max((od + 0.5) * id / n - 0.5, 0.0);
    return out == 1 ? 0.0 : od * (id - 1) / (n - 1);  // align_corners
  }
  int64_t nearest(int64_t o) const {
    double od = static_cast<double>(o), id = static_cast<double>(in), n = static_cast<double>(out);
    double f = mode == "half_pixel" ? (od + 0.5) * id / n : mode == "asymmetric" ? source(o) : source(o) + 0.5;
    return std::min(static_cast<int64_t>(std::floor(f)), in - 1);
  }
  // Bilinear: the two neighbours and the weight of the second (the fractional part).
  struct Taps {
    int64_t i0, i1;
    double frac;
  };
  Taps taps(int64_t o) const {
    double s = source(o);
    int64_t i0 = std::min(static_cast<int64_t>(std::floor(s)), in - 1);
    return {i0, std::min(i0 + 1, in - 1), s - static_cast<double>(i0)};
  }
};

// grid_sample (docs/numerics.md §4): the input coordinate of a normalized grid value u along an
// axis of `size` pixels, in float64 as written: align_corners ((u + 1) / 2) * (size - 1), else
// ((u + 1) * size - 1) / 2; clamped to [-2, size + 1] (beyond it both bilinear neighbours lie
// outside the input either way), so that its floor is a small integer.
inline double gridSource(double u, int64_t size, bool alignCorners) {
  double n = static_cast<double>(size);
  double p = alignCorners ? (u + 1.0) / 2.0 * (n - 1.0) : ((u + 1.0) * n - 1.0) / 2.0;
  return std::min(std::max(p, -2.0), n + 1.0);
}

}  // namespace hbdk::exec
