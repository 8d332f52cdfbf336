// The HBIR printer: canonical .hbir text for a module (docs/hbir.md). It also prints invalid
// IR as well as it can, so a failing pass can still be dumped; such text may not parse back.
#include <unordered_map>
#include <unordered_set>

#include "ir/lexer.h"
#include "ir/text.h"

namespace hbdk::ir {

namespace {

std::string sanitizeName(const std::string& s) {
  std::string out = s;
  for (char& c : out)
    if (!isNameChar(c)) c = '_';
  return out;
}

std::string sanitizeIdent(const std::string& s) {
  std::string out = sanitizeName(s);
  if (out.empty() || !isIdentStart(out[0])) out.insert(out.begin(), '_');
  return out;
}

std::string quoted(const std::string& s) { return Attribute(s).str(); }

// Picks the printed key (or value name) for each wanted name: the first holder of a name keeps
// it, a later holder of the same name gets name_1, name_2, ..., skipping names already taken.
class UniqueNames {
 public:
  void reserve(const std::string& n) { taken_.insert(n); }
  bool isTaken(const std::string& n) const { return taken_.count(n) > 0; }
  std::string derive(const std::string& base) {
    size_t& k = nextSuffix_[base];
    std::string n;
    do n = base + "_" + std::to_string(++k);
    while (taken_.count(n));
    taken_.insert(n);
    return n;
  }
  std::string nextNumber() {
    std::string n;
    do n = std::to_string(counter_++);
    while (taken_.count(n));
    taken_.insert(n);
    return n;
  }

 private:
  std::unordered_set<std::string> taken_;
  std::unordered_map<std::string, size_t> nextSuffix_;
  size_t counter_ = 0;
};

class ModulePrinter {
 public:
  explicit ModulePrinter(const Module& m) : m_(m) {
    // Valid keys keep their text; a key the grammar cannot hold gets a sanitized, unique one.
    UniqueNames keys;
    for (const auto& [key, blob] : m.resources())
      if (!key.empty() && sanitizeName(key) == key && !keys.isTaken(key)) {
        keys.reserve(key);
        resourceKeys_[key] = key;
      }
    for (const auto& [key, blob] : m.resources()) {
      if (resourceKeys_.count(key)) continue;
      std::string base = key.empty() ? std::string("resource") : sanitizeName(key);
      if (keys.isTaken(base)) {
        resourceKeys_[key] = keys.derive(base);
      } else {
        keys.reserve(base);
        resourceKeys_[key] = base;
      }
    }
  }

  std::string print() {
    out_ += "module @" + sanitizeIdent(m_.name) + " {\n";
    for (size_t i = 0; i < m_.functions.size(); ++i) {
      if (i) out_ += "\n";
      printFunction(*m_.functions[i]);
    }
    out_ += "}\n";
    if (!m_.resources().empty()) {
      out_ += "\nresources {\n";
      for (const auto& [key, blob] : m_.resources()) {
        out_ += "  " + resourceKeys_.at(key) + " = \"0x";
        static const char kHex[] = "0123456789ABCDEF";
        size_t at = out_.size();
        out_.resize(at + 2 * blob.size());
        for (uint8_t b : blob) {
          out_[at++] = kHex[b >> 4];
          out_[at++] = kHex[b & 15];
        }
        out_ += "\"\n";
      }
      out_ += "}\n";
    }
    return std::move(out_);
  }

 private:
  void nameValues(const Function& fn) {
    names_.clear();
    std::vector<const Value*> order;
    for (const auto& a : fn.args) order.push_back(a.get());
    for (const auto& op : fn.ops)
      for (const auto& r : op->results) order.push_back(r.get());
    // Valid names first, so a name that needed sanitizing never displaces one that did not.
    UniqueNames names;
    for (const Value* v : order) {
      if (v->name.empty() || sanitizeName(v->name) != v->name || names.isTaken(v->name)) continue;
      names.reserve(v->name);
      names_[v] = v->name;
    }
    for (const Value* v : order) {
      if (names_.count(v)) continue;
      if (v->name.empty()) {
        names_[v] = names.nextNumber();
        continue;
      }
      std::string base = sanitizeName(v->name);
      if (names.isTaken(base)) {
        names_[v] = names.derive(base);
      } else {
        names.reserve(base);
        names_[v] = base;
      }
    }
  }

  std::string ref(const Value* v) const {
    if (!v) return "%<null>";
    auto it = names_.find(v);
    return it == names_.end() ? "%<undefined>" : "%" + it->second;
  }

  std::string attrText(const Attribute& a) const {
    if (a.kind() != AttrKind::Resource) return a.str();
    auto it = resourceKeys_.find(a.asResource().key);
    return "dense_resource<" + (it == resourceKeys_.end() ? sanitizeName(a.asResource().key) : it->second) + ">";
  }

  void printFunction(const Function& fn) {
    nameValues(fn);
    out_ += "  func @" + sanitizeIdent(fn.name) + "(";
    for (size_t i = 0; i < fn.args.size(); ++i) {
      if (i) out_ += ", ";
      out_ += ref(fn.args[i].get()) + ": " + fn.args[i]->type.str();
    }
    out_ += ") -> (";
    for (size_t i = 0; i < fn.returns().size(); ++i) {
      if (i) out_ += ", ";
      out_ += fn.returns()[i] ? fn.returns()[i]->type.str() : "<null>";
    }
    out_ += ") {\n";
    for (const auto& op : fn.ops) printOp(*op);
    out_ += "    return";
    for (size_t i = 0; i < fn.returns().size(); ++i) out_ += (i ? ", " : " ") + ref(fn.returns()[i]);
    out_ += "\n  }\n";
  }

  void printOp(const Op& op) {
    out_ += "    ";
    for (size_t i = 0; i < op.numResults(); ++i) out_ += (i ? ", " : "") + ref(op.result(i));
    if (op.numResults()) out_ += " = ";
    out_ += op.name();
    if (op.numOperands()) {
      out_ += "(";
      for (size_t i = 0; i < op.numOperands(); ++i) out_ += (i ? ", " : "") + ref(op.operand(i));
      out_ += ")";
    }
    // Table order; attributes the table does not know (invalid IR) follow, so nothing is hidden.
    std::vector<std::string> parts;
    for (const AttrDef& ad : op.def().attrs) {
      for (const auto& [name, value] : op.attrs)
        if (name == ad.name) {
          parts.push_back(name + " = " + attrText(value));
          break;
        }
    }
    for (const auto& [name, value] : op.attrs)
      if (!op.def().findAttr(name)) parts.push_back(name + " = " + attrText(value));
    if (!parts.empty()) {
      out_ += " {";
      for (size_t i = 0; i < parts.size(); ++i) out_ += (i ? ", " : "") + parts[i];
      out_ += "}";
    }
    if (op.numResults()) {
      out_ += " : ";
      for (size_t i = 0; i < op.numResults(); ++i) out_ += (i ? ", " : "") + op.result(i)->type.str();
    }
    if (!op.loc.name.empty()) out_ += " loc(" + quoted(op.loc.name) + ")";
    out_ += "\n";
  }

  const Module& m_;
  std::string out_;
  std::unordered_map<std::string, std::string> resourceKeys_;
  std::unordered_map<const Value*, std::string> names_;
};

}  // namespace

std::string printModule(const Module& m) { return ModulePrinter(m).print(); }

}  // namespace hbdk::ir
