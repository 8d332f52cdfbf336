// fold-bn: folds an inference batch_norm into the conv2d / conv_transpose2d / linear feeding it,
// so that the NPU sees one conv with adjusted weights and bias instead of two ops.
//
// Algorithm, per function, for each batch_norm (a snapshot, in order):
//   1. Match: the bn input is the result of a conv2d / conv_transpose2d / linear that nobody else
//      reads; that result and the bn's are f32 (calibration scales allowed); the weight, the bias
//      (if any) and the four bn params are plain f32 constants. linear only when its result is
//      [N, C]. The folded conv result takes the bn result's type, scale included, and the bn's
//      `quant.dtype` (the conv's own is dropped: it described a value that no longer exists).
//   2. scale[c] = gamma[c] / sqrt(var[c] + eps), in double.
//   3. w'[.., c, ..] = w * scale[c] along the weight's output-channel axis: axis 0 for conv2d and
//      linear; for conv_transpose2d ([Cin, Cout/groups, kh, kw]) output channel
//      c = (i / (Cin/groups)) * (Cout/groups) + j for weight element [i, j, ..].
//      b'[c] = (b[c] - mean[c]) * scale[c] + beta[c], with b = 0 when the conv has none.
//   4. Store w' and b' (f32): in place when the conv is the constant's only reader and no other
//      constant shares its resource (names and keys stay); otherwise as new constants before the
//      conv. A conv without bias gets a new bias operand. The conv keeps its loc.
//   5. The bn's uses move to the conv result; the bn is erased, then every constant it or the
//      old weight/bias left unread, with resources nothing references any more.
#include <algorithm>
#include <cmath>

#include "exec/float_reference.h"
#include "passes/pass.h"
#include "passes/pass_utils.h"

namespace hbdk::passes {

namespace {

// The discardable attribute asking quantize for an si16 result.
const char* const kQuantDtype = "quant.dtype";

bool isPlainF32(const ir::Value* v) { return v->type.elem == ir::ElemType::F32 && !v->type.quant; }
// Activations may carry a calibration scale; after folding, the conv produces what the bn did.
bool isF32(const ir::Value* v) { return v->type.elem == ir::ElemType::F32; }
bool isF32Constant(const ir::Value* v) { return definingConstant(v) && isPlainF32(v); }

class FoldBnPass : public Pass {
 public:
  const char* name() const override { return "fold-bn"; }
  const char* summary() const override {
    return "fold batch_norm into the preceding conv2d, conv_transpose2d or linear (constant weights)";
  }

  PassStatistics run(ir::Module& m, PassContext&) override {
    PassStatistics stats{{"folded", 0}};
    for (auto& fn : m.functions) {
      std::vector<ir::Op*> bns;
      for (auto& op : fn->ops)
        if (op->is("batch_norm")) bns.push_back(op.get());
      for (ir::Op* bn : bns)
        if (fold(m, *fn, bn)) ++stats["folded"];
    }
    return stats;
  }

 private:
  static bool matches(const ir::Op& bn) {
    ir::Op* conv = bn.operand(0)->owner;
    if (!conv || conv->def().traits.quant != ir::QuantRule::Weighted) return false;
    if (conv->result()->uses().size() != 1 || !isF32(conv->result())) return false;
    if (conv->is("linear") && conv->result()->type.rank() != 2) return false;
    for (size_t i = 1; i < conv->numOperands(); ++i)
      if (!isF32Constant(conv->operand(i))) return false;
    for (size_t i = 1; i < 5; ++i)
      if (!isF32Constant(bn.operand(i))) return false;
    return isF32(bn.result());
  }

  // Output channel of each weight element, in the weight's row-major order.
  static std::vector<int64_t> outputChannelOf(const ir::Op& conv) {
    const ir::Shape& w = conv.operand(1)->type.shape;
    int64_t numel = ir::numElements(w);
    std::vector<int64_t> channel(static_cast<size_t>(numel));
    if (!conv.is("conv_transpose2d")) {
      int64_t perChannel = numel / w[0];
      for (int64_t e = 0; e < numel; ++e) channel[e] = e / perChannel;
      return channel;
    }
    int64_t groups = conv.getInt("groups"), cinG = w[0] / groups, coutG = w[1], kernel = w[2] * w[3];
    for (int64_t e = 0; e < numel; ++e) {
      int64_t i = e / (coutG * kernel), j = (e / kernel) % coutG;
      channel[e] = (i / cinG) * coutG + j;
    }
    return channel;
  }

  // Gives `conv` operand `index` the value `data`: rewrites the constant in place when nothing
  // else can observe it, else creates a new constant. Returns the old value when it was replaced.
  static ir::Value* store(ir::Module& m, ir::Function& fn, ir::Op* conv, size_t index, const exec::FloatTensor& data) {
    ir::Value* old = conv->operand(index);
    const std::string key = old->owner->attr("value").asResource().key;
    if (old->uses().size() == 1 && m.resourceRefs(key) == 1) {
      m.setResource(key, exec::blobFromFloatTensor(data));
      return nullptr;
    }
    ir::Op* c =
        m.createConstant(&fn, key + ".folded", old->type, exec::blobFromFloatTensor(data), old->owner->loc, conv);
    c->result()->name = c->attr("value").asResource().key;
    conv->setOperand(index, c->result());
    return old;
  }

  static std::string biasKeyHint(const ir::Op& conv) {
    if (!conv.loc.name.empty()) return conv.loc.name + ".bias";
    std::string w = conv.operand(1)->owner->attr("value").asResource().key;
    const std::string suffix = "weight";
    if (w.size() > suffix.size() && w.compare(w.size() - suffix.size(), suffix.size(), suffix) == 0)
      return w.substr(0, w.size() - suffix.size()) + "bias";
    return w + ".bias";
  }

  static bool fold(ir::Module& m, ir::Function& fn, ir::Op* bn) {
    if (!matches(*bn)) return false;
    ir::Op* conv = bn->operand(0)->owner;
    auto param = [&](size_t i) { return finiteConstantValue(m, *bn->operand(i)->owner); };
    exec::FloatTensor mean = param(1), var = param(2), gamma = param(3), beta = param(4);
    double eps = bn->getFloat("eps");
    size_t channels = mean.data.size();
    std::vector<double> scale(channels);
    for (size_t c = 0; c < channels; ++c) scale[c] = gamma.data[c] / std::sqrt(static_cast<double>(var.data[c]) + eps);

    exec::FloatTensor weight = finiteConstantValue(m, *conv->operand(1)->owner);
    std::vector<int64_t> channelOf = outputChannelOf(*conv);
    for (size_t e = 0; e < weight.data.size(); ++e)
      weight.data[e] = static_cast<float>(weight.data[e] * scale[channelOf[e]]);
    bool hasBias = conv->numOperands() > 2;
    exec::FloatTensor bias = hasBias ? finiteConstantValue(m, *conv->operand(2)->owner)
                                     : exec::FloatTensor(ir::Shape{static_cast<int64_t>(channels)});
    for (size_t c = 0; c < channels; ++c)
      bias.data[c] = static_cast<float>((static_cast<double>(bias.data[c]) - mean.data[c]) * scale[c] + beta.data[c]);

    std::vector<ir::Value*> maybeDead(bn->operands().begin() + 1, bn->operands().end());
    if (ir::Value* old = store(m, fn, conv, 1, weight)) maybeDead.push_back(old);
    if (hasBias) {
      if (ir::Value* old = store(m, fn, conv, 2, bias)) maybeDead.push_back(old);
    } else {
      ir::TensorType t(bias.shape, ir::ElemType::F32);
      ir::Op* c = m.createConstant(&fn, biasKeyHint(*conv), t, exec::blobFromFloatTensor(bias), {}, conv);
      c->result()->name = c->attr("value").asResource().key;
      conv->addOperand(c->result());
    }

    conv->result()->type = bn->result()->type;  // the bn output's calibration scale, if any
    // ... and the element type that scale was measured for (quant.dtype = "si16" from calibrate).
    conv->removeAttr(kQuantDtype);
    if (bn->hasAttr(kQuantDtype)) conv->setAttr(kQuantDtype, bn->attr(kQuantDtype));
    bn->result()->replaceAllUsesWith(conv->result());
    fn.erase(bn);
    std::vector<ir::Value*> unique;  // each once: erasing a constant frees its result
    for (ir::Value* v : maybeDead)
      if (std::find(unique.begin(), unique.end(), v) == unique.end()) unique.push_back(v);
    for (ir::Value* v : unique) eraseConstantIfDead(m, fn, v);
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> createFoldBnPass() { return std::make_unique<FoldBnPass>(); }

}  // namespace hbdk::passes
