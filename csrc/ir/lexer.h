// Tokens of the HBIR text form (.hbir). The lexer is a pure function of a byte offset, so the
// parser can scan raw characters where the grammar is not token-shaped (shapes like 1x3xf32,
// resource keys that may start with a digit) and resume lexing right after them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace hbdk::ir {

enum class TokenKind : uint8_t {
  Eof,
  Ident,    // [A-Za-z_][A-Za-z0-9_.$-]*: keywords, op and attribute names
  ValueId,  // %name; text excludes the '%'
  AtIdent,  // @name; text excludes the '@'
  Int,
  Float,   // also -inf; a bare inf / nan lexes as an Ident
  String,  // "..." with \" and \\ escapes; `str` holds the decoded bytes
  LBrace,
  RBrace,
  LParen,
  RParen,
  LBracket,
  RBracket,
  Less,
  Greater,
  Comma,
  Equal,
  Colon,
  Arrow,
};

struct Token {
  TokenKind kind = TokenKind::Eof;
  size_t pos = 0;  // byte offset of the first character (the sigil for ValueId / AtIdent)
  size_t end = 0;  // byte offset just past the token
  std::string_view text;
  std::string str;
  int64_t intValue = 0;
  double floatValue = 0.0;

  bool is(TokenKind k) const { return kind == k; }
  bool isKeyword(std::string_view kw) const { return kind == TokenKind::Ident && text == kw; }
  // For "expected X but got Y" messages: "'foo'", "'%x'", "end of file", "string".
  std::string describe() const;
};

inline bool isIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
inline bool isDigit(char c) { return c >= '0' && c <= '9'; }
// Characters of value names and resource keys; identifiers use the same set after their first.
inline bool isNameChar(char c) { return isIdentStart(c) || isDigit(c) || c == '.' || c == '$' || c == '-'; }

class Lexer {
 public:
  Lexer(std::string_view src, std::string file) : src_(src), file_(std::move(file)) {}

  // Skips whitespace and comments from `pos`, then lexes one token. Throws ParseError.
  Token lex(size_t pos);
  // First offset at or after `pos` that is not whitespace or inside a comment.
  size_t skipTrivia(size_t pos);
  // 1-based line and column (in characters) of byte offset `pos`.
  std::pair<int, int> lineCol(size_t pos);
  [[noreturn]] void fail(size_t pos, const std::string& msg);

  std::string_view src() const { return src_; }
  const std::string& file() const { return file_; }

 private:
  Token lexNumber(size_t pos);
  Token lexString(size_t pos);
  std::string describeByte(size_t pos) const;

  std::string_view src_;
  std::string file_;
  // lineCol() walks forward from the last answer; the parser asks in increasing order.
  size_t cachePos_ = 0;
  int cacheLine_ = 1;
  int cacheCol_ = 1;
};

// Length of the valid UTF-8 sequence starting at src[pos], or 0 when it is not valid UTF-8.
size_t utf8SequenceLength(std::string_view src, size_t pos);

}  // namespace hbdk::ir
