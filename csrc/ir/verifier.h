// Structural verification of a module against the op table.
#pragma once

#include "ir/ir.h"

namespace hbdk::ir {

// Checks, in order: function signatures, SSA dominance and ownership, per-op operand arity,
// attribute names/kinds, inferred vs declared result types, quantization annotations, the
// op's own verifier, constants against their resources. Throws VerifyError on the first problem.
void verifyModule(const Module& m);
void verifyOp(const Op& op, const Module& m);

}  // namespace hbdk::ir
