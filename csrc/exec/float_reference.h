// Float reference kernels: one plain, readable loop nest per op, written for correctness and
// used as the oracle by constant folding, pass tests and (later) the float executor. Tensors are
// dense row-major f32; output shapes come from the op's (verified) result types.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "ir/ir.h"

namespace hbdk::exec {

struct FloatTensor {
  ir::Shape shape;
  std::vector<float> data;

  FloatTensor() = default;
  FloatTensor(ir::Shape s, std::vector<float> d) : shape(std::move(s)), data(std::move(d)) {}
  explicit FloatTensor(ir::Shape s, float fill = 0.0f)
      : shape(std::move(s)), data(static_cast<size_t>(ir::numElements(shape)), fill) {}

  int64_t numel() const { return static_cast<int64_t>(data.size()); }
};

// Raw little-endian f32 bytes (a resource's payload) <-> FloatTensor. Throws ir::VerifyError when
// the byte count does not match the shape.
FloatTensor floatTensorFromBlob(const ir::Shape& shape, const ir::Blob& bytes);
ir::Blob blobFromFloatTensor(const FloatTensor& t);

// The f32 payload of a `constant` op's result.
FloatTensor constantValue(const ir::Module& m, const ir::Op& constantOp);

// Whether `op` has a float reference kernel (constants excluded: they have no inputs to compute from).
// Every op whose operands and results can all be f32 has one. The integer-only ops (quantize,
// dequantize, requantize, lut) have none, nor do the ops with an si32 index operand or result
// (gather, point_pillar_scatter, argmax, topk): the Executor runs those on f32 data through the
// integer reference kernels, whose data movement and ordering are element-type generic.
bool hasFloatKernel(const ir::Op& op);
// Whether an op of this name has a float reference kernel at all (the op coverage matrix).
bool floatKernelExists(std::string_view opName);

// Evaluates one op on float inputs, one FloatTensor per operand in operand order; returns one
// tensor per result. nullopt when the op has no float kernel, which callers treat as "cannot
// evaluate in float", not as an error.
std::optional<std::vector<FloatTensor>> evalOpFloat(const ir::Op& op, const std::vector<FloatTensor>& inputs);

// Runs a whole function in float: arguments in order, returns in order. Throws ir::PassError
// naming the op when an op has no float kernel or an operand type is not f32.
std::vector<FloatTensor> runFunctionFloat(const ir::Module& m, const ir::Function& fn,
                                          const std::vector<FloatTensor>& args);

}  // namespace hbdk::exec
