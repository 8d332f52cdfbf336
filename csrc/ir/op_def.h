// The op table's record type. Every HBIR op is declared exactly once, in ops.cpp, as an OpDef;
// the parser, printer, verifier, Python bindings and docs/ops.md all read it from there.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "ir/attributes.h"
#include "ir/types.h"

namespace hbdk::ir {

class Op;

enum class Arity : uint8_t {
  One,       // exactly one value
  Optional,  // zero or one; only trailing operands may be optional
  Variadic,  // zero or more; at most one variadic operand/result, and it is the last
};

struct OperandDef {
  const char* name;
  Arity arity;
  const char* doc;
};

struct ResultDef {
  const char* name;
  Arity arity;  // One or Variadic
  const char* doc;
};

struct AttrDef {
  const char* name;
  AttrKind kind;
  std::optional<Attribute> defaultValue;  // nullopt: the attribute is required
  const char* doc;
};

// What shape inference knows about one result. `elem` is nullopt when the element type is not
// implied by the operands (e.g. the integer output type of a quantized conv, or `quantize`), in
// which case the declared result type decides it; `shape` is nullopt only where nothing but the
// declaration can give it (a `constant`). Quantization scales are never inferred.
struct InferredType {
  std::optional<Shape> shape;
  std::optional<ElemType> elem;
};

// Shape inference; also checks everything shapes depend on (operand ranks, attribute ranges).
// Throws VerifyError via Op::error().
using InferFn = std::vector<InferredType> (*)(const Op& op);
// Extra checks that do not affect shapes (element types, quantization rules). May be null.
using VerifyFn = void (*)(const Op& op);
// Multiply-accumulates of one execution. May be null (then 0).
using MacsFn = int64_t (*)(const Op& op);

struct OpDef {
  const char* name;
  const char* summary;  // one line, shown in docs/ops.md and `hbdk-sim ops`
  std::vector<OperandDef> operands;
  std::vector<ResultDef> results;
  std::vector<AttrDef> attrs;
  InferFn infer;
  VerifyFn verify = nullptr;
  MacsFn macs = nullptr;
  const char* example = "";  // one line of IR text, shown in docs/ops.md

  const AttrDef* findAttr(std::string_view n) const;
  int minOperands() const;
  int maxOperands() const;  // -1: unbounded
};

// The table, in declaration order.
const std::vector<OpDef>& opTable();
// nullptr when no op has this name.
const OpDef* lookupOp(std::string_view name);

}  // namespace hbdk::ir
