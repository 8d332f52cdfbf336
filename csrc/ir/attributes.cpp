#include "ir/attributes.h"

#include "ir/types.h"

namespace hbdk::ir {

const char* attrKindName(AttrKind k) {
  switch (k) {
    case AttrKind::Bool: return "bool";
    case AttrKind::Int: return "int";
    case AttrKind::Float: return "float";
    case AttrKind::String: return "string";
    case AttrKind::IntList: return "int[]";
    case AttrKind::FloatList: return "float[]";
    case AttrKind::Resource: return "resource";
  }
  return "?";
}

namespace {
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}
}  // namespace

std::string Attribute::str() const {
  switch (kind()) {
    case AttrKind::Bool: return asBool() ? "true" : "false";
    case AttrKind::Int: return std::to_string(asInt());
    case AttrKind::Float: return formatDouble(asFloat());
    case AttrKind::String: return quote(asString());
    case AttrKind::IntList: {
      std::string s = "[";
      for (size_t i = 0; i < asInts().size(); ++i) s += (i ? ", " : "") + std::to_string(asInts()[i]);
      return s + "]";
    }
    case AttrKind::FloatList: {
      std::string s = "[";
      for (size_t i = 0; i < asFloats().size(); ++i) s += (i ? ", " : "") + formatDouble(asFloats()[i]);
      return s + "]";
    }
    case AttrKind::Resource: return "dense_resource<" + asResource().key + ">";
  }
  return "";
}

}  // namespace hbdk::ir
