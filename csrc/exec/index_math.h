// Index math the reference kernels share: row-major strides, axis normalization, walking every
// index of a shape, numpy broadcasting, and the source index of the edge/reflect pad modes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "ir/types.h"

namespace hbdk::exec {

inline std::vector<int64_t> stridesOf(const ir::Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}

// A possibly negative axis as an index into a shape of `rank` dims.
inline size_t normAxis(int64_t axis, size_t rank) {
  return static_cast<size_t>(axis < 0 ? axis + static_cast<int64_t>(rank) : axis);
}

// Elements after `axis` (the stride of `axis`) and before it.
inline int64_t innerOf(const ir::Shape& s, size_t axis) {
  return ir::numElements(ir::Shape(s.begin() + axis + 1, s.end()));
}
inline int64_t outerOf(const ir::Shape& s, size_t axis) {
  return ir::numElements(ir::Shape(s.begin(), s.begin() + axis));
}

// Calls f(flatIndex, coords) for every element of `shape` in row-major order.
template <typename F>
void forEachIndex(const ir::Shape& shape, F f) {
  std::vector<int64_t> c(shape.size(), 0);
  int64_t n = ir::numElements(shape);
  for (int64_t o = 0; o < n; ++o) {
    f(static_cast<size_t>(o), c);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++c[d] < shape[d]) break;
      c[d] = 0;
    }
  }
}

// Strides for reading `in` while walking `out` under numpy broadcasting: size-1 and missing
// leading dims get stride 0.
inline std::vector<int64_t> broadcastStrides(const ir::Shape& in, const ir::Shape& out) {
  std::vector<int64_t> inStrides = stridesOf(in), st(out.size(), 0);
  size_t offset = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) st[offset + i] = in[i] == 1 ? 0 : inStrides[i];
  return st;
}

inline size_t dot(const std::vector<int64_t>& coords, const std::vector<int64_t>& strides) {
  int64_t s = 0;
  for (size_t d = 0; d < coords.size(); ++d) s += coords[d] * strides[d];
  return static_cast<size_t>(s);
}

// Maps an out-of-range index back into [0, n) for the edge and reflect pad modes.
inline int64_t padSource(int64_t i, int64_t n, const std::string& mode) {
  if (mode == "edge") return std::clamp<int64_t>(i, 0, n - 1);
  if (n == 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;  // reflect, the edge not repeated
  return i;
}

}  // namespace hbdk::exec
