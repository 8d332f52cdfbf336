// The HBIR object model: Module > Function > Op, in SSA form. Ops are kept in a valid
// topological order inside their function; a value is a function argument or an op result.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ir/attributes.h"
#include "ir/diagnostics.h"
#include "ir/op_def.h"
#include "ir/types.h"

namespace hbdk::ir {

class Op;
class Function;
class Module;
class Value;

// One read of a value: operand `index` of `user`, or, when `user` is nullptr, return value
// #index of `function`.
struct Use {
  Op* user = nullptr;
  Function* function = nullptr;  // where the read is (user's function for an operand)
  unsigned index = 0;
};

// Value references that count as uses of their values: an op's operands (while the op is in a
// function), a function's returns. Each registered reference knows its position in its value's
// use list, so that dropping it is O(1).
class UseSlots {
 public:
  std::vector<Value*> values;

  // Makes reference i the use `use` of values[i] (nothing for nullptr).
  void registerUse(size_t i, const Use& use);
  // Removes reference i from its value's use list.
  void dropUse(size_t i);

 private:
  friend class Value;
  // The references holding `use`: its user's operands, or its function's returns.
  static UseSlots& holding(const Use& use);
  std::vector<unsigned> useAt_;
};

class Value {
 public:
  Value() = default;
  Value(const Value&) = delete;
  Value& operator=(const Value&) = delete;

  TensorType type;
  std::string name;     // name hint without '%'; the printer keeps it when unique
  Op* owner = nullptr;  // defining op, or nullptr for a function argument
  unsigned index = 0;   // result index in `owner`, or argument index

  bool isArgument() const { return owner == nullptr; }

  // Every read of this value by an op in a function or by a return, in no particular order
  // (Function::uses lists them in op order). Op and Function keep the list up to date.
  const std::vector<Use>& uses() const { return uses_; }
  bool hasUses() const { return !uses_.empty(); }
  // Makes every read of this value read `to` instead; O(number of uses).
  void replaceAllUsesWith(Value* to);

 private:
  friend class UseSlots;
  std::vector<Use> uses_;
};

// Attributes in the order the op table declares them.
using AttrList = std::vector<std::pair<std::string, Attribute>>;

class Op {
 public:
  Op(const OpDef* def, std::vector<Value*> operands, AttrList attrs, Location loc);
  Op(const Op&) = delete;
  Op& operator=(const Op&) = delete;
  // Touches no value: when a function dies, its ops go in order, and earlier ops' results
  // (which later ops read) are already gone.
  ~Op() = default;

  const OpDef& def() const { return *def_; }
  const char* name() const { return def_->name; }
  bool is(std::string_view opName) const { return opName == def_->name; }

  std::vector<std::unique_ptr<Value>> results;
  // Change an attribute that names a resource through setAttr/removeAttr: the module counts
  // those references (Module::resourceRefs).
  AttrList attrs;
  Location loc;

  // Operands; while the op is in a function, each is a registered use of its value.
  const std::vector<Value*>& operands() const { return operands_.values; }
  Value* operand(size_t i) const { return operands_.values.at(i); }
  size_t numOperands() const { return operands_.values.size(); }
  void setOperand(size_t i, Value* v);
  void addOperand(Value* v);
  void setOperands(std::vector<Value*> vs);

  Value* result(size_t i = 0) const { return results.at(i).get(); }
  size_t numResults() const { return results.size(); }
  Value* addResult(TensorType t, std::string name = "");

  // Attribute access; a missing attribute falls back to the table default.
  bool hasAttr(std::string_view n) const;
  const Attribute& attr(std::string_view n) const;  // throws VerifyError if missing
  void setAttr(std::string_view n, Attribute v);
  void removeAttr(std::string_view n);  // no-op when absent
  int64_t getInt(std::string_view n) const { return attr(n).asInt(); }
  double getFloat(std::string_view n) const { return attr(n).asFloat(); }
  bool getBool(std::string_view n) const { return attr(n).asBool(); }
  const std::string& getString(std::string_view n) const { return attr(n).asString(); }
  const std::vector<int64_t>& getInts(std::string_view n) const { return attr(n).asInts(); }
  const std::vector<double>& getFloats(std::string_view n) const { return attr(n).asFloats(); }

  // "file:line:col: error: 'conv2d' op (loc("conv1")): <msg>"
  std::string diag(const std::string& msg) const;
  [[noreturn]] void error(const std::string& msg) const;

  // The function holding the op, or nullptr before it is added to one.
  Function* parent() const { return parent_; }
  // The op after this one in its function, or nullptr for the last.
  Op* nextOp() const;

 private:
  friend class Function;
  friend class OpList;
  friend class UseSlots;

  const OpDef* def_;
  UseSlots operands_;
  Function* parent_ = nullptr;
  std::list<std::unique_ptr<Op>>::iterator self_;  // position in parent_->ops
  mutable size_t position_ = 0;                    // index in parent_->ops when numbered
};

// A tensor payload in the module's resource section: raw little-endian bytes.
using Blob = std::vector<uint8_t>;

// A function's ops in order. Read like a vector of std::unique_ptr<Op> (range-for, size, [i],
// front, back, indexOf); only Function changes it, in O(1) per inserted or erased op. Positions
// are renumbered lazily: the first [i] or indexOf after an insertion or erasure other than at the
// end costs one O(n) pass, later ones O(1).
class OpList {
 public:
  using Storage = std::list<std::unique_ptr<Op>>;
  using const_iterator = Storage::const_iterator;

  const_iterator begin() const { return ops_.begin(); }
  const_iterator end() const { return ops_.end(); }
  size_t size() const { return ops_.size(); }
  bool empty() const { return ops_.empty(); }
  const std::unique_ptr<Op>& front() const { return ops_.front(); }
  const std::unique_ptr<Op>& back() const { return ops_.back(); }
  const std::unique_ptr<Op>& operator[](size_t i) const;
  // The position of `op`, which must be in this list.
  size_t indexOf(const Op* op) const;

 private:
  friend class Function;
  Op* insert(const_iterator before, std::unique_ptr<Op> op);
  void erase(const Op* op);
  void renumber() const;

  Storage ops_;
  mutable std::vector<const std::unique_ptr<Op>*> byPosition_;
  mutable bool numbered_ = true;
};

class Function {
 public:
  explicit Function(std::string name) : name(std::move(name)) {}
  Function(const Function&) = delete;
  Function& operator=(const Function&) = delete;

  std::string name;
  std::vector<std::unique_ptr<Value>> args;
  OpList ops;  // change it through append / insertBefore / erase
  Location returnLoc;

  // The returned values; each is a use (with user nullptr) of its value.
  const std::vector<Value*>& returns() const { return returns_.values; }
  void setReturns(std::vector<Value*> vs);
  void setReturn(size_t i, Value* v);
  void addReturn(Value* v);

  // The module that made this function (Module::addFunction), or nullptr.
  Module* module() const { return module_; }

  Value* addArgument(TensorType t, std::string name = "");
  // Appends an op (or inserts it before `before`); returns it. Its operands become uses of their
  // values. Results are added by the caller or by Module::createOp.
  Op* append(std::unique_ptr<Op> op);
  Op* insertBefore(const Op* before, std::unique_ptr<Op> op);
  // Removes an op whose results have no uses; throws PassError otherwise. O(operands).
  void erase(Op* op);

  // The (user op, operand index) pairs reading `v` in this function, in op order; a use by
  // `return` is reported with user nullptr, after the ops. For callers that show or depend on the
  // order; Value::uses is the O(1) view.
  std::vector<std::pair<Op*, unsigned>> uses(const Value* v) const;
  size_t indexOf(const Op* op) const;  // throws PassError if `op` is not in this function

 private:
  friend class Module;
  friend class UseSlots;
  Op* attach(OpList::const_iterator before, std::unique_ptr<Op> op);

  UseSlots returns_;
  Module* module_ = nullptr;
};

class Module {
 public:
  explicit Module(std::string name = "main") : name(std::move(name)) {}

  std::string name;
  std::vector<std::unique_ptr<Function>> functions;

  Function* addFunction(std::string fnName);
  Function* function(std::string_view fnName) const;  // nullptr if absent

  // Resources keep their insertion order, so a parsed file prints back unchanged. Erasing is
  // O(log n): the entry is compacted away on the next resources().
  bool hasResource(std::string_view key) const;
  const Blob& resource(std::string_view key) const;  // throws VerifyError if absent
  void setResource(const std::string& key, Blob data);
  void eraseResource(std::string_view key);
  const std::vector<std::pair<std::string, Blob>>& resources() const;
  // A key not yet in use, derived from `hint` ("conv1.weight", "conv1.weight_1", ...).
  std::string uniqueResourceKey(const std::string& hint) const;
  // How many attributes of ops in this module's functions name resource `key`.
  size_t resourceRefs(std::string_view key) const;

  // Builds an op from the table: fills attribute defaults, checks operand arity, and infers the
  // result types (explicit `resultTypes` win; they are required where inference leaves the
  // element type open). Appends it to `fn` (or before `before`). Throws VerifyError.
  Op* createOp(Function* fn, std::string_view opName, std::vector<Value*> operands, AttrList attrs = {},
               std::vector<TensorType> resultTypes = {}, Location loc = {}, const Op* before = nullptr);
  // A `constant` op holding `data` (raw bytes of type `t`) under a new resource key.
  Op* createConstant(Function* fn, const std::string& keyHint, TensorType t, Blob data, Location loc = {},
                     const Op* before = nullptr);

 private:
  friend class Function;
  friend class Op;
  // Adds `delta` to the count of every resource `attrs` names.
  void countResourceRefs(const AttrList& attrs, int delta);
  void countResourceRef(const Attribute& a, int delta);

  mutable std::vector<std::pair<std::string, Blob>> resources_;
  mutable std::vector<bool> erased_;  // per entry of resources_
  mutable size_t numErased_ = 0;
  mutable std::map<std::string, size_t, std::less<>> resourceIndex_;  // live entries only
  std::map<std::string, size_t, std::less<>> resourceRefs_;
  // Per key hint: no suffix below this one is free (see uniqueResourceKey).
  mutable std::map<std::string, int, std::less<>> firstFreeSuffix_;
};

// A discardable attribute's name contains a '.' ("bpu.group", "quant.dtype"): any op may carry
// one, of any kind; the op's own semantics ignore it and passes may add or drop it.
bool isDiscardableAttr(std::string_view name);
// Whether `name` can be written in the text form: [A-Za-z_][A-Za-z0-9_.$-]*.
bool isAttrName(std::string_view name);

// Resolves the attributes an op will carry: explicit ones in table order, defaults filled,
// unknown names and kind mismatches rejected (VerifyError naming the op and the attribute);
// discardable attributes follow the table's, in the order given.
AttrList completeAttrs(const OpDef& def, AttrList given, const Location& loc);

// Result types for an op whose operands and attributes are set: inference merged with the
// declared types (which may be empty). Throws VerifyError on a mismatch.
std::vector<TensorType> resolveResultTypes(const Op& op, const std::vector<TensorType>& declared);

}  // namespace hbdk::ir
