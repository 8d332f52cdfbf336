// Small rewrite helpers shared by the passes: recognising constants and erasing what a rewrite
// left dead (a constant nobody reads, a resource no constant references).
#pragma once

#include <string_view>

#include "exec/float_reference.h"
#include "ir/ir.h"

namespace hbdk::passes {

// The `constant` op defining `v`, or nullptr when `v` is an argument or another op's result.
ir::Op* definingConstant(const ir::Value* v);

// Erases the constant op defining `v` when its result has no uses left, and then its resource
// when nothing references it any more. Returns true when the op was erased.
bool eraseConstantIfDead(ir::Module& m, ir::Function& fn, const ir::Value* v);

// The value of the f32 constant `c` for a pass that folds or quantizes it. A NaN or infinite
// element is a PassError naming the constant, its resource and the element: folded into other
// weights or quantized, it would turn into wrong integers without a word.
exec::FloatTensor finiteConstantValue(const ir::Module& m, const ir::Op& c);

}  // namespace hbdk::passes
