// The HBIR lexer: tokens, comments, string escapes, numeric literals with range checks, and
// rejection of bytes that cannot appear in a text file (NUL, control characters, invalid UTF-8).
#include "ir/lexer.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "ir/diagnostics.h"

namespace hbdk::ir {

namespace {
bool isContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }
}  // namespace

size_t utf8SequenceLength(std::string_view src, size_t pos) {
  auto at = [&](size_t i) -> unsigned char { return i < src.size() ? static_cast<unsigned char>(src[i]) : 0; };
  unsigned char c = at(pos);
  if (c < 0x80) return 1;
  // Ranges from RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF.
  unsigned char lo = 0x80, hi = 0xBF;
  size_t len = 0;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  unsigned char c1 = at(pos + 1);
  if (c1 < lo || c1 > hi) return 0;
  for (size_t i = 2; i < len; ++i)
    if (!isContinuation(at(pos + i))) return 0;
  return len;
}

std::string Token::describe() const {
  auto quoted = [](std::string_view prefix, std::string_view t) {
    constexpr size_t kMax = 40;
    std::string s = "'" + std::string(prefix);
    s += t.size() > kMax ? std::string(t.substr(0, kMax)) + "..." : std::string(t);
    return s + "'";
  };
  switch (kind) {
    case TokenKind::Eof: return "end of file";
    case TokenKind::String: return "a string";
    case TokenKind::ValueId: return quoted("%", text);
    case TokenKind::AtIdent: return quoted("@", text);
    default: return quoted("", text);
  }
}

std::pair<int, int> Lexer::lineCol(size_t pos) {
  if (pos > src_.size()) pos = src_.size();
  if (pos < cachePos_) {
    cachePos_ = 0;
    cacheLine_ = 1;
    cacheCol_ = 1;
  }
  for (; cachePos_ < pos; ++cachePos_) {
    auto c = static_cast<unsigned char>(src_[cachePos_]);
    if (c == '\n') {
      ++cacheLine_;
      cacheCol_ = 1;
    } else if (!isContinuation(c)) {
      ++cacheCol_;
    }
  }
  return {cacheLine_, cacheCol_};
}

void Lexer::fail(size_t pos, const std::string& msg) {
  auto [line, col] = lineCol(pos);
  throw ParseError(file_, line, col, msg);
}

std::string Lexer::describeByte(size_t pos) const {
  auto c = static_cast<unsigned char>(src_[pos]);
  if (c == 0) return "NUL byte";
  char buf[32];
  if (c >= 0x20 && c < 0x7F) {
    std::snprintf(buf, sizeof buf, "character '%c'", c);
  } else if (c >= 0x80 && utf8SequenceLength(src_, pos) > 0) {
    return "non-ASCII character '" + std::string(src_.substr(pos, utf8SequenceLength(src_, pos))) + "'";
  } else if (c >= 0x80) {
    std::snprintf(buf, sizeof buf, "byte 0x%02X (not UTF-8)", c);
  } else {
    std::snprintf(buf, sizeof buf, "control character 0x%02X", c);
  }
  return buf;
}

size_t Lexer::skipTrivia(size_t pos) {
  while (pos < src_.size()) {
    char c = src_[pos];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      ++pos;
    } else if (c == '/' && pos + 1 < src_.size() && src_[pos + 1] == '/') {
      for (pos += 2; pos < src_.size() && src_[pos] != '\n';) {
        auto b = static_cast<unsigned char>(src_[pos]);
        if (b >= 0x80) {
          size_t n = utf8SequenceLength(src_, pos);
          if (n == 0) fail(pos, "unexpected " + describeByte(pos) + " in comment");
          pos += n;
        } else if ((b < 0x20 && b != '\t' && b != '\r') || b == 0x7F) {
          fail(pos, "unexpected " + describeByte(pos) + " in comment");
        } else {
          ++pos;
        }
      }
    } else {
      break;
    }
  }
  return pos;
}

Token Lexer::lex(size_t start) {
  size_t pos = skipTrivia(start);
  Token t;
  t.pos = pos;
  if (pos >= src_.size()) {
    t.end = pos;
    return t;
  }
  auto single = [&](TokenKind k) {
    t.kind = k;
    t.end = pos + 1;
    t.text = src_.substr(pos, 1);
    return t;
  };
  char c = src_[pos];
  switch (c) {
    case '{': return single(TokenKind::LBrace);
    case '}': return single(TokenKind::RBrace);
    case '(': return single(TokenKind::LParen);
    case ')': return single(TokenKind::RParen);
    case '[': return single(TokenKind::LBracket);
    case ']': return single(TokenKind::RBracket);
    case '<': return single(TokenKind::Less);
    case '>': return single(TokenKind::Greater);
    case ',': return single(TokenKind::Comma);
    case '=': return single(TokenKind::Equal);
    case ':': return single(TokenKind::Colon);
    case '"': return lexString(pos);
    default: break;
  }
  if (c == '-' && pos + 1 < src_.size() && src_[pos + 1] == '>') {
    t.kind = TokenKind::Arrow;
    t.end = pos + 2;
    t.text = src_.substr(pos, 2);
    return t;
  }
  if (isDigit(c) || (c == '-' && pos + 1 < src_.size() && isDigit(src_[pos + 1]))) return lexNumber(pos);
  if (c == '-' && src_.substr(pos + 1, 3) == "inf" && (pos + 4 >= src_.size() || !isNameChar(src_[pos + 4]))) {
    t.kind = TokenKind::Float;
    t.end = pos + 4;
    t.text = src_.substr(pos, 4);
    t.floatValue = -INFINITY;
    return t;
  }
  if (c == '%' || c == '@') {
    size_t end = pos + 1;
    if (c == '@' && (end >= src_.size() || !isIdentStart(src_[end]))) fail(end, "expected identifier after '@'");
    while (end < src_.size() && isNameChar(src_[end])) ++end;
    if (end == pos + 1) fail(end, "expected value name after '%'");
    t.kind = c == '%' ? TokenKind::ValueId : TokenKind::AtIdent;
    t.end = end;
    t.text = src_.substr(pos + 1, end - pos - 1);
    return t;
  }
  if (isIdentStart(c)) {
    size_t end = pos + 1;
    while (end < src_.size() && isNameChar(src_[end])) ++end;
    t.kind = TokenKind::Ident;
    t.end = end;
    t.text = src_.substr(pos, end - pos);
    return t;
  }
  fail(pos, "unexpected " + describeByte(pos));
}

Token Lexer::lexNumber(size_t pos) {
  size_t p = pos;
  if (src_[p] == '-') ++p;
  while (p < src_.size() && isDigit(src_[p])) ++p;
  bool isFloat = false;
  if (p < src_.size() && src_[p] == '.') {
    ++p;
    if (p >= src_.size() || !isDigit(src_[p])) fail(p, "expected digit after '.' in number");
    while (p < src_.size() && isDigit(src_[p])) ++p;
    isFloat = true;
  }
  if (p < src_.size() && (src_[p] == 'e' || src_[p] == 'E')) {
    ++p;
    if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
    if (p >= src_.size() || !isDigit(src_[p])) fail(p, "expected digit in exponent of number");
    while (p < src_.size() && isDigit(src_[p])) ++p;
    isFloat = true;
  }
  Token t;
  t.pos = pos;
  t.end = p;
  t.text = src_.substr(pos, p - pos);
  const char* first = src_.data() + pos;
  const char* last = src_.data() + p;
  if (isFloat) {
    t.kind = TokenKind::Float;
    auto [ptr, ec] = std::from_chars(first, last, t.floatValue);
    if (ec == std::errc::result_out_of_range || (ec == std::errc() && !std::isfinite(t.floatValue)))
      fail(pos, "float literal " + t.describe() + " is out of range");
    if (ec != std::errc() || ptr != last) fail(pos, "malformed float literal " + t.describe());
  } else {
    t.kind = TokenKind::Int;
    auto [ptr, ec] = std::from_chars(first, last, t.intValue);
    if (ec == std::errc::result_out_of_range) fail(pos, "integer literal " + t.describe() + " does not fit in 64 bits");
    if (ec != std::errc() || ptr != last) fail(pos, "malformed integer literal " + t.describe());
  }
  return t;
}

Token Lexer::lexString(size_t pos) {
  Token t;
  t.kind = TokenKind::String;
  t.pos = pos;
  size_t p = pos + 1;
  for (;;) {
    if (p >= src_.size() || src_[p] == '\n') fail(pos, "unterminated string (missing closing '\"' on this line)");
    auto c = static_cast<unsigned char>(src_[p]);
    if (c == '"') break;
    if (c == '\\') {
      char e = p + 1 < src_.size() ? src_[p + 1] : '\0';
      if (e != '"' && e != '\\') fail(p, "unknown escape sequence in string (only \\\" and \\\\ are allowed)");
      t.str += e;
      p += 2;
    } else if (c >= 0x80) {
      size_t n = utf8SequenceLength(src_, p);
      if (n == 0) fail(p, "unexpected " + describeByte(p) + " in string");
      t.str.append(src_.substr(p, n));
      p += n;
    } else if (c < 0x20 || c == 0x7F) {
      fail(p, "unexpected " + describeByte(p) + " in string");
    } else {
      // Plain printable ASCII runs (all of a resource's hex payload) are appended in one go.
      size_t run = p + 1;
      while (run < src_.size()) {
        auto r = static_cast<unsigned char>(src_[run]);
        if (r < 0x20 || r >= 0x7F || r == '"' || r == '\\') break;
        ++run;
      }
      t.str.append(src_.data() + p, run - p);
      p = run;
    }
  }
  t.end = p + 1;
  t.text = src_.substr(pos, t.end - pos);
  return t;
}

}  // namespace hbdk::ir
