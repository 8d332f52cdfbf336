// The executors' tensor: a TensorType and its dense row-major bytes (little-endian, the same
// layout as a resource payload). Element access by value is for reference kernels; optimized
// kernels take typed pointers.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "ir/ir.h"

namespace hbdk::exec {

struct Tensor {
  ir::TensorType type;
  ir::Blob bytes;

  Tensor() = default;
  explicit Tensor(ir::TensorType t) : type(std::move(t)), bytes(type.byteSize(), 0) {}
  Tensor(ir::TensorType t, ir::Blob b) : type(std::move(t)), bytes(std::move(b)) {}

  int64_t numel() const { return type.numel(); }
  template <typename T>
  T* data() {
    return reinterpret_cast<T*>(bytes.data());
  }
  template <typename T>
  const T* data() const {
    return reinterpret_cast<const T*>(bytes.data());
  }

  // Element i as an integer (any integer or bool element type) or as a float (f32 only).
  int64_t getInt(size_t i) const;
  void setInt(size_t i, int64_t v);  // the caller saturates first; this only stores
  float getFloat(size_t i) const { return data<float>()[i]; }
  void setFloat(size_t i, float v) { data<float>()[i] = v; }
};

// The range of an integer element type, for saturation.
int64_t minOf(ir::ElemType t);
int64_t maxOf(ir::ElemType t);
inline int64_t saturate(int64_t v, ir::ElemType t) { return v < minOf(t) ? minOf(t) : v > maxOf(t) ? maxOf(t) : v; }

}  // namespace hbdk::exec
