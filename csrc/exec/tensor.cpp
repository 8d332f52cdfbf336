// Element access by value for the reference kernels, and the ranges of the integer element types.
// Bytes are little-endian; the host is assumed little-endian too (x86-64, aarch64).
#include "exec/tensor.h"

#include <limits>

namespace hbdk::exec {

namespace {

template <typename T>
T load(const ir::Blob& b, size_t i) {
  T v;
  std::memcpy(&v, b.data() + i * sizeof(T), sizeof(T));
  return v;
}

template <typename T>
void store(ir::Blob& b, size_t i, T v) {
  std::memcpy(b.data() + i * sizeof(T), &v, sizeof(T));
}

[[noreturn]] void notInteger(ir::ElemType t) {
  throw ir::Error(std::string("expected an integer element type but got ") + ir::elemTypeName(t));
}

}  // namespace

int64_t Tensor::getInt(size_t i) const {
  switch (type.elem) {
    case ir::ElemType::SI8: return load<int8_t>(bytes, i);
    case ir::ElemType::SI16: return load<int16_t>(bytes, i);
    case ir::ElemType::SI32: return load<int32_t>(bytes, i);
    case ir::ElemType::UI8: return load<uint8_t>(bytes, i);
    case ir::ElemType::Bool: return load<uint8_t>(bytes, i) != 0;
    case ir::ElemType::F32: break;
  }
  notInteger(type.elem);
}

void Tensor::setInt(size_t i, int64_t v) {
  switch (type.elem) {
    case ir::ElemType::SI8: return store(bytes, i, static_cast<int8_t>(v));
    case ir::ElemType::SI16: return store(bytes, i, static_cast<int16_t>(v));
    case ir::ElemType::SI32: return store(bytes, i, static_cast<int32_t>(v));
    case ir::ElemType::UI8: return store(bytes, i, static_cast<uint8_t>(v));
    case ir::ElemType::Bool: return store(bytes, i, static_cast<uint8_t>(v != 0));
    case ir::ElemType::F32: break;
  }
  notInteger(type.elem);
}

int64_t minOf(ir::ElemType t) {
  switch (t) {
    case ir::ElemType::SI8: return std::numeric_limits<int8_t>::min();
    case ir::ElemType::SI16: return std::numeric_limits<int16_t>::min();
    case ir::ElemType::SI32: return std::numeric_limits<int32_t>::min();
    case ir::ElemType::UI8: return 0;
    case ir::ElemType::Bool: return 0;
    case ir::ElemType::F32: break;
  }
  notInteger(t);
}

int64_t maxOf(ir::ElemType t) {
  switch (t) {
    case ir::ElemType::SI8: return std::numeric_limits<int8_t>::max();
    case ir::ElemType::SI16: return std::numeric_limits<int16_t>::max();
    case ir::ElemType::SI32: return std::numeric_limits<int32_t>::max();
    case ir::ElemType::UI8: return std::numeric_limits<uint8_t>::max();
    case ir::ElemType::Bool: return 1;
    case ir::ElemType::F32: break;
  }
  notInteger(t);
}

}  // namespace hbdk::exec
