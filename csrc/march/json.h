// A small, strict JSON reader for march descriptions (RFC 8259: no comments, no trailing commas,
// no NaN). Every value keeps its line:col so that later validation can point at it; duplicate
// object keys are rejected because a second "rows" silently winning would hide a typo.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace hbdk::march::json {

struct Limits {
  size_t maxBytes = size_t{1} << 20;  // a march file is a few KiB; 1 MiB leaves room for comments-as-fields
  int maxDepth = 64;                  // nesting of arrays and objects
};

enum class Kind : uint8_t { Null, Bool, Number, String, Array, Object };
const char* kindName(Kind k);  // "null", "a boolean", "a number", "a string", "an array", "an object"

struct Value {
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  bool isInteger = false;                              // written without fraction or exponent and fits int64
  int64_t integer = 0;                                 // valid when isInteger
  std::string text;                                    // a string's decoded UTF-8, or a number's literal spelling
  std::vector<Value> items;                            // array elements
  std::vector<std::pair<std::string, Value>> members;  // object members in file order
  int line = 0;
  int col = 0;

  const Value* find(const std::string& key) const;  // nullptr when absent (objects only)
  // A short rendering for messages: the literal for scalars, "an array"/"an object" otherwise.
  std::string brief() const;
};

// Parses one JSON document. Throws ir::ParseError("origin:line:col: error: ...") on any syntax
// error, an input over the limits, invalid UTF-8, or a duplicate key.
Value parse(const std::string& text, const std::string& origin, const Limits& limits = {});

}  // namespace hbdk::march::json
