// Checking helpers shared by the op table's shape inference and verifiers (ops.cpp): operand
// ranks and dims, attribute lists and enums, overflow-safe shape arithmetic, broadcasting and
// sliding windows. Every failure is a one-line "expected ... but got ..." raised via Op::error.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "ir/ir.h"
#include "ir/verifier.h"

namespace hbdk::ir::shape_infer {

using Results = std::vector<InferredType>;
using Ints = std::vector<int64_t>;

// The verifier's bound on any tensor (2^40 elements): far beyond any NPU model, and small enough
// that products of dims, strides and kernel sizes stay far from int64 overflow. Unlike a value's
// type, an op's operands and results must also be non-empty (every dim >= 1).
constexpr int64_t kMaxElements = kMaxTensorElements;
// Shape-affecting attribute values (strides, paddings, sizes, ...) stay in int32 range.
constexpr int64_t kMaxAttrInt = 2147483647;

// ---- Operands and results ----

// "operand #1 (weight)"; a variadic operand's name is shared by all its values.
std::string operandLabel(const Op& op, size_t i);
std::string resultLabel(const Op& op, size_t i);  // "result #1 (indices)"
const TensorType& operandType(const Op& op, size_t i);
bool hasOperand(const Op& op, size_t i);
[[noreturn]] void operandError(const Op& op, size_t i, const std::string& expected);

const TensorType& checkRank(const Op& op, size_t i, int64_t rank);
const TensorType& checkMinRank(const Op& op, size_t i, int64_t minRank);
// Operand i's dim `axis` must equal `expected`; `why` says where that number comes from.
void checkDim(const Op& op, size_t i, size_t axis, int64_t expected, const std::string& why);
// Float and integer tensors do not mix: operand i must be f32 exactly when operand `ref` is.
void checkSameFloatness(const Op& op, size_t i, size_t ref);

// ---- Attributes ----

[[noreturn]] void attrError(const Op& op, const char* name, const std::string& expected);
// Exactly n values, each in [lo, kMaxAttrInt].
Ints positiveInts(const Op& op, const char* name, size_t n);
Ints nonNegativeInts(const Op& op, const char* name, size_t n);
int64_t positiveInt(const Op& op, const char* name);
// An axis in [-rank, rank) mapped to [0, rank).
int64_t normalizeAxis(const Op& op, const char* name, int64_t axis, int64_t rank);
const std::string& enumAttr(const Op& op, const char* name, std::initializer_list<const char*> allowed);

// ---- Arithmetic ----

// Rejects any intermediate past 2^60, so that the sums around it cannot overflow either.
// Operand i holds si32 positions.
void checkIndexOperand(const Op& op, size_t i);
// Result i (when present) holds plain si32 positions: a scale on them would mean nothing.
void checkIndexResult(const Op& op, size_t i);

int64_t mulChecked(const Op& op, int64_t a, int64_t b);
int64_t product(const Op& op, Shape::const_iterator begin, Shape::const_iterator end);
// MAC counts are statistics, not shapes: they saturate at INT64_MAX instead of failing.
int64_t macProduct(std::initializer_list<int64_t> factors);

// What is wrong with a shape (a dim below 1, more than kMaxElements elements), or nullptr.
const char* shapeProblem(const Shape& s);
// Numpy broadcasting of a and b (taken from operands i and j, named in the message).
Shape broadcastShapes(const Op& op, const Shape& a, const Shape& b, size_t i, size_t j);

// Output length of one spatial axis ("height"/"width") of a conv or pool window; fails when the
// dilated kernel does not fit the padded input. ceilMode follows PyTorch: a window may not
// start in the end padding.
int64_t windowOutput(const Op& op, const char* axisName, int64_t in, int64_t kernel, int64_t stride, int64_t padBegin,
                     int64_t padEnd, int64_t dilation, bool ceilMode = false);

// ---- Element types ----

// Compute ops: f32 in gives f32 out; on integer inputs the declared result type decides.
inline std::optional<ElemType> floatOrOpen(const TensorType& t) {
  return isFloat(t.elem) ? std::optional<ElemType>(ElemType::F32) : std::nullopt;
}
inline InferredType computeResult(Shape s, const TensorType& input) { return {std::move(s), floatOrOpen(input)}; }
// Data-movement ops keep the input's element type.
inline InferredType sameElem(Shape s, const TensorType& input) { return {std::move(s), input.elem}; }

// Wraps an infer function: operand shapes are checked before it runs, result shapes after.
void checkOperandShapes(const Op& op);
void checkResultShapes(const Op& op, const Results& rs);
template <InferFn F>
Results checked(const Op& op) {
  checkOperandShapes(op);
  Results rs = F(op);
  checkResultShapes(op, rs);
  return rs;
}

}  // namespace hbdk::ir::shape_infer
