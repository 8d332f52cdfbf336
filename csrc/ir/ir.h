// The HBIR object model: Module > Function > Op, in SSA form. Ops are kept in a valid
// topological order inside their function; a value is a function argument or an op result.
#pragma once

#include <cstdint>
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

class Value {
 public:
  TensorType type;
  std::string name;     // name hint without '%'; the printer keeps it when unique
  Op* owner = nullptr;  // defining op, or nullptr for a function argument
  unsigned index = 0;   // result index in `owner`, or argument index

  bool isArgument() const { return owner == nullptr; }
};

// Attributes in the order the op table declares them.
using AttrList = std::vector<std::pair<std::string, Attribute>>;

class Op {
 public:
  Op(const OpDef* def, std::vector<Value*> operands, AttrList attrs, Location loc);

  const OpDef& def() const { return *def_; }
  const char* name() const { return def_->name; }
  bool is(std::string_view opName) const { return opName == def_->name; }

  std::vector<Value*> operands;
  std::vector<std::unique_ptr<Value>> results;
  AttrList attrs;
  Location loc;

  Value* operand(size_t i) const { return operands.at(i); }
  size_t numOperands() const { return operands.size(); }
  Value* result(size_t i = 0) const { return results.at(i).get(); }
  size_t numResults() const { return results.size(); }
  Value* addResult(TensorType t, std::string name = "");

  // Attribute access; a missing attribute falls back to the table default.
  bool hasAttr(std::string_view n) const;
  const Attribute& attr(std::string_view n) const;  // throws VerifyError if missing
  void setAttr(std::string_view n, Attribute v);
  int64_t getInt(std::string_view n) const { return attr(n).asInt(); }
  double getFloat(std::string_view n) const { return attr(n).asFloat(); }
  bool getBool(std::string_view n) const { return attr(n).asBool(); }
  const std::string& getString(std::string_view n) const { return attr(n).asString(); }
  const std::vector<int64_t>& getInts(std::string_view n) const { return attr(n).asInts(); }
  const std::vector<double>& getFloats(std::string_view n) const { return attr(n).asFloats(); }

  // "file:line:col: error: 'conv2d' op (loc("conv1")): <msg>"
  std::string diag(const std::string& msg) const;
  [[noreturn]] void error(const std::string& msg) const;

  Function* parent = nullptr;

 private:
  const OpDef* def_;
};

// A tensor payload in the module's resource section: raw little-endian bytes.
using Blob = std::vector<uint8_t>;

class Function {
 public:
  explicit Function(std::string name) : name(std::move(name)) {}

  std::string name;
  std::vector<std::unique_ptr<Value>> args;
  std::vector<std::unique_ptr<Op>> ops;
  std::vector<Value*> returns;
  Location returnLoc;

  Value* addArgument(TensorType t, std::string name = "");
  // Appends an op (or inserts it before `before`); returns it. Results are added by the caller
  // or by Module::createOp.
  Op* append(std::unique_ptr<Op> op);
  Op* insertBefore(const Op* before, std::unique_ptr<Op> op);
  // Removes an op whose results have no uses; throws PassError otherwise.
  void erase(Op* op);

  // All (user op, operand index) pairs reading `v`; a use by `return` is reported with user nullptr.
  std::vector<std::pair<Op*, unsigned>> uses(const Value* v) const;
  bool hasUses(const Value* v) const;
  void replaceAllUsesWith(const Value* from, Value* to);
  size_t indexOf(const Op* op) const;
};

class Module {
 public:
  explicit Module(std::string name = "main") : name(std::move(name)) {}

  std::string name;
  std::vector<std::unique_ptr<Function>> functions;

  Function* addFunction(std::string fnName);
  Function* function(std::string_view fnName) const;  // nullptr if absent

  // Resources keep their insertion order, so a parsed file prints back unchanged.
  bool hasResource(std::string_view key) const;
  const Blob& resource(std::string_view key) const;  // throws VerifyError if absent
  void setResource(const std::string& key, Blob data);
  void eraseResource(std::string_view key);
  const std::vector<std::pair<std::string, Blob>>& resources() const { return resources_; }
  // A key not yet in use, derived from `hint` ("conv1.weight", "conv1.weight_1", ...).
  std::string uniqueResourceKey(const std::string& hint) const;

  // Builds an op from the table: fills attribute defaults, checks operand arity, and infers the
  // result types (explicit `resultTypes` win; they are required where inference leaves the
  // element type open). Appends it to `fn` (or before `before`). Throws VerifyError.
  Op* createOp(Function* fn, std::string_view opName, std::vector<Value*> operands, AttrList attrs = {},
               std::vector<TensorType> resultTypes = {}, Location loc = {}, const Op* before = nullptr);
  // A `constant` op holding `data` (raw bytes of type `t`) under a new resource key.
  Op* createConstant(Function* fn, const std::string& keyHint, TensorType t, Blob data, Location loc = {},
                     const Op* before = nullptr);

 private:
  std::vector<std::pair<std::string, Blob>> resources_;
  std::map<std::string, size_t, std::less<>> resourceIndex_;
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
