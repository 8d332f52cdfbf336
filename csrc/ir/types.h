// Tensor types of HBIR: element types, shapes, and the optional quantization annotation.
// A type is a plain value; equality is structural.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hbdk::ir {

enum class ElemType : uint8_t { F32, SI8, SI16, SI32, UI8, Bool };

const char* elemTypeName(ElemType t);  // "f32", "si8", ...
std::optional<ElemType> parseElemType(std::string_view name);
size_t elemTypeBytes(ElemType t);
inline bool isFloat(ElemType t) { return t == ElemType::F32; }
inline bool isInteger(ElemType t) { return t != ElemType::F32 && t != ElemType::Bool; }

using Shape = std::vector<int64_t>;

std::string shapeStr(const Shape& s);  // "1x3x224x224" ("" for a scalar)
int64_t numElements(const Shape& s);

// Symmetric quantization: real = scale * int, zero point always 0.
// axis < 0: one scale for the whole tensor; axis >= 0: one scale per index along `axis`.
struct Quant {
  std::vector<float> scales;
  int64_t axis = -1;

  bool perTensor() const { return axis < 0; }
  bool operator==(const Quant& o) const { return axis == o.axis && scales == o.scales; }
  bool operator!=(const Quant& o) const { return !(*this == o); }
};

struct TensorType {
  Shape shape;
  ElemType elem = ElemType::F32;
  std::optional<Quant> quant;

  TensorType() = default;
  TensorType(Shape s, ElemType e, std::optional<Quant> q = std::nullopt)
      : shape(std::move(s)), elem(e), quant(std::move(q)) {}

  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
  int64_t numel() const { return numElements(shape); }
  size_t byteSize() const { return static_cast<size_t>(numel()) * elemTypeBytes(elem); }
  bool operator==(const TensorType& o) const { return shape == o.shape && elem == o.elem && quant == o.quant; }
  bool operator!=(const TensorType& o) const { return !(*this == o); }
  // Text form, e.g. "tensor<1x16xsi8, scale=0.5>".
  std::string str() const;
};

// Shortest decimal text that reads back to exactly the same value; always has a '.' or an
// exponent so that it never reads as an integer ("1.0", "0.1", "1e-07", "inf", "nan").
std::string formatFloat(float v);
std::string formatDouble(double v);

}  // namespace hbdk::ir
