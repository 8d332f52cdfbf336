// Structural verification of HBIR against the op table: value types, SSA dominance and
// ownership, operand arity, attributes, inferred vs declared result types, constants vs
// resources. Each check raises one line naming the op (Op::error) or the function.
#include "ir/verifier.h"

#include <cmath>
#include <unordered_set>

namespace hbdk::ir {

std::string tensorTypeProblem(const TensorType& t) {
  // Count only non-zero dims, so an empty tensor cannot hide a huge product among the others.
  int64_t elems = 1;
  for (int64_t d : t.shape) {
    if (d < 0) return "negative dimension " + std::to_string(d) + " in tensor<" + shapeStr(t.shape) + "x...>";
    if (d == 0) continue;
    if (d > kMaxTensorElements / elems) return "tensor<" + shapeStr(t.shape) + "x...> has more than 2^40 elements";
    elems *= d;
  }
  if (!t.quant) return "";
  const Quant& q = *t.quant;
  // On f32 a scale is a calibration annotation: the per-tensor scale the quantize pass gives the value.
  if (t.elem == ElemType::F32 && !q.perTensor())
    return "per-axis quantization scale on element type f32 (an f32 value carries at most one calibration scale)";
  if (!isInteger(t.elem) && t.elem != ElemType::F32)
    return std::string("quantization scale on element type ") + elemTypeName(t.elem) +
           " (only integer types carry a scale, and f32 a calibration scale)";
  if (q.perTensor()) {
    if (q.axis != -1) return "quantization axis must be >= 0 but got " + std::to_string(q.axis);
    if (q.scales.size() != 1) return "per-tensor quantization needs 1 scale but got " + std::to_string(q.scales.size());
  } else {
    if (q.axis >= t.rank())
      return "quantization axis " + std::to_string(q.axis) + " is out of range for rank " + std::to_string(t.rank());
    auto dim = t.shape[static_cast<size_t>(q.axis)];
    if (static_cast<int64_t>(q.scales.size()) != dim)
      return "per-axis quantization along axis " + std::to_string(q.axis) + " needs " + std::to_string(dim) +
             " scales but got " + std::to_string(q.scales.size());
  }
  for (float s : q.scales)
    if (!std::isfinite(s) || s <= 0.0f) return "quantization scale must be finite and > 0 but got " + formatFloat(s);
  return "";
}

namespace {

std::string valueLabel(const Value* v) {
  return v->name.empty() ? std::string("an unnamed value") : "'%" + v->name + "'";
}

void checkArity(const Op& op) {
  const OpDef& def = op.def();
  int n = static_cast<int>(op.numOperands());
  int lo = def.minOperands(), hi = def.maxOperands();
  if (n >= lo && (hi < 0 || n <= hi)) return;
  std::string expected = std::to_string(lo);
  if (hi < 0)
    expected += " or more";
  else if (hi != lo)
    expected += " to " + std::to_string(hi);
  op.error("expected " + expected + " operand(s) but got " + std::to_string(n));
}

void checkAttrs(const Op& op) {
  const OpDef& def = op.def();
  for (size_t i = 0; i < op.attrs.size(); ++i) {
    const auto& [name, value] = op.attrs[i];
    if (isDiscardableAttr(name)) {
      if (!isAttrName(name)) op.error("attribute name '" + name + "' is not an identifier ([A-Za-z_][A-Za-z0-9_.$-]*)");
      for (size_t j = 0; j < i; ++j)
        if (op.attrs[j].first == name) op.error("attribute '" + name + "' is given more than once");
      continue;
    }
    const AttrDef* ad = def.findAttr(name);
    if (!ad) op.error("unknown attribute '" + name + "'");
    if (value.kind() != ad->kind)
      op.error("attribute '" + name + "' expects " + attrKindName(ad->kind) + " but got " + attrKindName(value.kind()) +
               " " + value.str());
  }
  // Complete and in table order, then the discardable ones: what completeAttrs and Op::setAttr produce.
  size_t next = 0;
  for (const AttrDef& ad : def.attrs) {
    if (next < op.attrs.size() && op.attrs[next].first == ad.name) {
      ++next;
      continue;
    }
    op.error("expected attribute '" + std::string(ad.name) + "' at position " + std::to_string(next) + " but got " +
             (next < op.attrs.size() ? "'" + op.attrs[next].first + "'" : std::string("the end of the list")));
  }
  if (next != op.attrs.size() && !isDiscardableAttr(op.attrs[next].first))
    op.error("attribute '" + op.attrs[next].first + "' is given more than once");
  for (size_t i = next; i < op.attrs.size(); ++i)
    if (!isDiscardableAttr(op.attrs[i].first))
      op.error("attribute '" + op.attrs[i].first + "' must come before the discardable attributes");
}

void checkResources(const Op& op, const Module& m) {
  for (const auto& [name, value] : op.attrs) {
    if (value.kind() != AttrKind::Resource) continue;
    const std::string& key = value.asResource().key;
    if (!m.hasResource(key)) op.error("resource '" + key + "' is not in the module's resource section");
    if (!op.is("constant") || op.numResults() != 1) continue;
    const TensorType& t = op.result(0)->type;
    size_t have = m.resource(key).size();
    if (have != t.byteSize())
      op.error("resource '" + key + "' has " + std::to_string(have) + " bytes but " + t.str() + " needs " +
               std::to_string(t.byteSize()));
  }
}

[[noreturn]] void functionError(const Function& fn, const Location& where, const std::string& msg) {
  std::string prefix = where.hasFilePos() ? where.str() + ": " : "";
  throw VerifyError(prefix + "error: function @" + fn.name + ": " + msg);
}

}  // namespace

void verifyOp(const Op& op, const Module& m) {
  checkArity(op);
  for (size_t i = 0; i < op.numOperands(); ++i) {
    const Value* v = op.operand(i);
    if (!v) op.error("operand #" + std::to_string(i) + " is null");
    if (std::string p = tensorTypeProblem(v->type); !p.empty()) op.error("operand #" + std::to_string(i) + ": " + p);
  }
  checkAttrs(op);
  std::vector<TensorType> declared;
  for (size_t i = 0; i < op.numResults(); ++i) {
    const Value* r = op.result(i);
    if (r->owner != &op || r->index != i)
      op.error("result #" + std::to_string(i) + " does not record this op as its owner at index " + std::to_string(i));
    if (std::string p = tensorTypeProblem(r->type); !p.empty()) op.error("result #" + std::to_string(i) + ": " + p);
    declared.push_back(r->type);
  }
  std::vector<TensorType> resolved = resolveResultTypes(op, declared);
  if (resolved.size() != declared.size())
    op.error("expected " + std::to_string(resolved.size()) + " result(s) but the op has " +
             std::to_string(declared.size()));
  if (op.def().verify) op.def().verify(op);
  checkResources(op, m);
}

void verifyModule(const Module& m) {
  std::unordered_set<std::string> fnNames;
  for (const auto& fnPtr : m.functions) {
    const Function& fn = *fnPtr;
    if (!fnNames.insert(fn.name).second)
      throw VerifyError("error: module @" + m.name + ": function @" + fn.name + " is defined more than once");

    std::unordered_set<const Value*> defined;
    for (size_t i = 0; i < fn.args.size(); ++i) {
      const Value* a = fn.args[i].get();
      std::string label = "argument #" + std::to_string(i);
      if (!a->isArgument() || a->index != i) functionError(fn, {}, label + " does not record its own position");
      if (std::string p = tensorTypeProblem(a->type); !p.empty()) functionError(fn, {}, label + ": " + p);
      defined.insert(a);
    }
    for (const auto& opPtr : fn.ops) {
      const Op& op = *opPtr;
      if (op.parent() != &fn) op.error("is listed in function @" + fn.name + " but records another parent");
      for (size_t i = 0; i < op.numOperands(); ++i) {
        const Value* v = op.operand(i);
        if (v && !defined.count(v))
          op.error("operand #" + std::to_string(i) + " (" + valueLabel(v) +
                   ") is not defined before this op in function @" + fn.name);
      }
      verifyOp(op, m);
      for (const auto& r : op.results) defined.insert(r.get());
    }
    for (size_t i = 0; i < fn.returns().size(); ++i) {
      const Value* v = fn.returns()[i];
      if (!v) functionError(fn, fn.returnLoc, "return value #" + std::to_string(i) + " is null");
      if (!defined.count(v))
        functionError(fn, fn.returnLoc,
                      "return value #" + std::to_string(i) + " (" + valueLabel(v) + ") is not defined in the function");
    }
  }
}

}  // namespace hbdk::ir
