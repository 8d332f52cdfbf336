#include "ir/ir.h"

#include <algorithm>

#include "ir/lexer.h"

namespace hbdk::ir {

// ---- OpDef ------------------------------------------------------------------------------------

const AttrDef* OpDef::findAttr(std::string_view n) const {
  for (const auto& a : attrs)
    if (n == a.name) return &a;
  return nullptr;
}

int OpDef::minOperands() const {
  int n = 0;
  for (const auto& o : operands) n += o.arity == Arity::One ? 1 : 0;
  return n;
}

int OpDef::maxOperands() const {
  int n = 0;
  for (const auto& o : operands) {
    if (o.arity == Arity::Variadic) return -1;
    ++n;
  }
  return n;
}

// ---- Op ---------------------------------------------------------------------------------------

Op::Op(const OpDef* def, std::vector<Value*> operands, AttrList attrs, Location loc)
    : operands(std::move(operands)), attrs(std::move(attrs)), loc(std::move(loc)), def_(def) {}

Value* Op::addResult(TensorType t, std::string resultName) {
  auto v = std::make_unique<Value>();
  v->type = std::move(t);
  v->name = std::move(resultName);
  v->owner = this;
  v->index = static_cast<unsigned>(results.size());
  results.push_back(std::move(v));
  return results.back().get();
}

bool Op::hasAttr(std::string_view n) const {
  for (const auto& [k, v] : attrs)
    if (k == n) return true;
  return false;
}

const Attribute& Op::attr(std::string_view n) const {
  for (const auto& [k, v] : attrs)
    if (k == n) return v;
  if (const AttrDef* d = def_->findAttr(n); d && d->defaultValue) return *d->defaultValue;
  error("has no attribute '" + std::string(n) + "'");
}

void Op::setAttr(std::string_view n, Attribute v) {
  for (auto& [k, old] : attrs)
    if (k == n) {
      old = std::move(v);
      return;
    }
  // Keep table order so the printer's output stays canonical.
  attrs.emplace_back(std::string(n), std::move(v));
  auto rank = [this](const std::string& k) {
    for (size_t i = 0; i < def_->attrs.size(); ++i)
      if (k == def_->attrs[i].name) return i;
    return def_->attrs.size();
  };
  std::stable_sort(attrs.begin(), attrs.end(),
                   [&](const auto& a, const auto& b) { return rank(a.first) < rank(b.first); });
}

std::string Op::diag(const std::string& msg) const {
  std::string s = loc.hasFilePos() ? loc.str() + ": " : "";
  s += "error: '" + std::string(name()) + "' op";
  if (!loc.name.empty()) s += " (loc(\"" + loc.name + "\"))";
  return s + ": " + msg;
}

void Op::error(const std::string& msg) const { throw VerifyError(diag(msg)); }

// ---- Function ---------------------------------------------------------------------------------

Value* Function::addArgument(TensorType t, std::string argName) {
  auto v = std::make_unique<Value>();
  v->type = std::move(t);
  v->name = std::move(argName);
  v->index = static_cast<unsigned>(args.size());
  args.push_back(std::move(v));
  return args.back().get();
}

Op* Function::append(std::unique_ptr<Op> op) {
  op->parent = this;
  ops.push_back(std::move(op));
  return ops.back().get();
}

Op* Function::insertBefore(const Op* before, std::unique_ptr<Op> op) {
  if (!before) return append(std::move(op));
  op->parent = this;
  auto it = ops.begin() + static_cast<std::ptrdiff_t>(indexOf(before));
  return ops.insert(it, std::move(op))->get();
}

size_t Function::indexOf(const Op* op) const {
  for (size_t i = 0; i < ops.size(); ++i)
    if (ops[i].get() == op) return i;
  throw PassError("error: op '" + std::string(op->name()) + "' is not in function @" + name);
}

void Function::erase(Op* op) {
  for (const auto& r : op->results)
    if (hasUses(r.get())) throw PassError(op->diag("cannot erase an op whose result '%" + r->name + "' is still used"));
  ops.erase(ops.begin() + static_cast<std::ptrdiff_t>(indexOf(op)));
}

std::vector<std::pair<Op*, unsigned>> Function::uses(const Value* v) const {
  std::vector<std::pair<Op*, unsigned>> out;
  for (const auto& op : ops)
    for (unsigned i = 0; i < op->operands.size(); ++i)
      if (op->operands[i] == v) out.emplace_back(op.get(), i);
  for (unsigned i = 0; i < returns.size(); ++i)
    if (returns[i] == v) out.emplace_back(nullptr, i);
  return out;
}

bool Function::hasUses(const Value* v) const {
  for (const auto& op : ops)
    for (const Value* o : op->operands)
      if (o == v) return true;
  return std::find(returns.begin(), returns.end(), v) != returns.end();
}

void Function::replaceAllUsesWith(const Value* from, Value* to) {
  for (auto& op : ops)
    for (auto& o : op->operands)
      if (o == from) o = to;
  for (auto& r : returns)
    if (r == from) r = to;
}

// ---- Module -----------------------------------------------------------------------------------

Function* Module::addFunction(std::string fnName) {
  functions.push_back(std::make_unique<Function>(std::move(fnName)));
  return functions.back().get();
}

Function* Module::function(std::string_view fnName) const {
  for (const auto& f : functions)
    if (f->name == fnName) return f.get();
  return nullptr;
}

bool Module::hasResource(std::string_view key) const { return resourceIndex_.count(key) > 0; }

const Blob& Module::resource(std::string_view key) const {
  auto it = resourceIndex_.find(key);
  if (it == resourceIndex_.end())
    throw VerifyError("error: no resource named '" + std::string(key) + "' in module @" + name);
  return resources_[it->second].second;
}

void Module::setResource(const std::string& key, Blob data) {
  if (auto it = resourceIndex_.find(key); it != resourceIndex_.end()) {
    resources_[it->second].second = std::move(data);
    return;
  }
  resourceIndex_.emplace(key, resources_.size());
  resources_.emplace_back(key, std::move(data));
}

void Module::eraseResource(std::string_view key) {
  auto it = resourceIndex_.find(key);
  if (it == resourceIndex_.end()) return;
  resources_.erase(resources_.begin() + static_cast<std::ptrdiff_t>(it->second));
  resourceIndex_.clear();
  for (size_t i = 0; i < resources_.size(); ++i) resourceIndex_.emplace(resources_[i].first, i);
}

std::string Module::uniqueResourceKey(const std::string& hint) const {
  std::string base = hint.empty() ? std::string("const") : hint;
  if (!hasResource(base)) return base;
  for (int i = 1;; ++i) {
    std::string k = base + "_" + std::to_string(i);
    if (!hasResource(k)) return k;
  }
}

bool isDiscardableAttr(std::string_view name) { return name.find('.') != std::string_view::npos; }

bool isAttrName(std::string_view name) {
  if (name.empty() || !isIdentStart(name[0])) return false;
  return std::all_of(name.begin(), name.end(), isNameChar);
}

AttrList completeAttrs(const OpDef& def, AttrList given, const Location& loc) {
  auto fail = [&](const std::string& msg) {
    Op tmp(&def, {}, {}, loc);
    tmp.error(msg);
  };
  for (const auto& [k, v] : given) {
    if (isDiscardableAttr(k)) continue;
    if (!def.findAttr(k)) {
      std::string known;
      for (const auto& a : def.attrs) known += std::string(known.empty() ? "" : ", ") + a.name;
      fail("unknown attribute '" + k + "' (expected one of: " + (known.empty() ? "none" : known) + ")");
    }
  }
  AttrList out;
  for (const auto& a : def.attrs) {
    const Attribute* found = nullptr;
    int count = 0;
    for (const auto& [k, v] : given)
      if (k == a.name) found = &v, ++count;
    if (count > 1) fail("attribute '" + std::string(a.name) + "' given more than once");
    if (!found) {
      if (!a.defaultValue) fail("missing required attribute '" + std::string(a.name) + "'");
      out.emplace_back(a.name, *a.defaultValue);
      continue;
    }
    Attribute v = *found;
    // An integer literal is accepted where a float is declared; the reverse is an error.
    if (a.kind == AttrKind::Float && v.kind() == AttrKind::Int) v = Attribute(static_cast<double>(v.asInt()));
    // An all-integer list (the empty list included) is equally a valid float list.
    if (a.kind == AttrKind::FloatList && v.kind() == AttrKind::IntList) {
      std::vector<double> d(v.asInts().begin(), v.asInts().end());
      v = Attribute(std::move(d));
    }
    if (v.kind() != a.kind)
      fail("attribute '" + std::string(a.name) + "' expects " + attrKindName(a.kind) + " but got " +
           attrKindName(v.kind()) + " " + v.str());
    out.emplace_back(a.name, std::move(v));
  }
  size_t tableCount = out.size();
  for (auto& [k, v] : given) {
    if (!isDiscardableAttr(k)) continue;
    if (!isAttrName(k)) fail("attribute name '" + k + "' is not an identifier ([A-Za-z_][A-Za-z0-9_.$-]*)");
    for (size_t j = tableCount; j < out.size(); ++j)
      if (out[j].first == k) fail("attribute '" + k + "' given more than once");
    out.emplace_back(k, std::move(v));
  }
  return out;
}

std::vector<TensorType> resolveResultTypes(const Op& op, const std::vector<TensorType>& declared) {
  std::vector<InferredType> inferred = op.def().infer(op);
  if (!declared.empty() && declared.size() != inferred.size())
    op.error("expected " + std::to_string(inferred.size()) + " result type(s) but got " +
             std::to_string(declared.size()));
  std::vector<TensorType> out;
  for (size_t i = 0; i < inferred.size(); ++i) {
    const InferredType& inf = inferred[i];
    if (declared.empty()) {
      if (!inf.shape || !inf.elem)
        op.error("result #" + std::to_string(i) + ": the " + (inf.shape ? "element type" : "shape") +
                 " cannot be inferred; give the result type explicitly");
      out.emplace_back(*inf.shape, *inf.elem);
      continue;
    }
    const TensorType& d = declared[i];
    if (inf.shape && d.shape != *inf.shape)
      op.error("result #" + std::to_string(i) + ": expected shape " + TensorType(*inf.shape, d.elem).str() +
               " but the declared type is " + d.str());
    if (inf.elem && d.elem != *inf.elem)
      op.error("result #" + std::to_string(i) + ": expected element type " + elemTypeName(*inf.elem) +
               " but the declared type is " + d.str());
    out.push_back(d);
  }
  return out;
}

Op* Module::createOp(Function* fn, std::string_view opName, std::vector<Value*> operands, AttrList attrs,
                     std::vector<TensorType> resultTypes, Location loc, const Op* before) {
  const OpDef* def = lookupOp(opName);
  if (!def) throw VerifyError("error: unknown op '" + std::string(opName) + "'");
  AttrList complete = completeAttrs(*def, std::move(attrs), loc);
  auto op = std::make_unique<Op>(def, std::move(operands), std::move(complete), std::move(loc));
  int n = static_cast<int>(op->operands.size());
  if (n < def->minOperands() || (def->maxOperands() >= 0 && n > def->maxOperands()))
    op->error("expected " + std::to_string(def->minOperands()) +
              (def->maxOperands() < 0                     ? " or more"
               : def->maxOperands() != def->minOperands() ? " to " + std::to_string(def->maxOperands())
                                                          : std::string()) +
              " operand(s) but got " + std::to_string(n));
  for (Value* v : op->operands)
    if (!v) op->error("an operand is null");
  for (TensorType& t : resolveResultTypes(*op, resultTypes)) op->addResult(std::move(t));
  return fn->insertBefore(before, std::move(op));
}

Op* Module::createConstant(Function* fn, const std::string& keyHint, TensorType t, Blob data, Location loc,
                           const Op* before) {
  if (data.size() != t.byteSize())
    throw VerifyError("error: constant '" + keyHint + "' of type " + t.str() + " needs " +
                      std::to_string(t.byteSize()) + " bytes but got " + std::to_string(data.size()));
  std::string key = uniqueResourceKey(keyHint);
  setResource(key, std::move(data));
  return createOp(fn, "constant", {}, {{"value", Attribute(ResourceRef{key})}}, {std::move(t)}, std::move(loc), before);
}

}  // namespace hbdk::ir
