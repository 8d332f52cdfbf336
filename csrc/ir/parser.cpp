// The HBIR parser: recursive descent over the lexer's tokens (grammar in docs/hbir.md).
// Syntax and names are checked while reading (ParseError at the offending token); once the
// resource section is read too, the whole module is verified (VerifyError at the op's position).
#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "ir/lexer.h"
#include "ir/strings.h"
#include "ir/text.h"
#include "ir/verifier.h"

namespace hbdk::ir {

namespace {

std::string closestOpHint(std::string_view name) {
  std::vector<std::string> names;
  for (const OpDef& d : opTable()) names.emplace_back(d.name);
  auto best = closestMatch(name, names);
  return best ? " (did you mean '" + *best + "'?)" : "";
}

class Parser {
 public:
  Parser(std::string_view text, const std::string& file) : lx_(text, file), m_(std::make_unique<Module>()) {}

  std::unique_ptr<Module> parse() {
    cur_ = lx_.lex(0);
    if (!cur_.isKeyword("module")) failExpected("'module'");
    consume();
    m_->name = std::string(expect(TokenKind::AtIdent, "module name ('@name') after 'module'").text);
    expect(TokenKind::LBrace, "'{' after the module name");
    while (!cur_.is(TokenKind::RBrace)) {
      if (!cur_.isKeyword("func")) failExpected("'func' or '}'");
      parseFunction();
    }
    consume();
    if (cur_.isKeyword("resources")) {
      parseResources();
      if (!cur_.is(TokenKind::Eof)) failExpected("end of file after the resource section");
    } else if (!cur_.is(TokenKind::Eof)) {
      failExpected("'resources' or end of file after the module");
    }
    verifyModule(*m_);
    return std::move(m_);
  }

 private:
  // ---- token helpers ----------------------------------------------------------------------

  void consume() { cur_ = lx_.lex(cur_.end); }

  [[noreturn]] void failAt(size_t pos, const std::string& msg) { lx_.fail(pos, msg); }
  [[noreturn]] void failExpected(const std::string& what) {
    failAt(cur_.pos, "expected " + what + " but got " + cur_.describe());
  }

  Token expect(TokenKind k, const std::string& what) {
    if (!cur_.is(k)) failExpected(what);
    Token t = std::move(cur_);
    consume();
    return t;
  }

  void expectKeyword(std::string_view kw, const std::string& what) {
    if (!cur_.isKeyword(kw)) failExpected(what);
    consume();
  }

  Location locationAt(size_t pos, std::string name = "") {
    auto [line, col] = lx_.lineCol(pos);
    Location l;
    l.name = std::move(name);
    l.file = lx_.file();
    l.line = line;
    l.col = col;
    return l;
  }

  // ---- functions ------------------------------------------------------------------------------

  Value* lookupValue(const Token& t) {
    auto it = values_.find(std::string(t.text));
    if (it == values_.end()) failAt(t.pos, "use of undefined value '%" + std::string(t.text) + "'");
    return it->second;
  }

  void checkFresh(const Token& t) {
    if (values_.count(std::string(t.text))) failAt(t.pos, "redefinition of value '%" + std::string(t.text) + "'");
  }

  void parseFunction() {
    consume();  // 'func'
    Token name = expect(TokenKind::AtIdent, "function name ('@name') after 'func'");
    if (!functionNames_.insert(std::string(name.text)).second)
      failAt(name.pos, "redefinition of function '@" + std::string(name.text) + "'");
    Function* fn = m_->addFunction(std::string(name.text));
    values_.clear();

    expect(TokenKind::LParen, "'(' after the function name");
    if (!cur_.is(TokenKind::RParen)) {
      for (;;) {
        Token arg = expect(TokenKind::ValueId, "argument name ('%name')");
        checkFresh(arg);
        expect(TokenKind::Colon, "':' after the argument name");
        values_[std::string(arg.text)] = fn->addArgument(parseType(), std::string(arg.text));
        if (!cur_.is(TokenKind::Comma)) break;
        consume();
      }
    }
    expect(TokenKind::RParen, "',' or ')' after a function argument");
    expect(TokenKind::Arrow, "'->' after the argument list");
    expect(TokenKind::LParen, "'(' before the result types");
    std::vector<TensorType> resultTypes;
    if (!cur_.is(TokenKind::RParen)) {
      for (;;) {
        resultTypes.push_back(parseType());
        if (!cur_.is(TokenKind::Comma)) break;
        consume();
      }
    }
    expect(TokenKind::RParen, "',' or ')' after a result type");
    expect(TokenKind::LBrace, "'{' to open the function body");

    while (!cur_.isKeyword("return")) {
      if (!cur_.is(TokenKind::ValueId)) failExpected("an op ('%result = ...') or 'return'");
      parseOp(fn);
    }
    Token ret = std::move(cur_);
    consume();
    fn->returnLoc = locationAt(ret.pos);
    std::vector<Token> retTokens;
    if (cur_.is(TokenKind::ValueId)) {
      for (;;) {
        Token t = std::move(cur_);
        consume();
        fn->addReturn(lookupValue(t));
        retTokens.push_back(std::move(t));
        if (!cur_.is(TokenKind::Comma)) break;
        consume();
        if (!cur_.is(TokenKind::ValueId)) failExpected("value name after ',' in return");
      }
    }
    if (fn->returns().size() != resultTypes.size())
      verifyFail(ret.pos, fn,
                 "returns " + std::to_string(fn->returns().size()) + " value(s) but its signature declares " +
                     std::to_string(resultTypes.size()));
    for (size_t i = 0; i < resultTypes.size(); ++i)
      if (fn->returns()[i]->type != resultTypes[i])
        verifyFail(retTokens[i].pos, fn,
                   "return value #" + std::to_string(i) + " '%" + std::string(retTokens[i].text) + "' has type " +
                       fn->returns()[i]->type.str() + " but the signature declares " + resultTypes[i].str());
    expect(TokenKind::RBrace, "'}' after 'return'");
  }

  [[noreturn]] void verifyFail(size_t pos, const Function* fn, const std::string& msg) {
    throw VerifyError(locationAt(pos).str() + ": error: function @" + fn->name + " " + msg);
  }

  // ---- ops ------------------------------------------------------------------------------------

  void parseOp(Function* fn) {
    size_t start = cur_.pos;
    std::vector<Token> resultNames;
    std::unordered_set<std::string_view> seen;
    for (;;) {
      Token r = expect(TokenKind::ValueId, "result name ('%name')");
      checkFresh(r);
      if (!seen.insert(r.text).second) failAt(r.pos, "redefinition of value '%" + std::string(r.text) + "'");
      resultNames.push_back(std::move(r));
      if (!cur_.is(TokenKind::Comma)) break;
      consume();
    }
    expect(TokenKind::Equal, "'=' after the result names");
    if (!cur_.is(TokenKind::Ident)) failExpected("op name");
    Token opName = std::move(cur_);
    const OpDef* def = lookupOp(opName.text);
    if (!def) failAt(opName.pos, "unknown op '" + std::string(opName.text) + "'" + closestOpHint(opName.text));
    consume();

    std::vector<Value*> operands;
    if (cur_.is(TokenKind::LParen)) {
      consume();
      if (!cur_.is(TokenKind::RParen)) {
        for (;;) {
          Token t = expect(TokenKind::ValueId, "operand name ('%name')");
          operands.push_back(lookupValue(t));
          if (!cur_.is(TokenKind::Comma)) break;
          consume();
        }
      }
      expect(TokenKind::RParen, "')' after operand list");
    }

    AttrList attrs;
    if (cur_.is(TokenKind::LBrace)) {
      consume();
      while (!cur_.is(TokenKind::RBrace)) {
        if (!cur_.is(TokenKind::Ident)) failExpected("attribute name");
        Token name = std::move(cur_);
        std::string n(name.text);
        if (!isDiscardableAttr(n) && !def->findAttr(n)) {
          std::string known;
          for (const AttrDef& a : def->attrs) known += (known.empty() ? "" : ", ") + std::string(a.name);
          failAt(name.pos, "unknown attribute '" + n + "' for op '" + def->name +
                               "' (expected one of: " + (known.empty() ? "none" : known) + ")");
        }
        for (const auto& [k, v] : attrs)
          if (k == n) failAt(name.pos, "attribute '" + n + "' given more than once");
        consume();
        expect(TokenKind::Equal, "'=' after the attribute name");
        attrs.emplace_back(std::move(n), parseAttrValue());
        if (!cur_.is(TokenKind::Comma)) break;
        consume();
      }
      expect(TokenKind::RBrace, "',' or '}' after an attribute");
    }

    Token colon = expect(TokenKind::Colon, "':' before the result types");
    std::vector<TensorType> types;
    for (;;) {
      types.push_back(parseType());
      if (!cur_.is(TokenKind::Comma)) break;
      consume();
    }
    if (types.size() != resultNames.size())
      failAt(colon.pos, "expected " + std::to_string(resultNames.size()) + " result type(s) but got " +
                            std::to_string(types.size()));
    std::string locName;
    if (cur_.isKeyword("loc")) {
      consume();
      expect(TokenKind::LParen, "'(' after 'loc'");
      locName = expect(TokenKind::String, "location name string after 'loc('").str;
      expect(TokenKind::RParen, "')' after the location name");
    }

    // Attribute kinds are checked here; everything else waits for the resource section and
    // happens in verifyModule, at this op's position.
    Location loc = locationAt(start, std::move(locName));
    AttrList complete = completeAttrs(*def, std::move(attrs), loc);
    auto op = std::make_unique<Op>(def, std::move(operands), std::move(complete), std::move(loc));
    for (size_t i = 0; i < types.size(); ++i) {
      std::string n(resultNames[i].text);
      values_[n] = op->addResult(std::move(types[i]), n);
    }
    fn->append(std::move(op));
  }

  // ---- attributes -----------------------------------------------------------------------------

  bool atNumber() const {
    return cur_.is(TokenKind::Int) || cur_.is(TokenKind::Float) || cur_.isKeyword("inf") || cur_.isKeyword("nan");
  }

  double takeFloat() {
    double v = cur_.is(TokenKind::Int)     ? static_cast<double>(cur_.intValue)
               : cur_.is(TokenKind::Float) ? cur_.floatValue
               : cur_.text == "inf"        ? INFINITY
                                           : NAN;
    consume();
    return v;
  }

  Attribute parseAttrValue() {
    if (cur_.isKeyword("true") || cur_.isKeyword("false")) {
      bool b = cur_.text == "true";
      consume();
      return Attribute(b);
    }
    if (cur_.is(TokenKind::Int)) {
      int64_t v = cur_.intValue;
      consume();
      return Attribute(v);
    }
    if (atNumber()) return Attribute(takeFloat());
    if (cur_.is(TokenKind::String)) {
      std::string s = std::move(cur_.str);
      consume();
      return Attribute(std::move(s));
    }
    if (cur_.isKeyword("dense_resource")) {
      consume();
      if (!cur_.is(TokenKind::Less)) failExpected("'<' after 'dense_resource'");
      size_t p = lx_.skipTrivia(cur_.end);
      std::string key = scanResourceKey(p, "resource key after 'dense_resource<'");
      p = lx_.skipTrivia(p);
      cur_ = lx_.lex(p);
      expect(TokenKind::Greater, "'>' after the resource key");
      return Attribute(ResourceRef{std::move(key)});
    }
    if (cur_.is(TokenKind::LBracket)) {
      consume();
      std::vector<int64_t> ints;
      std::vector<double> floats;
      bool anyFloat = false;
      while (!cur_.is(TokenKind::RBracket)) {
        if (!atNumber()) failExpected("integer or float in list");
        if (cur_.is(TokenKind::Int)) ints.push_back(cur_.intValue);
        anyFloat = anyFloat || !cur_.is(TokenKind::Int);
        floats.push_back(takeFloat());
        if (!cur_.is(TokenKind::Comma)) break;
        consume();
      }
      expect(TokenKind::RBracket, "',' or ']' in list");
      return anyFloat ? Attribute(std::move(floats)) : Attribute(std::move(ints));
    }
    failExpected("attribute value");
  }

  // Raw scan of [A-Za-z0-9_.$-]+ at `pos` (a key may start with a digit, so it is not a token).
  std::string scanResourceKey(size_t& pos, const std::string& what) {
    std::string_view src = lx_.src();
    size_t end = pos;
    while (end < src.size() && isNameChar(src[end])) ++end;
    if (end == pos) {
      cur_ = lx_.lex(pos);
      failExpected(what);
    }
    std::string key(src.substr(pos, end - pos));
    pos = end;
    return key;
  }

  // ---- types ----------------------------------------------------------------------------------

  TensorType parseType() {
    size_t start = cur_.pos;
    expectKeyword("tensor", "type ('tensor<...>')");
    if (!cur_.is(TokenKind::Less)) failExpected("'<' after 'tensor'");
    // Dims and element type are one run of characters ("1x3xf32"), scanned here directly.
    std::string_view src = lx_.src();
    size_t p = lx_.skipTrivia(cur_.end);
    TensorType t;
    for (;;) {
      if (p < src.size() && isDigit(src[p])) {
        size_t dimStart = p;
        int64_t d = 0;
        for (; p < src.size() && isDigit(src[p]); ++p) {
          d = d * 10 + (src[p] - '0');
          if (d > kMaxTensorElements) failAt(dimStart, "dimension exceeds the limit of 2^40 elements");
        }
        t.shape.push_back(d);
        if (p >= src.size() || src[p] != 'x')
          failAt(p, "expected 'x' after dimension " + std::to_string(d) + " in tensor type");
        ++p;
        continue;
      }
      if (p + 1 < src.size() && src[p] == '-' && isDigit(src[p + 1])) failAt(p, "dimensions must be non-negative");
      if (p < src.size() && isIdentStart(src[p])) {
        size_t e = p;
        while (e < src.size() && (isIdentStart(src[e]) || isDigit(src[e]))) ++e;
        std::string_view name = src.substr(p, e - p);
        auto elem = parseElemType(name);
        if (!elem) {
          std::string shown(name.substr(0, 40));
          failAt(p, "unknown element type '" + shown + "' (expected f32, si8, si16, si32, ui8 or bool)");
        }
        t.elem = *elem;
        p = e;
        break;
      }
      cur_ = lx_.lex(p);
      failExpected("dimension or element type in tensor type");
    }
    cur_ = lx_.lex(p);
    if (cur_.is(TokenKind::Comma)) {
      consume();
      expectKeyword("scale", "'scale' after ',' in tensor type");
      expect(TokenKind::Equal, "'=' after 'scale'");
      Quant q;
      if (cur_.is(TokenKind::LBracket)) {
        consume();
        for (;;) {
          q.scales.push_back(parseScale());
          if (!cur_.is(TokenKind::Comma)) break;
          consume();
        }
        expect(TokenKind::RBracket, "',' or ']' in scale list");
        expect(TokenKind::Comma, "', axis = N' after a per-axis scale list");
        expectKeyword("axis", "'axis' after the per-axis scale list");
        expect(TokenKind::Equal, "'=' after 'axis'");
        if (!cur_.is(TokenKind::Int) || cur_.intValue < 0) failExpected("non-negative integer axis");
        q.axis = cur_.intValue;
        consume();
      } else {
        q.scales.push_back(parseScale());
      }
      t.quant = std::move(q);
    }
    expect(TokenKind::Greater, "'>' to close the tensor type");
    if (std::string problem = tensorTypeProblem(t); !problem.empty()) failAt(start, problem);
    return t;
  }

  float parseScale() {
    if (!atNumber()) failExpected("scale (a float)");
    size_t pos = cur_.pos;
    double d = takeFloat();
    // Values up to half an ulp above FLT_MAX still round to FLT_MAX; past that a cast is undefined.
    static const double kFloatLimit = static_cast<double>(FLT_MAX) + std::ldexp(1.0, 103);
    if (std::isfinite(d) && std::fabs(d) >= kFloatLimit)
      failAt(pos, "scale " + formatDouble(d) + " is out of f32 range");
    auto f = static_cast<float>(d);
    if (d != 0.0 && f == 0.0f) failAt(pos, "scale " + formatDouble(d) + " underflows to 0 in f32");
    return f;
  }

  // ---- resources ------------------------------------------------------------------------------

  void parseResources() {
    consume();  // 'resources'
    if (!cur_.is(TokenKind::LBrace)) failExpected("'{' after 'resources'");
    std::string_view src = lx_.src();
    size_t p = cur_.end;
    std::unordered_set<std::string> keys;
    for (;;) {
      p = lx_.skipTrivia(p);
      if (p < src.size() && src[p] == '}') break;
      size_t keyPos = p;
      std::string key = scanResourceKey(p, "resource key or '}'");
      if (!keys.insert(key).second) failAt(keyPos, "redefinition of resource '" + key + "'");
      cur_ = lx_.lex(p);
      expect(TokenKind::Equal, "'=' after the resource key");
      if (!cur_.is(TokenKind::String)) failExpected("hex string (\"0x...\") for resource '" + key + "'");
      m_->setResource(key, decodeHex(cur_));
      p = cur_.end;
    }
    cur_ = lx_.lex(p + 1);
  }

  Blob decodeHex(const Token& t) {
    const std::string& s = t.str;
    if (s.size() < 2 || s[0] != '0' || s[1] != 'x') failAt(t.pos, "expected hex string starting with \"0x\"");
    if (s.size() % 2 != 0)
      failAt(t.pos, "hex string has an odd number of digits (" + std::to_string(s.size() - 2) + ")");
    // Positions inside the token are exact unless the string used escapes, which hex never needs.
    bool exact = t.end - t.pos == s.size() + 2;
    // One table lookup per digit; 0xFF marks a byte that is not a hex digit.
    static const std::array<uint8_t, 256> kNibble = [] {
      std::array<uint8_t, 256> t{};
      t.fill(0xFF);
      for (int i = 0; i < 10; ++i) t['0' + i] = static_cast<uint8_t>(i);
      for (int i = 0; i < 6; ++i) t['A' + i] = t['a' + i] = static_cast<uint8_t>(10 + i);
      return t;
    }();
    Blob b((s.size() - 2) / 2);
    const auto* digits = reinterpret_cast<const unsigned char*>(s.data()) + 2;
    for (size_t i = 0; i < b.size(); ++i) {
      uint8_t hi = kNibble[digits[2 * i]], lo = kNibble[digits[2 * i + 1]];
      if (hi > 15 || lo > 15) {
        size_t bad = 2 + 2 * i + (hi > 15 ? 0 : 1);
        failAt(exact ? t.pos + 1 + bad : t.pos, "invalid hex digit in resource data");
      }
      b[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return b;
  }

  Lexer lx_;
  Token cur_;
  std::unique_ptr<Module> m_;
  std::unordered_map<std::string, Value*> values_;  // names visible in the current function
  std::unordered_set<std::string> functionNames_;
};

}  // namespace

std::unique_ptr<Module> parseModule(std::string_view text, const std::string& filename) {
  return Parser(text, filename).parse();
}

}  // namespace hbdk::ir
