// quantize: rewrites a calibrated float graph (every f32 activation carries a per-tensor scale on
// its type) into the integer graph of docs/numerics.md, which check-constraints, lower and the
// bit-exact executor consume. The function signatures stay f32.
//
// Algorithm, per function:
//   1. Each used f32 argument gets `quantize` to si8 at its calibration scale, first in the body;
//      the argument keeps its name and loses the annotation, the si8 value is `<name>.q`.
//   2. Ops in order (every earlier activation is already integer when an op is reached):
//      - conv2d / conv_transpose2d / linear: the weight becomes si8 with one scale per output
//        channel, s_w[c] = max|w[c]| / 127 (1.0 for an all-zero channel, whose bias then keeps
//        the input's precision), q = sat(round_half_even(w / s_w)) in float64. The axis is 0, or
//        1 for conv_transpose2d ([Cin, Cout/groups, kh, kw]): output channel c then uses
//        s_w[c mod Cout/groups]. The bias becomes si32 at s_acc[c] = f32(s_in * s_w[c]).
//        The op yields the si32 accumulator (scale s_acc on axis 1, or the last axis for linear)
//        and a `requantize` to the annotated scale follows with multiplier/shift per channel
//        from exec::computeRequant(s_acc[c] / s_out).
//      - matmul: si32 at s_a * s_b, then `requantize` (one pair).
//      - relu / relu6 / clip reading the requantized result of a conv2d / conv_transpose2d /
//        linear as its only reader: that requantize is retargeted to the clamp's annotated scale
//        and target element type (computeRequant(s_acc[c] / s_clamp)), and the clamp works at
//        that type. One rounding, and fuse makes conv + requantize + clamp one instruction.
//      - other relu / relu6 / clip: integer clamps at the input's type; a `requantize` follows
//        when the annotated scale or the target element type differs from the input's.
//      - leaky_relu / sigmoid / tanh / exp: `lut(x, table)` with the table of exec::buildLut
//        (docs/numerics.md §5) in the target element type.
//      - layer_norm: the input is quantized, its f32 weight and bias stay (the kernel derives its
//        per-channel requantization from them); the result takes the target type and scale.
//      - add, sub, mul, concat, avg_pool2d, global_avg_pool2d, softmax, bilinear resize2d: the
//        op stays; its result takes the target type and annotated scale (the op's integer
//        semantics rescale). A concat input of another element type than the target is
//        requantized to the target type and the result's scale first.
//      - data movement (split, slice, reshape, flatten, transpose, gather, point_pillar_scatter,
//        max_pool2d, pad, nearest resize2d, topk values): the result takes the input's element
//        type and scale; an annotation there is not needed and is dropped, since moving values
//        cannot change their scale. Except a constant pad value that the input's type cannot
//        represent: the input is requantized to the annotated result scale (and the target
//        element type) first when that holds the value (widenPadInput).
//      The target element type is si8, or si16 where the op has `quant.dtype = "si16"`.
//      An f32 constant read as an activation (add(x, c), ...) becomes si8 (si16 where the
//      constant has `quant.dtype = "si16"`) at its own annotated scale, or si8 at max|c| / 127
//      (per tensor) when it has none.
//   3. Each returned integer value gets `dequantize` at the end; the f32 result takes the
//      returned value's name and the integer value becomes `<name>.q`.
//   4. f32 constants nobody reads any more, and their resources, are erased.
// A function that is already integer (only integer ops between its quantize and dequantize
// boundary) is left as it is, so the pass is idempotent and `compile` takes integer graphs; a mix
// of integer ops and f32 compute is an error.
// A constant is rewritten in place (same resource key) when it is its reader's alone, otherwise
// copied. A missing scale is a PassError naming the value and saying to calibrate first.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "exec/float_reference.h"
#include "exec/layer_norm.h"
#include "exec/lut.h"
#include "exec/requant.h"
#include "exec/tensor.h"
#include "passes/pass.h"
#include "passes/pass_utils.h"

namespace hbdk::passes {

namespace {

using ir::ElemType;
using Ints = std::vector<int64_t>;

const char* const kCalibrate =
    "; calibrate the float model first (hbdk_sim.calibration.calibrate, or scales from the torch front end) "
    "so that every activation carries a scale";

bool isWeighted(const ir::Op& op) { return op.def().traits.quant == ir::QuantRule::Weighted; }
// The axis of a weight that holds its output channels ([Cin, Cout/groups, kh, kw] for conv_transpose2d).
int64_t weightAxis(const ir::Op& op) { return op.def().traits.weightAxis; }

bool isF32(const ir::Value* v) { return v->type.elem == ElemType::F32; }

std::string valueLabel(const ir::Value* v) {
  return v->name.empty() ? std::string("an unnamed value") : "'%" + v->name + "'";
}

double roundHalfEven(double x) { return std::nearbyint(x); }  // the default rounding mode is to nearest, ties even

// NaN becomes 0, as in `quantize` (docs/numerics.md §3).
int64_t saturated(double x, ElemType t) {
  if (std::isnan(x)) return 0;
  double lo = static_cast<double>(exec::minOf(t)), hi = static_cast<double>(exec::maxOf(t));
  return static_cast<int64_t>(std::clamp(x, lo, hi));
}

ir::TensorType quantizedType(const ir::Shape& shape, ElemType elem, float scale) {
  return ir::TensorType(shape, elem, ir::Quant{{scale}, -1});
}

class Quantizer {
 public:
  Quantizer(ir::Module& m, ir::Function& fn, PassStatistics& stats) : m_(m), fn_(fn), stats_(stats) {}

  // Returns false when the function is already integer (quantize's own output, e.g. a graph
  // exported from the int_infer model): there is nothing to do.
  bool needsQuantization() const {
    const ir::Op* integerOp = nullptr;
    const ir::Op* floatOp = nullptr;
    for (auto& op : fn_.ops) {
      if (ir::quantRule(*op) == ir::QuantRule::Integer) {
        if (!integerOp) integerOp = op.get();
      } else if (!op->is("constant") && !floatOp) {
        for (const auto& r : op->results)
          if (r->type.elem == ElemType::F32) floatOp = op.get();
      }
    }
    if (!integerOp) return true;
    if (floatOp)
      throw ir::PassError(
          floatOp->diag("expected a float graph or an integer one but found float ops beside integer ops (such as '" +
                        std::string(integerOp->name()) + "'); quantize takes the calibrated float model"));
    return false;
  }

  void run() {
    if (!needsQuantization()) {
      stats_["already_integer"] = 1;
      return;
    }
    quantizeArguments();
    std::vector<ir::Op*> snapshot;
    for (auto& op : fn_.ops) snapshot.push_back(op.get());
    for (ir::Op* op : snapshot)
      if (!op->is("constant") && !startOps_.count(op)) rewrite(op);
    dequantizeReturns();
    // Each once: erasing a constant frees its result.
    std::sort(oldConstants_.begin(), oldConstants_.end());
    oldConstants_.erase(std::unique(oldConstants_.begin(), oldConstants_.end()), oldConstants_.end());
    for (ir::Value* v : oldConstants_) eraseConstantIfDead(m_, fn_, v);
  }

 private:
  // ---- scales and types ----

  float scaleOf(const ir::Op& op, const ir::Value* v) const {
    if (!v->type.quant || !v->type.quant->perTensor())
      throw ir::PassError(
          op.diag("result " + valueLabel(v) + " (" + v->type.str() + ") has no calibration scale" + kCalibrate));
    return v->type.quant->scales[0];
  }

  static ElemType targetElem(const ir::Op& op) {
    if (!op.hasAttr("quant.dtype")) return ElemType::SI8;
    const ir::Attribute& a = op.attr("quant.dtype");
    if (a.kind() == ir::AttrKind::String && (a.asString() == "si8" || a.asString() == "si16"))
      return a.asString() == "si8" ? ElemType::SI8 : ElemType::SI16;
    throw ir::PassError(op.diag("expected quant.dtype = \"si8\" or \"si16\" but got " + a.str()));
  }

  // The operand as an integer activation with a per-tensor scale (f32 constants are quantized).
  ir::Value* activation(ir::Op* op, size_t i) {
    ir::Value* v = op->operand(i);
    if (isF32(v) && definingConstant(v)) {
      v = quantizedActivationConstant(op, v);
      op->setOperand(i, v);
    }
    const ir::TensorType& t = v->type;
    if ((t.elem != ElemType::SI8 && t.elem != ElemType::SI16) || !t.quant || !t.quant->perTensor())
      throw ir::PassError(op->diag("operand #" + std::to_string(i) + " (" + valueLabel(v) +
                                   "): expected an si8 or si16 activation with one scale but got " + t.str()));
    return v;
  }

  static Ints requantAttr(const std::vector<exec::Requant>& r, bool shifts) {
    Ints out;
    for (const exec::Requant& x : r) out.push_back(shifts ? x.shift : x.multiplier);
    return out;
  }

  static exec::Requant requantFor(const ir::Op& op, double ratio) {
    try {
      return exec::computeRequant(ratio);
    } catch (const ir::Error& e) {
      throw ir::PassError(op.diag(std::string("cannot requantize: ") + e.what()));
    }
  }

  // ---- constants ----

  // Gives `op` operand `index` a constant of type `t` holding `bytes`: in place when every reader
  // of the old constant wants this same content (`sharedBy`) and no other constant shares its
  // resource, otherwise as a new constant before `op`.
  template <typename Pred>
  ir::Value* storeConstant(ir::Op* op, size_t index, ir::TensorType t, ir::Blob bytes, Pred sharedBy) {
    ir::Value* old = op->operand(index);
    ir::Op* c = definingConstant(old);
    const std::string key = c->attr("value").asResource().key;
    bool shared = true;
    for (const ir::Use& u : old->uses()) shared = shared && u.user && sharedBy(*u.user, u.index);
    if (shared && m_.resourceRefs(key) == 1) {
      m_.setResource(key, std::move(bytes));
      old->type = std::move(t);
      return old;
    }
    ir::Op* fresh = m_.createConstant(&fn_, key, std::move(t), std::move(bytes), c->loc, op);
    fresh->result()->name = fresh->attr("value").asResource().key;
    op->setOperand(index, fresh->result());
    oldConstants_.push_back(old);
    return fresh->result();
  }

  static ir::Blob integerBlob(const ir::TensorType& t, const Ints& values) {
    exec::Tensor out(t);
    for (size_t i = 0; i < values.size(); ++i) out.setInt(i, values[i]);
    return out.bytes;
  }

  ir::Value* quantizedActivationConstant(ir::Op* user, ir::Value* v) {
    if (auto it = activationConstants_.find(v); it != activationConstants_.end()) return it->second;
    exec::FloatTensor data = finiteConstantValue(m_, *v->owner);
    float scale = 0;
    ElemType elem = ElemType::SI8;
    if (v->type.quant) {
      scale = v->type.quant->scales[0];
      elem = targetElem(*v->owner);  // the element type its quantizer measured the scale for
    } else {
      double amax = 0;
      for (float x : data.data) amax = std::max(amax, std::fabs(static_cast<double>(x)));
      scale = channelScale(amax);
    }
    Ints q;
    for (float x : data.data) q.push_back(saturated(roundHalfEven(x / static_cast<double>(scale)), elem));
    ir::TensorType t = quantizedType(v->type.shape, elem, scale);
    ir::Blob bytes = integerBlob(t, q);
    size_t index = 0;
    while (user->operand(index) != v) ++index;
    // Every reader but a weight or bias reads the same per-tensor quantization.
    ir::Value* out = storeConstant(user, index, std::move(t), std::move(bytes),
                                   [](const ir::Op& o, unsigned i) { return !(isWeighted(o) && i > 0); });
    activationConstants_[v] = out;
    ++stats_["constants"];
    return out;
  }

  // max|x| / 127 as an f32 scale; 1.0 for an all-zero (or denormal) range, which any scale
  // represents exactly.
  static float channelScale(double amax) {
    float s = static_cast<float>(amax / 127.0);
    return std::isfinite(s) && s >= std::numeric_limits<float>::min() ? s : 1.0f;
  }

  // ---- the function boundary ----

  void quantizeArguments() {
    const ir::Op* first = fn_.ops.empty() ? nullptr : fn_.ops.front().get();
    for (auto& argPtr : fn_.args) {
      ir::Value* arg = argPtr.get();
      if (!isF32(arg)) continue;
      std::optional<ir::Quant> quant = arg->type.quant;
      arg->type.quant.reset();  // the signature stays plain f32
      if (!arg->hasUses()) continue;
      if (!quant)
        throw ir::PassError("error: function @" + fn_.name + ": argument " + valueLabel(arg) + " (" +
                            ir::TensorType(arg->type.shape, ElemType::F32).str() + ") has no calibration scale" +
                            kCalibrate);
      ir::Op* q = m_.createOp(&fn_, "quantize", {arg}, {},
                              {quantizedType(arg->type.shape, ElemType::SI8, quant->scales[0])}, {}, first);
      q->result()->name = arg->name.empty() ? "" : arg->name + ".q";
      arg->replaceAllUsesWith(q->result());
      q->setOperand(0, arg);
      startOps_.insert(q);
      ++stats_["inputs"];
    }
  }

  void dequantizeReturns() {
    std::map<ir::Value*, ir::Value*> done;
    for (size_t i = 0; i < fn_.returns().size(); ++i) {
      ir::Value* r = fn_.returns()[i];
      if (!ir::isInteger(r->type.elem) || !r->type.quant) continue;
      if (!done.count(r)) {
        ir::Op* d = m_.createOp(&fn_, "dequantize", {r}, {}, {}, {});
        d->result()->name = r->name;
        if (!r->name.empty()) r->name += ".q";
        done[r] = d->result();
        ++stats_["outputs"];
      }
      fn_.setReturn(i, done[r]);
    }
  }

  // ---- ops ----

  // Inserts `requantize(v)` to (elem, scale) right after v's op and moves every other use of `v`
  // to it; the new value takes v's name and v becomes `<name><suffix>`.
  ir::Value* requantizeAfter(ir::Op* op, ir::Value* v, ElemType elem, float scale, const std::vector<exec::Requant>& r,
                             int64_t axis, const char* suffix) {
    const ir::Op* before = op->nextOp();
    ir::AttrList attrs{{"multiplier", requantAttr(r, false)}, {"shift", requantAttr(r, true)}, {"axis", axis}};
    ir::Op* rq = m_.createOp(&fn_, "requantize", {v}, std::move(attrs), {quantizedType(v->type.shape, elem, scale)},
                             op->loc, before);
    v->replaceAllUsesWith(rq->result());
    rq->setOperand(0, v);
    rq->result()->name = v->name;
    if (!v->name.empty()) v->name += suffix;
    ++stats_["requantize"];
    return rq->result();
  }

  void rewrite(ir::Op* op) {
    bool touchesF32 = false;
    for (ir::Value* v : op->operands()) touchesF32 = touchesF32 || isF32(v);
    for (auto& r : op->results) touchesF32 = touchesF32 || isF32(r.get());
    ir::QuantRule rule = ir::quantRule(*op);
    if (rule == ir::QuantRule::FoldFirst)
      throw ir::PassError(op->diag(std::string(op->name()) + " has no integer form; run fold-bn before quantize"));
    if (!touchesF32) return;

    switch (rule) {
      case ir::QuantRule::Weighted: return rewriteWeighted(op);
      case ir::QuantRule::Accumulate: return rewriteMatmul(op);
      case ir::QuantRule::Clamp: return rewriteClamp(op);
      case ir::QuantRule::Lut: return rewriteLut(op);
      case ir::QuantRule::KeepsScale: return rewriteDataMovement(op);
      case ir::QuantRule::IndexOnly: activation(op, 0); return;
      case ir::QuantRule::Rescale: return rewriteRescaling(op);
      case ir::QuantRule::RescaleLut: return rewriteRescalingWithTable(op);
      case ir::QuantRule::Normalize: return rewriteNormalize(op);
      case ir::QuantRule::Constant:  // constants are quantized where they are read
      case ir::QuantRule::Integer:   // an integer op reading f32 is the mix needsQuantization refuses
      case ir::QuantRule::FoldFirst: break;
    }
    throw ir::PassError(op->diag(std::string("quantize has no rule for '") + op->name() + "' reading or making f32 (" +
                                 ir::quantRuleName(rule) + ")"));
  }

  void rewriteWeighted(ir::Op* op) {
    float sIn = activation(op, 0)->type.quant->scales[0];
    ir::Value* result = op->result();
    float sOut = scaleOf(*op, result);
    ElemType target = targetElem(*op);
    const std::vector<float>& sw = quantizedWeight(op)->type.quant->scales;
    int64_t channels = static_cast<int64_t>(sw.size());

    // Accumulator scales per output channel.
    int64_t accAxis = op->is("linear") ? result->type.rank() - 1 : 1;
    int64_t cout = result->type.shape[static_cast<size_t>(accAxis)];
    std::vector<float> sAcc(static_cast<size_t>(cout));
    for (int64_t c = 0; c < cout; ++c) {
      sAcc[c] = static_cast<float>(static_cast<double>(sIn) * sw[static_cast<size_t>(c % channels)]);
      if (!(sAcc[c] >= std::numeric_limits<float>::min()))
        throw ir::PassError(op->diag("accumulator scale of channel " + std::to_string(c) + " underflows in f32 (" +
                                     ir::formatFloat(sIn) + " * " + ir::formatFloat(sw[c % channels]) + ")"));
    }

    if (op->numOperands() > 2) {
      ir::Value* b = op->operand(2);
      if (!definingConstant(b) || !isF32(b))
        throw ir::PassError(
            op->diag("the bias must be an f32 constant but got " + valueLabel(b) + " (" + b->type.str() + ")"));
      exec::FloatTensor bias = finiteConstantValue(m_, *b->owner);
      Ints bq(bias.data.size());
      for (size_t c = 0; c < bias.data.size(); ++c)
        bq[c] = saturated(roundHalfEven(bias.data[c] / static_cast<double>(sAcc[c])), ElemType::SI32);
      ir::TensorType bt(bias.shape, ElemType::SI32, ir::Quant{sAcc, 0});
      ir::Blob bBytes = integerBlob(bt, bq);
      storeConstant(op, 2, std::move(bt), std::move(bBytes), [&](const ir::Op& o, unsigned) { return &o == op; });
      ++stats_["biases"];
    }

    result->type = ir::TensorType(result->type.shape, ElemType::SI32, ir::Quant{sAcc, accAxis});
    accRequants_[requantizeAfter(op, result, target, sOut, accumulatorRequants(*op, sAcc, sOut), accAxis, ".acc")] = op;
  }

  std::vector<exec::Requant> accumulatorRequants(const ir::Op& op, const std::vector<float>& sAcc, float sOut) {
    std::vector<exec::Requant> r;
    for (float s : sAcc) r.push_back(requantFor(op, static_cast<double>(s) / sOut));
    return r;
  }

  // A clamp that alone reads a conv/linear accumulator's requantize: that requantize goes straight
  // to the clamp's scale and element type, and the clamp works there. One rounding instead of two,
  // and the conv's own calibrated scale, which nothing else observes, is never materialized.
  bool clampAtAccumulatorRequant(ir::Op* op) {
    ir::Value* x = op->operand(0);
    auto it = accRequants_.find(x);
    if (it == accRequants_.end() || x->uses().size() != 1 || x->uses()[0].user != op) return false;
    ir::Op* anchor = it->second;
    ir::Op* rq = x->owner;
    ir::Value* result = op->result();
    float sOut = scaleOf(*op, result);
    const ir::Quant& acc = *rq->operand(0)->type.quant;
    std::vector<exec::Requant> r = accumulatorRequants(*anchor, acc.scales, sOut);
    rq->setAttr("multiplier", ir::Attribute(requantAttr(r, false)));
    rq->setAttr("shift", ir::Attribute(requantAttr(r, true)));
    x->type = quantizedType(x->type.shape, targetElem(*op), sOut);
    result->type = x->type;
    accRequants_.erase(it);
    ++stats_["integer_ops"];
    return true;
  }

  // Quantizes operand 1 of a conv/linear per output channel, once per constant: readers that share
  // a weight share its quantization, which does not depend on their inputs.
  ir::Value* quantizedWeight(ir::Op* op) {
    ir::Value* old = op->operand(1);
    if (auto it = weights_.find(old); it != weights_.end()) {
      op->setOperand(1, it->second);
      return it->second;
    }
    ir::Op* weightOp = definingConstant(old);
    if (!weightOp || !isF32(old))
      throw ir::PassError(
          op->diag("the weight must be an f32 constant but got " + valueLabel(old) + " (" + old->type.str() + ")"));
    exec::FloatTensor w = finiteConstantValue(m_, *weightOp);
    const ir::Shape& ws = w.shape;
    int64_t wAxis = weightAxis(*op);
    int64_t inner = 1;
    for (size_t d = static_cast<size_t>(wAxis) + 1; d < ws.size(); ++d) inner *= ws[d];
    int64_t channels = ws[static_cast<size_t>(wAxis)];
    auto channelOf = [&](size_t e) { return static_cast<size_t>(static_cast<int64_t>(e) / inner % channels); };
    std::vector<double> amax(static_cast<size_t>(channels), 0.0);
    for (size_t e = 0; e < w.data.size(); ++e)
      amax[channelOf(e)] = std::max(amax[channelOf(e)], std::fabs(static_cast<double>(w.data[e])));
    std::vector<float> sw;
    for (double a : amax) sw.push_back(channelScale(a));
    Ints wq(w.data.size());
    for (size_t e = 0; e < w.data.size(); ++e)
      wq[e] = saturated(roundHalfEven(w.data[e] / static_cast<double>(sw[channelOf(e)])), ElemType::SI8);
    ir::TensorType wt(ws, ElemType::SI8, ir::Quant{sw, wAxis});
    ir::Blob bytes = integerBlob(wt, wq);
    ir::Value* out = storeConstant(op, 1, std::move(wt), std::move(bytes), [&](const ir::Op& o, unsigned i) {
      return isWeighted(o) && i == 1 && weightAxis(o) == wAxis;
    });
    weights_[old] = out;
    ++stats_["weights"];
    return out;
  }

  void rewriteMatmul(ir::Op* op) {
    float sa = activation(op, 0)->type.quant->scales[0];
    float sb = activation(op, 1)->type.quant->scales[0];
    ir::Value* result = op->result();
    float sOut = scaleOf(*op, result);
    float sAcc = static_cast<float>(static_cast<double>(sa) * sb);
    if (!(sAcc >= std::numeric_limits<float>::min()))
      throw ir::PassError(
          op->diag("accumulator scale underflows in f32 (" + ir::formatFloat(sa) + " * " + ir::formatFloat(sb) + ")"));
    result->type = quantizedType(result->type.shape, ElemType::SI32, sAcc);
    requantizeAfter(op, result, targetElem(*op), sOut, {requantFor(*op, static_cast<double>(sAcc) / sOut)},
                    result->type.rank() - 1, ".acc");
  }

  void rewriteClamp(ir::Op* op) {
    if (clampAtAccumulatorRequant(op)) return;
    const ir::TensorType& in = activation(op, 0)->type;
    ir::Value* result = op->result();
    float sOut = scaleOf(*op, result);
    ElemType target = targetElem(*op);
    result->type = in;
    ++stats_["integer_ops"];
    float sIn = in.quant->scales[0];
    if (sIn == sOut && target == in.elem) return;
    requantizeAfter(op, result, target, sOut, {requantFor(*op, static_cast<double>(sIn) / sOut)}, 1, ".clamped");
  }

  void rewriteLut(ir::Op* op) {
    const ir::TensorType in = activation(op, 0)->type;
    ir::Value* result = op->result();
    float sOut = scaleOf(*op, result);
    ElemType target = targetElem(*op);
    std::optional<exec::LutFunction> f = exec::parseLutFunction(op->name());
    if (!f)
      throw ir::PassError(op->diag(std::string("quantize has no lookup table function for '") + op->name() + "'"));
    double alpha = op->is("leaky_relu") ? op->getFloat("alpha") : 0.01;
    Ints table;
    try {
      table = exec::buildLut(*f, in.elem, in.quant->scales[0], target, sOut, alpha);
    } catch (const ir::Error& e) {
      throw ir::PassError(op->diag(std::string("cannot build the lookup table: ") + e.what()));
    }
    ir::TensorType tt({static_cast<int64_t>(table.size())}, target);
    std::string hint = (op->loc.name.empty() ? std::string(op->name()) : op->loc.name) + ".table";
    ir::Op* c = m_.createConstant(&fn_, hint, tt, integerBlob(tt, table), op->loc, op);
    c->result()->name = c->attr("value").asResource().key;
    ir::AttrList attrs;
    for (const auto& [k, v] : op->attrs)
      if (ir::isDiscardableAttr(k)) attrs.emplace_back(k, v);
    ir::Op* lut = m_.createOp(&fn_, "lut", {op->operand(0), c->result()}, std::move(attrs),
                              {quantizedType(result->type.shape, target, sOut)}, op->loc, op);
    lut->result()->name = result->name;
    result->replaceAllUsesWith(lut->result());
    fn_.erase(op);
    ++stats_["lut"];
  }

  void rewriteDataMovement(ir::Op* op) {
    activation(op, 0);
    if (op->is("pad")) widenPadInput(op);
    const ir::TensorType in = op->operand(0)->type;
    for (size_t i = 1; i < op->numOperands(); ++i)
      if (isF32(op->operand(i))) activation(op, i);
    for (auto& r : op->results)  // index results (topk's) are si32 already and stay so
      if (isF32(r.get())) r->type = ir::TensorType(r->type.shape, in.elem, in.quant);
    ++stats_["integer_ops"];
  }

  // A constant pad value beyond the input's range would saturate (pad(x, -1.0) on x in [0, 0.1]
  // writes -0.128): when the calibrated result type (its scale, and si16 if the pad asks for it)
  // holds the value, requantize the input to it first so that the pad writes the value.
  void widenPadInput(ir::Op* op) {
    ir::Value* x = op->operand(0);
    const ir::Value* result = op->result();
    if (op->getString("mode") != "constant" || !result->type.quant || !result->type.quant->perTensor()) return;
    auto fits = [&](ElemType elem, float scale) {
      double q = roundHalfEven(op->getFloat("value") / static_cast<double>(scale));
      return static_cast<double>(saturated(q, elem)) == q;
    };
    ElemType target = targetElem(*op);
    float sOut = result->type.quant->scales[0];
    if (!fits(x->type.elem, x->type.quant->scales[0]) && fits(target, sOut)) requantizeOperand(op, 0, target, sOut);
  }

  // Inserts `requantize` of operand `i` to (elem, scale) right before `op`, for `op` alone.
  void requantizeOperand(ir::Op* op, size_t i, ElemType elem, float scale) {
    ir::Value* x = op->operand(i);
    std::vector<exec::Requant> r{requantFor(*op, static_cast<double>(x->type.quant->scales[0]) / scale)};
    ir::AttrList attrs{{"multiplier", requantAttr(r, false)}, {"shift", requantAttr(r, true)}, {"axis", int64_t{1}}};
    ir::Op* rq = m_.createOp(&fn_, "requantize", {x}, std::move(attrs), {quantizedType(x->type.shape, elem, scale)},
                             op->loc, op);
    if (!op->result()->name.empty()) rq->result()->name = op->result()->name + ".in" + std::to_string(i);
    op->setOperand(i, rq->result());
    ++stats_["requantize"];
  }

  // softmax: rescales, reading the exp table of its input's type and scale as a graph constant,
  // so that every executor reads the one table the compiler made.
  void rewriteRescalingWithTable(ir::Op* op) {
    rewriteRescaling(op);
    const ir::TensorType& in = op->operand(0)->type;
    std::vector<int64_t> table;
    try {
      table = exec::softmaxExpTable(in.elem, in.quant->scales[0]);
    } catch (const ir::Error& e) {
      throw ir::PassError(op->diag(std::string("cannot build the exp table: ") + e.what()));
    }
    ir::TensorType tt({static_cast<int64_t>(table.size())}, ElemType::SI32);
    std::string hint = (op->loc.name.empty() ? std::string(op->name()) : op->loc.name) + ".exp_table";
    ir::Op* c = m_.createConstant(&fn_, hint, tt, integerBlob(tt, table), op->loc, op);
    c->result()->name = c->attr("value").asResource().key;
    op->addOperand(c->result());
  }

  // layer_norm: the input becomes an activation, the f32 weight and bias stay (the kernel derives
  // its per-channel requantization from them), the result takes the target type and annotated
  // scale; parameters the scales make unusable are an error here, not at run time.
  void rewriteNormalize(ir::Op* op) {
    if (!isF32(op->result())) return;  // already integer
    float sIn = activation(op, 0)->type.quant->scales[0];
    ir::Value* r = op->result();
    float sOut = scaleOf(*op, r);
    r->type = quantizedType(r->type.shape, targetElem(*op), sOut);
    const ir::Op* gammaOp = definingConstant(op->operand(1));
    const ir::Op* betaOp = definingConstant(op->operand(2));
    if (!gammaOp || !betaOp) throw ir::PassError(op->diag("expected constant weight and bias operands"));
    exec::FloatTensor gamma = finiteConstantValue(m_, *gammaOp);
    exec::FloatTensor beta = finiteConstantValue(m_, *betaOp);
    try {
      exec::layerNormParams(static_cast<int64_t>(gamma.data.size()), op->getFloat("eps"), sIn, sOut, gamma.data,
                            beta.data);
    } catch (const ir::Error& e) {
      throw ir::PassError(op->diag(e.what()));
    }
    ++stats_["integer_ops"];
  }

  void rewriteRescaling(ir::Op* op) {
    for (size_t i = 0; i < op->numOperands(); ++i) activation(op, i);
    ElemType target = targetElem(*op);
    // concat's inputs share the result's element type: one of another width (an si16 input of an
    // si8 concat) moves to the result's type and scale first.
    if (op->is("concat"))
      for (size_t i = 0; i < op->numOperands(); ++i)
        if (op->operand(i)->type.elem != target) requantizeOperand(op, i, target, scaleOf(*op, op->result()));
    for (auto& r : op->results) {
      float s = scaleOf(*op, r.get());
      r->type = quantizedType(r->type.shape, target, s);
    }
    ++stats_["integer_ops"];
  }

  ir::Module& m_;
  ir::Function& fn_;
  PassStatistics& stats_;
  std::set<const ir::Op*> startOps_;
  std::map<const ir::Value*, ir::Value*> activationConstants_;
  std::map<const ir::Value*, ir::Value*> weights_;
  // The requantized result of each conv/linear accumulator, with its conv/linear.
  std::map<const ir::Value*, ir::Op*> accRequants_;
  std::vector<ir::Value*> oldConstants_;
};

class QuantizePass : public Pass {
 public:
  const char* name() const override { return "quantize"; }
  const char* summary() const override {
    return "rewrite a calibrated float graph into integers: si8/si16 activations, per-channel si8 weights, "
           "requantize, lookup tables";
  }

  PassStatistics run(ir::Module& m, PassContext&) override {
    PassStatistics stats{{"inputs", 0},    {"outputs", 0},    {"weights", 0}, {"biases", 0},
                         {"constants", 0}, {"requantize", 0}, {"lut", 0},     {"integer_ops", 0}};
    for (auto& fn : m.functions) Quantizer(m, *fn, stats).run();
    return stats;
  }
};

}  // namespace

std::unique_ptr<Pass> createQuantizePass() { return std::make_unique<QuantizePass>(); }

}  // namespace hbdk::passes
