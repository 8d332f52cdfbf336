// Structural verification of a module against the op table.
#pragma once

#include "ir/ir.h"

namespace hbdk::ir {

// Checks, in order: function signatures, SSA dominance and ownership, per-op operand arity,
// attribute names/kinds, inferred vs declared result types, quantization annotations, the
// op's own verifier, constants against their resources. Throws VerifyError on the first problem.
void verifyModule(const Module& m);
void verifyOp(const Op& op, const Module& m);

// Largest element count of any tensor type; keeps every size computation far from overflow.
constexpr int64_t kMaxTensorElements = int64_t{1} << 40;
// Why `t` cannot be a value's type (negative dimension, more than kMaxTensorElements elements,
// malformed quantization), or "" when it can. The parser reports it at the type's position.
std::string tensorTypeProblem(const TensorType& t);

}  // namespace hbdk::ir
