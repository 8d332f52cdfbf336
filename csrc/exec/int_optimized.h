// Optimized integer kernels for the ops that carry nearly all MACs: si8 conv2d (grouped and
// depthwise), linear and matmul into si32 accumulators. Each matches int_reference bit for bit;
// an op outside their preconditions gets no optimized kernel and runs on the reference.
#pragma once

#include <memory>
#include <vector>

#include "exec/tensor.h"
#include "exec/thread_pool.h"
#include "ir/ir.h"

namespace hbdk::exec {

// One op's optimized kernel, prepared once per executor (weights that are constants are packed
// when it is made) and run any number of times, from any thread.
class OptimizedKernel {
 public:
  virtual ~OptimizedKernel() = default;
  // One tensor per operand in operand order (with the operands' types); returns the op's results.
  virtual std::vector<Tensor> run(const std::vector<const Tensor*>& inputs, ThreadPool& pool) const = 0;
};

// The optimized kernel for `op`, or nullptr when none applies: other element types (only si8 x si8
// -> si32 is optimized) or a reduction too long for exact int32 accumulation. `constants[i]` is
// operand i's value when it is a constant and nullptr otherwise.
std::unique_ptr<OptimizedKernel> makeOptimizedKernel(const ir::Op& op, const std::vector<const Tensor*>& constants);

// The ops makeOptimizedKernel has kernels for (under its preconditions), for the op coverage matrix.
const std::vector<const char*>& optimizedKernelOps();

// The longest si8 x si8 dot product whose int32 sum cannot overflow: |sum| <= K * 2^14 < 2^31.
constexpr int64_t kMaxExactInt8Reduction = (int64_t{1} << 17) - 1;

}  // namespace hbdk::exec
