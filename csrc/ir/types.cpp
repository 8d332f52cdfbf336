#include "ir/types.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace hbdk::ir {

namespace {
struct ElemInfo {
  ElemType t;
  const char* name;
  size_t bytes;
};
constexpr ElemInfo kElems[] = {
    {ElemType::F32, "f32", 4},   {ElemType::SI8, "si8", 1}, {ElemType::SI16, "si16", 2},
    {ElemType::SI32, "si32", 4}, {ElemType::UI8, "ui8", 1}, {ElemType::Bool, "bool", 1},
};

// Shortest "%.{p}g" that reads back exactly; T is float or double.
template <typename T>
std::string shortestRoundTrip(T v, int maxDigits) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[64];
  for (int p = 1; p <= maxDigits; ++p) {
    std::snprintf(buf, sizeof buf, "%.*g", p, static_cast<double>(v));
    T back = static_cast<T>(std::strtod(buf, nullptr));
    if (back == v) break;
  }
  std::string s(buf);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}
}  // namespace

const char* elemTypeName(ElemType t) { return kElems[static_cast<int>(t)].name; }

std::optional<ElemType> parseElemType(std::string_view name) {
  for (const auto& e : kElems)
    if (name == e.name) return e.t;
  return std::nullopt;
}

size_t elemTypeBytes(ElemType t) { return kElems[static_cast<int>(t)].bytes; }

std::string shapeStr(const Shape& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += 'x';
    out += std::to_string(s[i]);
  }
  return out;
}

int64_t numElements(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string formatFloat(float v) { return shortestRoundTrip<float>(v, 9); }
std::string formatDouble(double v) { return shortestRoundTrip<double>(v, 17); }

std::string TensorType::str() const {
  std::string s = "tensor<";
  if (!shape.empty()) s += shapeStr(shape) + "x";
  s += elemTypeName(elem);
  if (quant) {
    s += ", scale=";
    if (quant->perTensor()) {
      s += formatFloat(quant->scales.empty() ? 0.0f : quant->scales[0]);
    } else {
      s += "[";
      for (size_t i = 0; i < quant->scales.size(); ++i) {
        if (i) s += ", ";
        s += formatFloat(quant->scales[i]);
      }
      s += "], axis=" + std::to_string(quant->axis);
    }
  }
  return s + ">";
}

}  // namespace hbdk::ir
