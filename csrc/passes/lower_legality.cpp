// lower, step 1: what the lower pass accepts (the rules at the top of lower.cpp), checked op by
// op before anything is emitted, so that an illegal graph fails naming the op at fault.
#include <string>

#include "passes/lower_internal.h"

namespace hbdk::passes::lowering {

namespace {

void checkValue(const ir::Op& op, const ir::Value* v, const std::string& what) {
  if (v->type.elem == ir::ElemType::F32)
    fail(op, "expected an integer " + what + " after quantization but got " + v->type.str() +
                 "; only quantize (at graph inputs) and dequantize (at graph outputs) may touch f32");
  if (!ir::isInteger(v->type.elem))
    fail(op, "expected an integer " + what + " but got " + v->type.str() + "; the BPU has no " +
                 ir::elemTypeName(v->type.elem) + " tensors");
  bool narrow = v->type.elem == ir::ElemType::SI8 || v->type.elem == ir::ElemType::SI16;
  bool constant = v->owner && v->owner->is("constant");
  if (narrow && !v->type.quant && !constant)
    fail(op, "expected a quantized " + what + " but " + v->type.str() + " has no scale");
}

}  // namespace

// An f32 graph input read by anything but quantize, or a dequantize result read by an op, shows
// up as an f32 operand of an integer op, whose message names both rules.
void checkLegal(const ir::Function& fn) {
  for (const auto& opPtr : fn.ops) {
    const ir::Op& op = *opPtr;
    if (op.is("constant")) {
      if (!op.result()->hasUses()) fail(op, "is read by no op; run canonicalize before lowering");
      continue;
    }
    if (ir::quantRule(op) == ir::QuantRule::FoldFirst)
      fail(op, "has no BPU instruction; fold it into the preceding conv/linear (fold-bn) before lowering");
    if (ir::quantRule(op) == ir::QuantRule::Lut)
      fail(op, "has no BPU instruction; the quantize pass rewrites it into lut");
    if (op.is("quantize")) {
      if (!op.operand(0)->isArgument()) fail(op, "is only legal on a graph input, but its operand is computed");
      checkValue(op, op.result(), "result");
      continue;
    }
    if (op.is("dequantize")) {
      checkValue(op, op.operand(0), "operand");
      continue;
    }
    if (!opcodeFor(op)) fail(op, "has no BPU instruction");
    for (size_t i = 0; i < op.numOperands(); ++i) {
      const ir::Value* v = op.operand(i);
      // layer_norm's affine parameters stay f32 constants (numerics §4), loaded like weights
      bool f32Parameter = ir::quantRule(op) == ir::QuantRule::Normalize && i > 0 && v->owner &&
                          v->owner->is("constant") && v->type.elem == ir::ElemType::F32;
      if (!f32Parameter) checkValue(op, v, "operand #" + std::to_string(i));
    }
    for (size_t i = 0; i < op.numResults(); ++i) checkValue(op, op.result(i), "result #" + std::to_string(i));
  }
  for (size_t i = 0; i < fn.returns().size(); ++i) {
    const ir::Value* v = fn.returns()[i];
    if (v->type.elem == ir::ElemType::F32 && !(v->owner && v->owner->is("dequantize")))
      throw ir::PassError("error: function @" + fn.name + " returns f32 result #" + std::to_string(i) +
                          " that is not produced by dequantize; graph outputs must come from the integer graph");
  }
}

}  // namespace hbdk::passes::lowering
