// Op attributes: scalars, lists, and references to dense tensors in the module's resource table.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace hbdk::ir {

enum class AttrKind : uint8_t { Bool, Int, Float, String, IntList, FloatList, Resource };

const char* attrKindName(AttrKind k);  // "bool", "int", "float", "string", "int[]", "float[]", "resource"

// A dense tensor stored in the module's resource section, printed as dense_resource<key>.
struct ResourceRef {
  std::string key;
  bool operator==(const ResourceRef& o) const { return key == o.key; }
};

class Attribute {
 public:
  using Storage =
      std::variant<bool, int64_t, double, std::string, std::vector<int64_t>, std::vector<double>, ResourceRef>;

  Attribute() : v_(int64_t{0}) {}
  Attribute(bool b) : v_(b) {}
  Attribute(int v) : v_(int64_t{v}) {}
  Attribute(int64_t v) : v_(v) {}
  Attribute(double v) : v_(v) {}
  Attribute(const char* s) : v_(std::string(s)) {}
  Attribute(std::string s) : v_(std::move(s)) {}
  Attribute(std::vector<int64_t> v) : v_(std::move(v)) {}
  Attribute(std::vector<double> v) : v_(std::move(v)) {}
  Attribute(ResourceRef r) : v_(std::move(r)) {}

  AttrKind kind() const { return static_cast<AttrKind>(v_.index()); }

  bool asBool() const { return std::get<bool>(v_); }
  int64_t asInt() const { return std::get<int64_t>(v_); }
  double asFloat() const { return std::get<double>(v_); }
  const std::string& asString() const { return std::get<std::string>(v_); }
  const std::vector<int64_t>& asInts() const { return std::get<std::vector<int64_t>>(v_); }
  const std::vector<double>& asFloats() const { return std::get<std::vector<double>>(v_); }
  const ResourceRef& asResource() const { return std::get<ResourceRef>(v_); }

  bool operator==(const Attribute& o) const { return v_ == o.v_; }
  bool operator!=(const Attribute& o) const { return !(v_ == o.v_); }

  // Text form: true, 3, 0.5, "nearest", [1, 2], [0.5, 1.0], dense_resource<key>.
  std::string str() const;

 private:
  Storage v_;
};

}  // namespace hbdk::ir
