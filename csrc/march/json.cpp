// The strict JSON reader: a recursive-descent parser over the raw bytes that tracks line and
// column (in characters, not bytes) and validates UTF-8 as it goes.
#include "march/json.h"

#include <cerrno>
#include <cstdlib>
#include <limits>

#include "ir/diagnostics.h"

namespace hbdk::march::json {

const char* kindName(Kind k) {
  switch (k) {
    case Kind::Null: return "null";
    case Kind::Bool: return "a boolean";
    case Kind::Number: return "a number";
    case Kind::String: return "a string";
    case Kind::Array: return "an array";
    case Kind::Object: return "an object";
  }
  return "?";
}

const Value* Value::find(const std::string& key) const {
  for (const auto& [k, v] : members)
    if (k == key) return &v;
  return nullptr;
}

std::string Value::brief() const {
  switch (kind) {
    case Kind::Null: return "null";
    case Kind::Bool: return boolean ? "true" : "false";
    case Kind::Number: return text;
    case Kind::String: return "\"" + text + "\"";
    case Kind::Array: return "an array";
    case Kind::Object: return "an object";
  }
  return "?";
}

namespace {

class Parser {
 public:
  Parser(const std::string& text, const std::string& origin, const Limits& limits)
      : s_(text), origin_(origin), limits_(limits) {}

  Value document() {
    if (s_.size() > limits_.maxBytes)
      fail("input is " + std::to_string(s_.size()) + " bytes, over the limit of " + std::to_string(limits_.maxBytes));
    // An editor's byte-order mark is not content.
    if (s_.compare(0, 3, "\xEF\xBB\xBF") == 0) pos_ = 3;
    skipSpace();
    if (atEnd()) fail("expected a JSON value but the input is empty");
    Value v = value(0);
    skipSpace();
    if (!atEnd()) fail("expected the end of the input after the top-level value but got " + here());
    return v;
  }

 private:
  const std::string& s_;
  const std::string& origin_;
  Limits limits_;
  size_t pos_ = 0;
  int line_ = 1;
  int col_ = 1;

  bool atEnd() const { return pos_ >= s_.size(); }
  char peek() const { return atEnd() ? '\0' : s_[pos_]; }

  [[noreturn]] void fail(const std::string& msg) const { throw ir::ParseError(origin_, line_, col_, msg); }
  [[noreturn]] void failAt(int line, int col, const std::string& msg) const {
    throw ir::ParseError(origin_, line, col, msg);
  }

  // The character at the cursor, for "but got ..." messages.
  std::string here() const {
    if (atEnd()) return "the end of the input";
    unsigned char c = static_cast<unsigned char>(s_[pos_]);
    if (c == '\n') return "a line break";
    if (c < 0x20) return "control character 0x" + hex2(c);
    if (c >= 0x80) return "a non-ASCII character";
    return std::string("'") + static_cast<char>(c) + "'";
  }
  static std::string hex2(unsigned c) {
    const char* d = "0123456789abcdef";
    return {d[(c >> 4) & 15], d[c & 15]};
  }

  // Advances over one byte; columns count characters, so UTF-8 continuation bytes do not.
  void advance() {
    unsigned char c = static_cast<unsigned char>(s_[pos_++]);
    if (c == '\n') {
      ++line_;
      col_ = 1;
    } else if ((c & 0xC0) != 0x80) {
      ++col_;
    }
  }

  void skipSpace() {
    while (!atEnd()) {
      char c = peek();
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
        advance();
      else if (c == '/')
        fail("comments are not JSON; put notes in a \"description\" field");
      else
        break;
    }
  }

  void expect(char c, const char* what) {
    if (peek() != c) fail(std::string("expected ") + what + " but got " + here());
    advance();
  }

  Value value(int depth) {
    if (depth >= limits_.maxDepth) fail("nesting deeper than " + std::to_string(limits_.maxDepth) + " levels");
    Value v;
    v.line = line_;
    v.col = col_;
    char c = peek();
    if (c == '{') {
      object(v, depth);
    } else if (c == '[') {
      array(v, depth);
    } else if (c == '"') {
      v.kind = Kind::String;
      v.text = string();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      number(v);
    } else if (c >= 'a' && c <= 'z') {
      keyword(v);
    } else {
      fail("expected a JSON value but got " + here());
    }
    return v;
  }

  void object(Value& v, int depth) {
    v.kind = Kind::Object;
    advance();  // '{'
    skipSpace();
    if (peek() == '}') {
      advance();
      return;
    }
    while (true) {
      skipSpace();
      if (peek() != '"') fail("expected a quoted key but got " + here());
      int keyLine = line_, keyCol = col_;
      std::string key = string();
      if (v.find(key)) failAt(keyLine, keyCol, "duplicate key \"" + key + "\"");
      skipSpace();
      expect(':', "':' after the key");
      skipSpace();
      v.members.emplace_back(std::move(key), value(depth + 1));
      skipSpace();
      if (peek() == ',') {
        advance();
        skipSpace();
        if (peek() == '}') fail("trailing comma before '}'");
        continue;
      }
      expect('}', "',' or '}' in the object");
      return;
    }
  }

  void array(Value& v, int depth) {
    v.kind = Kind::Array;
    advance();  // '['
    skipSpace();
    if (peek() == ']') {
      advance();
      return;
    }
    while (true) {
      skipSpace();
      v.items.push_back(value(depth + 1));
      skipSpace();
      if (peek() == ',') {
        advance();
        skipSpace();
        if (peek() == ']') fail("trailing comma before ']'");
        continue;
      }
      expect(']', "',' or ']' in the array");
      return;
    }
  }

  void keyword(Value& v) {
    size_t start = pos_;
    while (!atEnd() && peek() >= 'a' && peek() <= 'z') ++pos_;
    std::string word = s_.substr(start, pos_ - start);
    pos_ = start;
    if (word == "true" || word == "false") {
      v.kind = Kind::Bool;
      v.boolean = word == "true";
    } else if (word == "null") {
      v.kind = Kind::Null;
    } else {
      fail("expected a JSON value but got '" + word + "'" +
           (word == "nan" || word == "inf" || word == "infinity" ? " (JSON has no NaN or infinity)" : ""));
    }
    for (size_t i = 0; i < word.size(); ++i) advance();
  }

  bool isDigit(char c) const { return c >= '0' && c <= '9'; }

  void number(Value& v) {
    v.kind = Kind::Number;
    size_t start = pos_;
    bool integral = true;
    if (peek() == '-') advance();
    if (peek() == '0') {
      advance();
      if (isDigit(peek())) fail("numbers must not have leading zeros");
    } else if (isDigit(peek())) {
      while (isDigit(peek())) advance();
    } else {
      fail("expected a digit after '-' but got " + here());
    }
    if (peek() == '.') {
      integral = false;
      advance();
      if (!isDigit(peek())) fail("expected a digit after the decimal point but got " + here());
      while (isDigit(peek())) advance();
    }
    if (peek() == 'e' || peek() == 'E') {
      integral = false;
      advance();
      if (peek() == '+' || peek() == '-') advance();
      if (!isDigit(peek())) fail("expected a digit in the exponent but got " + here());
      while (isDigit(peek())) advance();
    }
    v.text = s_.substr(start, pos_ - start);
    v.number = std::strtod(v.text.c_str(), nullptr);
    if (integral) {
      errno = 0;
      long long n = std::strtoll(v.text.c_str(), nullptr, 10);
      v.isInteger = errno != ERANGE;
      v.integer = static_cast<int64_t>(n);
    }
  }

  unsigned hex4() {
    unsigned u = 0;
    for (int i = 0; i < 4; ++i) {
      char c = peek();
      unsigned d;
      if (c >= '0' && c <= '9')
        d = static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f')
        d = static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        d = static_cast<unsigned>(c - 'A' + 10);
      else
        fail("expected 4 hex digits after \\u but got " + here());
      u = u * 16 + d;
      advance();
    }
    return u;
  }

  static void appendUtf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // One UTF-8 encoded character copied verbatim, after checking it is well formed (shortest
  // form, no surrogates, at most U+10FFFF).
  void utf8Char(std::string& out) {
    unsigned char c = static_cast<unsigned char>(peek());
    int extra;
    unsigned cp, minCp;
    if (c >= 0xC2 && c <= 0xDF) {
      extra = 1, cp = c & 0x1F, minCp = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2, cp = c & 0x0F, minCp = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3, cp = c & 0x07, minCp = 0x10000;
    } else {
      fail("invalid UTF-8 byte 0x" + hex2(c));
    }
    if (pos_ + static_cast<size_t>(extra) >= s_.size()) fail("truncated UTF-8 sequence");
    for (int i = 1; i <= extra; ++i) {
      unsigned char k = static_cast<unsigned char>(s_[pos_ + static_cast<size_t>(i)]);
      if ((k & 0xC0) != 0x80) fail("invalid UTF-8 sequence");
      cp = (cp << 6) | (k & 0x3F);
    }
    if (cp < minCp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) fail("invalid UTF-8 sequence");
    for (int i = 0; i <= extra; ++i) {
      out += s_[pos_];
      advance();
    }
  }

  std::string string() {
    std::string out;
    advance();  // opening quote
    while (true) {
      if (atEnd()) fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(peek());
      if (c == '"') {
        advance();
        return out;
      }
      if (c < 0x20) fail("control character 0x" + hex2(c) + " in a string; write it as an escape");
      if (c >= 0x80) {
        utf8Char(out);
        continue;
      }
      if (c != '\\') {
        out += static_cast<char>(c);
        advance();
        continue;
      }
      advance();
      char e = peek();
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          advance();
          unsigned cp = hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail("unpaired low surrogate in a \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (peek() != '\\' || pos_ + 1 >= s_.size() || s_[pos_ + 1] != 'u')
              fail("high surrogate in a \\u escape must be followed by a \\u low surrogate");
            advance();
            advance();
            unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("high surrogate followed by a non-low-surrogate \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          appendUtf8(out, cp);
          continue;
        }
        default: fail("invalid escape '\\" + std::string(1, e) + "' in a string");
      }
      advance();
    }
  }
};

}  // namespace

Value parse(const std::string& text, const std::string& origin, const Limits& limits) {
  return Parser(text, origin, limits).document();
}

}  // namespace hbdk::march::json
