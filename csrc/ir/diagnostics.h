// Source locations and the error types every layer of the compiler raises.
// Every message is one line: "<where>: error: <what>".
#pragma once

#include <stdexcept>
#include <string>

namespace hbdk::ir {

// Where an op came from: an optional user-facing name (printed as loc("...")) and, for
// parsed ops, the file position. Only `name` is part of the text form.
struct Location {
  std::string name;
  std::string file;
  int line = 0;
  int col = 0;

  bool hasFilePos() const { return line > 0; }
  // "file:line:col" when known, else "loc(\"name\")" when named, else "<unknown>".
  std::string str() const;
};

// Base of all compiler errors; what() is the complete one-line message.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Malformed text or binary input: exit code 2 in the CLI.
class ParseError : public Error {
 public:
  ParseError(const std::string& file, int line, int col, const std::string& msg);
  int line, col;
};

// The IR is structurally invalid (type mismatch, bad attribute, dangling value, ...).
class VerifyError : public Error {
 public:
  using Error::Error;
};

// A pass could not do its work, or a pipeline / pass name is unknown.
class PassError : public Error {
 public:
  using Error::Error;
};

// The model's own data is unusable as given (a float constant holding NaN or Inf): like a
// ParseError, an input error (exit code 2 in the CLI), found by the pass that reads the data.
class DataError : public PassError {
 public:
  using PassError::PassError;
};

}  // namespace hbdk::ir
