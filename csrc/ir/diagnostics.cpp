#include "ir/diagnostics.h"

namespace hbdk::ir {

std::string Location::str() const {
  if (hasFilePos()) return file + ":" + std::to_string(line) + ":" + std::to_string(col);
  if (!name.empty()) return "loc(\"" + name + "\")";
  return "<unknown>";
}

ParseError::ParseError(const std::string& file, int line, int col, const std::string& msg)
    : Error(file + ":" + std::to_string(line) + ":" + std::to_string(col) + ": error: " + msg), line(line), col(col) {}

}  // namespace hbdk::ir
