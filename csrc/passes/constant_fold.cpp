// constant-fold: evaluates, at compile time, f32 ops that only read constants, using the float
// reference kernels, and replaces them by constants.
//
// Algorithm, per function:
//   1. Walk a snapshot of the non-constant ops in order. Folding erases only the op being folded
//      and constants, so the snapshot stays valid.
//   2. An op folds when every operand is the result of a `constant`, every operand and result is
//      plain f32 (no quantization), its results total at most 16 MiB (larger ones would bloat the
//      module; the op computes them as fast at run time), and exec::evalOpFloat has a kernel.
//   3. Each result becomes a new constant inserted right before the op, under resource key
//      "<loc name or first result name>.folded", carrying the result's name.
//   4. Uses move to the new constants; the op is erased, then every operand constant that lost
//      its last use, with its resource when nothing references it any more.
// New constants sit where the op was, so a chain of foldable ops folds in a single walk.
#include <algorithm>

#include "exec/float_reference.h"
#include "passes/pass.h"
#include "passes/pass_utils.h"

namespace hbdk::passes {

namespace {

constexpr size_t kMaxFoldedBytes = size_t{16} << 20;

bool isPlainF32(const ir::Value* v) { return v->type.elem == ir::ElemType::F32 && !v->type.quant; }

class ConstantFoldPass : public Pass {
 public:
  const char* name() const override { return "constant-fold"; }
  const char* summary() const override {
    return "evaluate f32 ops whose operands are all constants and replace them by constants";
  }

  PassStatistics run(ir::Module& m, PassContext&) override {
    PassStatistics stats{{"folded", 0}, {"skipped-too-large", 0}};
    for (auto& fn : m.functions) {
      std::vector<ir::Op*> candidates;
      for (auto& op : fn->ops)
        if (!op->is("constant")) candidates.push_back(op.get());
      for (ir::Op* op : candidates) {
        if (!foldable(*op)) continue;
        size_t bytes = 0;
        for (const auto& r : op->results) bytes += r->type.byteSize();
        if (bytes > kMaxFoldedBytes) {
          ++stats["skipped-too-large"];
          continue;
        }
        if (fold(m, *fn, op)) ++stats["folded"];
      }
    }
    return stats;
  }

 private:
  static bool foldable(const ir::Op& op) {
    if (!exec::hasFloatKernel(op) || op.numOperands() == 0) return false;
    for (const ir::Value* v : op.operands())
      if (!definingConstant(v) || !isPlainF32(v)) return false;
    for (const auto& r : op.results)
      if (!isPlainF32(r.get())) return false;
    return true;
  }

  static bool fold(ir::Module& m, ir::Function& fn, ir::Op* op) {
    std::vector<exec::FloatTensor> inputs;
    for (const ir::Value* v : op->operands()) inputs.push_back(finiteConstantValue(m, *v->owner));
    std::optional<std::vector<exec::FloatTensor>> outputs = exec::evalOpFloat(*op, inputs);
    if (!outputs) return false;

    std::string base = !op->loc.name.empty()         ? op->loc.name
                       : !op->result()->name.empty() ? op->result()->name
                                                     : "const";
    for (size_t i = 0; i < op->numResults(); ++i) {
      ir::Value* old = op->result(i);
      ir::Op* c =
          m.createConstant(&fn, base + ".folded", old->type, exec::blobFromFloatTensor((*outputs)[i]), op->loc, op);
      c->result()->name = old->name;
      old->replaceAllUsesWith(c->result());
    }
    std::vector<ir::Value*> operands;  // each once: erasing a constant frees its result
    for (ir::Value* v : op->operands())
      if (std::find(operands.begin(), operands.end(), v) == operands.end()) operands.push_back(v);
    fn.erase(op);
    for (const ir::Value* v : operands) eraseConstantIfDead(m, fn, v);
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> createConstantFoldPass() { return std::make_unique<ConstantFoldPass>(); }

}  // namespace hbdk::passes
