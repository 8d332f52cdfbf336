#include "ir/ir.h"

#include <algorithm>
#include <stdexcept>

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

// ---- uses -------------------------------------------------------------------------------------

UseSlots& UseSlots::holding(const Use& use) { return use.user ? use.user->operands_ : use.function->returns_; }

void UseSlots::registerUse(size_t i, const Use& use) {
  if (useAt_.size() < values.size()) useAt_.resize(values.size());
  Value* v = values[i];
  if (!v) return;
  useAt_[i] = static_cast<unsigned>(v->uses_.size());
  v->uses_.push_back(use);
}

void UseSlots::dropUse(size_t i) {
  Value* v = values[i];
  if (!v) return;
  // Swap-remove: the last use takes the dropped one's place and tells its slot so.
  unsigned at = useAt_[i];
  Use moved = v->uses_.back();
  v->uses_.pop_back();
  if (at == v->uses_.size()) return;
  v->uses_[at] = moved;
  holding(moved).useAt_[moved.index] = at;
}

void Value::replaceAllUsesWith(Value* to) {
  if (to == this) return;
  std::vector<Use> moving = std::move(uses_);
  uses_.clear();
  for (const Use& u : moving) {
    UseSlots& slots = UseSlots::holding(u);
    slots.values[u.index] = to;
    slots.registerUse(u.index, u);
  }
}

// ---- Op ---------------------------------------------------------------------------------------

Op::Op(const OpDef* def, std::vector<Value*> operands, AttrList attrs, Location loc)
    : attrs(std::move(attrs)), loc(std::move(loc)), def_(def) {
  operands_.values = std::move(operands);
}

void Op::setOperand(size_t i, Value* v) {
  if (i >= operands_.values.size())
    throw std::out_of_range("operand #" + std::to_string(i) + " of an op with " +
                            std::to_string(operands_.values.size()));
  if (parent_) operands_.dropUse(i);
  operands_.values[i] = v;
  if (parent_) operands_.registerUse(i, {this, parent_, static_cast<unsigned>(i)});
}

void Op::addOperand(Value* v) {
  operands_.values.push_back(v);
  size_t i = operands_.values.size() - 1;
  if (parent_) operands_.registerUse(i, {this, parent_, static_cast<unsigned>(i)});
}

void Op::setOperands(std::vector<Value*> vs) {
  if (parent_)
    for (size_t i = 0; i < operands_.values.size(); ++i) operands_.dropUse(i);
  operands_.values = std::move(vs);
  if (parent_)
    for (size_t i = 0; i < operands_.values.size(); ++i)
      operands_.registerUse(i, {this, parent_, static_cast<unsigned>(i)});
}

Op* Op::nextOp() const {
  if (!parent_) return nullptr;
  auto it = std::next(self_);
  return it == parent_->ops.end() ? nullptr : it->get();
}

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
  Module* m = parent_ ? parent_->module() : nullptr;
  if (m) m->countResourceRef(v, +1);
  for (auto& [k, old] : attrs)
    if (k == n) {
      if (m) m->countResourceRef(old, -1);
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

void Op::removeAttr(std::string_view n) {
  Module* m = parent_ ? parent_->module() : nullptr;
  for (auto it = attrs.begin(); it != attrs.end();)
    if (it->first == n) {
      if (m) m->countResourceRef(it->second, -1);
      it = attrs.erase(it);
    } else {
      ++it;
    }
}

std::string Op::diag(const std::string& msg) const {
  std::string s = loc.hasFilePos() ? loc.str() + ": " : "";
  s += "error: '" + std::string(name()) + "' op";
  if (!loc.name.empty()) s += " (loc(\"" + loc.name + "\"))";
  return s + ": " + msg;
}

void Op::error(const std::string& msg) const { throw VerifyError(diag(msg)); }

// ---- OpList -----------------------------------------------------------------------------------

const std::unique_ptr<Op>& OpList::operator[](size_t i) const {
  if (i >= ops_.size())
    throw std::out_of_range("op #" + std::to_string(i) + " of a function with " + std::to_string(ops_.size()));
  if (!numbered_) renumber();
  return *byPosition_[i];
}

size_t OpList::indexOf(const Op* op) const {
  if (!numbered_) renumber();
  return op->position_;
}

void OpList::renumber() const {
  byPosition_.clear();
  byPosition_.reserve(ops_.size());
  for (const auto& op : ops_) {
    op->position_ = byPosition_.size();
    byPosition_.push_back(&op);
  }
  numbered_ = true;
}

Op* OpList::insert(const_iterator before, std::unique_ptr<Op> op) {
  bool atEnd = before == ops_.end();
  auto it = ops_.insert(before, std::move(op));
  Op* p = it->get();
  p->self_ = it;
  // Appending keeps every position; anything else renumbers on the next position query.
  if (atEnd && numbered_) {
    p->position_ = byPosition_.size();
    byPosition_.push_back(&*it);
  } else {
    numbered_ = false;
  }
  return p;
}

void OpList::erase(const Op* op) {
  if (numbered_ && !byPosition_.empty() && byPosition_.back() == &*op->self_)
    byPosition_.pop_back();
  else
    numbered_ = false;
  ops_.erase(op->self_);
}

// ---- Function ---------------------------------------------------------------------------------

Value* Function::addArgument(TensorType t, std::string argName) {
  auto v = std::make_unique<Value>();
  v->type = std::move(t);
  v->name = std::move(argName);
  v->index = static_cast<unsigned>(args.size());
  args.push_back(std::move(v));
  return args.back().get();
}

void Function::setReturns(std::vector<Value*> vs) {
  for (size_t i = 0; i < returns_.values.size(); ++i) returns_.dropUse(i);
  returns_.values = std::move(vs);
  for (size_t i = 0; i < returns_.values.size(); ++i)
    returns_.registerUse(i, {nullptr, this, static_cast<unsigned>(i)});
}

void Function::setReturn(size_t i, Value* v) {
  if (i >= returns_.values.size())
    throw std::out_of_range("return value #" + std::to_string(i) + " of @" + name + ", which returns " +
                            std::to_string(returns_.values.size()));
  returns_.dropUse(i);
  returns_.values[i] = v;
  returns_.registerUse(i, {nullptr, this, static_cast<unsigned>(i)});
}

void Function::addReturn(Value* v) {
  returns_.values.push_back(v);
  size_t i = returns_.values.size() - 1;
  returns_.registerUse(i, {nullptr, this, static_cast<unsigned>(i)});
}

Op* Function::attach(OpList::const_iterator before, std::unique_ptr<Op> op) {
  Op* p = ops.insert(before, std::move(op));
  p->parent_ = this;
  for (size_t i = 0; i < p->operands_.values.size(); ++i)
    p->operands_.registerUse(i, {p, this, static_cast<unsigned>(i)});
  if (module_) module_->countResourceRefs(p->attrs, +1);
  return p;
}

Op* Function::append(std::unique_ptr<Op> op) { return attach(ops.end(), std::move(op)); }

Op* Function::insertBefore(const Op* before, std::unique_ptr<Op> op) {
  if (!before) return append(std::move(op));
  if (before->parent_ != this)
    throw PassError("error: op '" + std::string(before->name()) + "' is not in function @" + name);
  return attach(before->self_, std::move(op));
}

size_t Function::indexOf(const Op* op) const {
  if (op->parent_ != this) throw PassError("error: op '" + std::string(op->name()) + "' is not in function @" + name);
  return ops.indexOf(op);
}

void Function::erase(Op* op) {
  if (op->parent_ != this) throw PassError("error: op '" + std::string(op->name()) + "' is not in function @" + name);
  for (const auto& r : op->results)
    if (r->hasUses()) throw PassError(op->diag("cannot erase an op whose result '%" + r->name + "' is still used"));
  for (size_t i = 0; i < op->operands_.values.size(); ++i) op->operands_.dropUse(i);
  if (module_) module_->countResourceRefs(op->attrs, -1);
  ops.erase(op);
}

std::vector<std::pair<Op*, unsigned>> Function::uses(const Value* v) const {
  std::vector<std::pair<Op*, unsigned>> out;
  for (const Use& u : v->uses())
    if (u.function == this) out.emplace_back(u.user, u.index);
  // Op order, operand order; returns last.
  auto key = [this](const std::pair<Op*, unsigned>& u) {
    return std::make_pair(u.first ? ops.indexOf(u.first) : ops.size(), u.second);
  };
  std::sort(out.begin(), out.end(), [&](const auto& a, const auto& b) { return key(a) < key(b); });
  return out;
}

// ---- Module -----------------------------------------------------------------------------------

Function* Module::addFunction(std::string fnName) {
  functions.push_back(std::make_unique<Function>(std::move(fnName)));
  functions.back()->module_ = this;
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
  erased_.push_back(false);
}

void Module::eraseResource(std::string_view key) {
  auto it = resourceIndex_.find(key);
  if (it == resourceIndex_.end()) return;
  erased_[it->second] = true;
  resources_[it->second].second = Blob();
  ++numErased_;
  resourceIndex_.erase(it);
  // A freed "<base>_<n>" lowers the first suffix uniqueResourceKey tries for <base>.
  size_t cut = key.rfind('_');
  if (cut == std::string_view::npos || cut + 1 == key.size() || key[cut + 1] == '0' || key.size() - cut > 10) return;
  std::string_view digits = key.substr(cut + 1);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) return;
  auto low = firstFreeSuffix_.find(key.substr(0, cut));
  if (low != firstFreeSuffix_.end()) low->second = std::min(low->second, std::stoi(std::string(digits)));
}

const std::vector<std::pair<std::string, Blob>>& Module::resources() const {
  if (numErased_ == 0) return resources_;
  size_t kept = 0;
  for (size_t i = 0; i < resources_.size(); ++i) {
    if (erased_[i]) continue;
    if (kept != i) resources_[kept] = std::move(resources_[i]);
    resourceIndex_[resources_[kept].first] = kept;
    ++kept;
  }
  resources_.resize(kept);
  erased_.assign(kept, false);
  numErased_ = 0;
  return resources_;
}

size_t Module::resourceRefs(std::string_view key) const {
  auto it = resourceRefs_.find(key);
  return it == resourceRefs_.end() ? 0 : it->second;
}

void Module::countResourceRef(const Attribute& a, int delta) {
  if (a.kind() != AttrKind::Resource) return;
  const std::string& key = a.asResource().key;
  if (delta > 0) {
    resourceRefs_[key] += static_cast<size_t>(delta);
    return;
  }
  auto it = resourceRefs_.find(key);
  if (it == resourceRefs_.end()) return;
  it->second -= std::min(it->second, static_cast<size_t>(-delta));
  if (it->second == 0) resourceRefs_.erase(it);
}

void Module::countResourceRefs(const AttrList& attrs, int delta) {
  for (const auto& [k, v] : attrs) countResourceRef(v, delta);
}

std::string Module::uniqueResourceKey(const std::string& hint) const {
  std::string base = hint.empty() ? std::string("const") : hint;
  if (!hasResource(base)) return base;
  // The smallest free suffix, as a scan from 1 would find it, but starting where the last scan
  // for this base stopped: every suffix below that is still taken (eraseResource lowers it).
  int& low = firstFreeSuffix_.try_emplace(base, 1).first->second;
  for (int i = low;; ++i) {
    std::string k = base + "_" + std::to_string(i);
    if (!hasResource(k)) {
      low = i;
      return k;
    }
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
  int n = static_cast<int>(op->numOperands());
  if (n < def->minOperands() || (def->maxOperands() >= 0 && n > def->maxOperands()))
    op->error("expected " + std::to_string(def->minOperands()) +
              (def->maxOperands() < 0                     ? " or more"
               : def->maxOperands() != def->minOperands() ? " to " + std::to_string(def->maxOperands())
                                                          : std::string()) +
              " operand(s) but got " + std::to_string(n));
  for (Value* v : op->operands())
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
