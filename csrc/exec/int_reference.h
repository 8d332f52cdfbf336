// Integer reference kernels: one readable loop nest per op, stating docs/numerics.md exactly.
// They define the board's results; optimized kernels must match them bit for bit.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "exec/tensor.h"
#include "ir/ir.h"

namespace hbdk::exec {

// Whether `op` (with its operand and result types) has an integer kernel: at least one operand
// or result is an integer type and the op has integer semantics in docs/numerics.md.
bool hasIntKernel(const ir::Op& op);
// Whether an op of this name has an integer reference kernel at all (the op coverage matrix).
bool intKernelExists(std::string_view opName);

// Evaluates one op; one Tensor per operand (operand order), one per result (with the result's
// declared type). Requantization parameters come from computeRequant on the types' scales, or
// from the op's `multiplier`/`shift` attributes where it has them. Throws ir::Error naming the
// op when its types break the integer rules (e.g. a missing scale).
std::vector<Tensor> evalOpInt(const ir::Op& op, const std::vector<const Tensor*>& inputs);

}  // namespace hbdk::exec
