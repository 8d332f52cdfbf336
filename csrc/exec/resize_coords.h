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

}  // namespace hbdk::exec
