// The rules of constraints.h. Each predicate looks at one op and the march and says what it found
// and what the march allows; checkModule runs them all so that one report lists every problem.
#include "march/constraints.h"

#include <algorithm>

namespace hbdk::march {

namespace {

using ir::Op;

std::string str(int64_t v) { return std::to_string(v); }

std::string joined(const std::vector<int64_t>& v, const char* sep = ", ") {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + str(v[i]);
  return s;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}

Check ok() { return {}; }
Check violated(std::string actual, std::string limit) { return {false, std::move(actual), std::move(limit)}; }

bool contains(const std::vector<int64_t>& v, int64_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }
bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

const OpConstraints* limitsOf(const Op& op, const March& march) { return march.opConstraints(op.name()); }

std::string operandName(const Op& op, size_t i) {
  const auto& defs = op.def().operands;
  if (i < defs.size() && defs[i].arity != ir::Arity::Variadic) return defs[i].name;
  return "operand #" + str(static_cast<int64_t>(i));
}

// The tensors an op is answerable for: its results, and the graph inputs it reads (every other
// operand is some op's result and is checked there).
std::vector<const ir::Value*> ownedTensors(const Op& op) {
  std::vector<const ir::Value*> out;
  for (const ir::Value* v : op.operands())
    if (v->isArgument()) out.push_back(v);
  for (const auto& r : op.results) out.push_back(r.get());
  return out;
}

// The element type the march's `dtypes` list is about: the activation the op consumes, or the
// integer type a quantize / constant produces.
ir::ElemType activationElem(const Op& op) {
  if (op.is("quantize") || op.is("constant") || op.numOperands() == 0) return op.result()->type.elem;
  return op.operand(0)->type.elem;
}

// [KH, KW] of a convolution's weight or a pooling window; empty for other ops.
std::vector<int64_t> kernelOf(const Op& op) {
  if (op.is("conv2d") || op.is("conv_transpose2d")) {
    const ir::Shape& w = op.operand(1)->type.shape;
    return {w[2], w[3]};
  }
  if (op.hasAttr("kernel")) return op.getInts("kernel");
  return {};
}

// ---- predicates --------------------------------------------------------------------------------

Check supportedOp(const Op& op, const March& march) {
  if (limitsOf(op, march)) return ok();
  return violated("'" + std::string(op.name()) + "'",
                  "one of the " + str(static_cast<int64_t>(march.ops.size())) + " ops march '" + march.name + "' runs");
}

Check quantized(const Op& op, const March&) {
  if (op.is("quantize")) {
    if (!op.operand(0)->isArgument())
      return violated("a quantize of an intermediate value", "quantize only on graph inputs");
    return ok();
  }
  if (op.is("dequantize")) {
    for (const auto& [user, index] : op.parent()->uses(op.result()))
      if (user)
        return violated("a dequantize feeding '" + std::string(user->name()) + "'", "dequantize only on graph outputs");
    return ok();
  }
  // The affine parameters of layer_norm stay f32 constants: its kernel derives the integer
  // requantization from them (numerics §4). So do the constants that only they read.
  auto f32Parameter = [](const Op& user, size_t index) {
    return ir::quantRule(user) == ir::QuantRule::Normalize && index > 0;
  };
  if (op.is("constant")) {
    bool allParameters = !op.parent()->uses(op.result()).empty();
    for (const auto& [user, index] : op.parent()->uses(op.result()))
      allParameters = allParameters && user && f32Parameter(*user, index);
    if (allParameters) return ok();
  }
  for (size_t i = 0; i < op.numOperands(); ++i)
    if (ir::isFloat(op.operand(i)->type.elem) && !f32Parameter(op, i))
      return violated("f32 operand '" + operandName(op, i) + "'", "integer operands and results");
  for (const auto& r : op.results)
    if (ir::isFloat(r->type.elem)) return violated("an f32 result", "integer operands and results");
  return ok();
}

Check dtype(const Op& op, const March& march) {
  const OpConstraints* c = limitsOf(op, march);
  ir::ElemType e = activationElem(op);
  // f32 is the `quantized` rule's finding; reporting it twice would only add noise.
  if (!c || ir::isFloat(e) || contains(c->dtypes, ir::elemTypeName(e))) return ok();
  return violated(ir::elemTypeName(e), "one of " + joined(c->dtypes));
}

Check tensorRank(const Op& op, const March& march) {
  for (const ir::Value* v : ownedTensors(op))
    if (v->type.rank() > march.maxRank)
      return violated("a rank-" + str(v->type.rank()) + " tensor " + v->type.str(),
                      "rank at most " + str(march.maxRank));
  return ok();
}

Check tensorDim(const Op& op, const March& march) {
  for (const ir::Value* v : ownedTensors(op))
    for (int64_t d : v->type.shape)
      if (d > march.maxDim)
        return violated("dim " + str(d) + " in " + v->type.str(), "dims of at most " + str(march.maxDim));
  return ok();
}

Check kernelSize(const Op& op, const March& march) {
  const OpConstraints* c = limitsOf(op, march);
  std::vector<int64_t> k = kernelOf(op);
  if (!c || !c->kernelMax || k.empty()) return ok();
  if (*std::max_element(k.begin(), k.end()) <= *c->kernelMax) return ok();
  return violated("a " + joined(k, "x") + " kernel",
                  "a kernel of at most " + str(*c->kernelMax) + "x" + str(*c->kernelMax));
}

Check stride(const Op& op, const March& march) {
  const OpConstraints* c = limitsOf(op, march);
  if (!c || c->strides.empty() || !op.hasAttr("stride")) return ok();
  const std::vector<int64_t>& s = op.getInts("stride");
  for (int64_t v : s)
    if (!contains(c->strides, v))
      return violated("stride " + joined(s, "x"), "strides from {" + joined(c->strides) + "}");
  return ok();
}

Check dilation(const Op& op, const March& march) {
  const OpConstraints* c = limitsOf(op, march);
  if (!c || !c->dilationMax || !op.hasAttr("dilation")) return ok();
  const std::vector<int64_t>& d = op.getInts("dilation");
  for (int64_t v : d)
    if (v > *c->dilationMax)
      return violated("dilation " + joined(d, "x"), "dilation of at most " + str(*c->dilationMax));
  return ok();
}

Check channels(const Op& op, const March& march) {
  const OpConstraints* c = limitsOf(op, march);
  if (!c || !c->channelsMax) return ok();
  int64_t in = 0, out = 0;
  if (op.is("linear")) {
    in = op.operand(0)->type.shape.back();
    out = op.result()->type.shape.back();
  } else {
    in = op.operand(0)->type.shape.at(1);
    out = op.result()->type.shape.at(1);
  }
  if (std::max(in, out) <= *c->channelsMax) return ok();
  return violated(str(in) + " input and " + str(out) + " output channels",
                  "at most " + str(*c->channelsMax) + " channels");
}

Check groups(const Op& op, const March& march) {
  const OpConstraints* c = limitsOf(op, march);
  if (!c || c->groupsMode.empty() || c->groupsMode == "any") return ok();
  int64_t g = op.getInt("groups");
  int64_t in = op.operand(0)->type.shape.at(1), out = op.result()->type.shape.at(1);
  if (g == 1) return ok();
  std::string actual = "groups = " + str(g) + " with " + str(in) + " input and " + str(out) + " output channels";
  if (c->groupsMode == "1") return violated(actual, "groups = 1 (dense convolution only)");
  if (g == in && in == out) return ok();
  return violated(actual, "groups = 1 or depthwise (groups = input channels = output channels)");
}

Check resizeFactor(const Op& op, const March& march) {
  const OpConstraints* c = limitsOf(op, march);
  if (!c || c->resizeFactors.empty()) return ok();
  const ir::Shape& in = op.operand(0)->type.shape;
  const ir::Shape& out = op.result()->type.shape;
  const char* dimNames[] = {"H", "W"};
  for (int d = 0; d < 2; ++d) {
    int64_t a = in[2 + static_cast<size_t>(d)], b = out[2 + static_cast<size_t>(d)];
    if (a == b) continue;
    int64_t big = std::max(a, b), small = std::min(a, b);
    if (big % small == 0 && contains(c->resizeFactors, big / small)) continue;
    return violated(std::string("a resize of ") + dimNames[d] + " from " + str(a) + " to " + str(b),
                    "a whole factor from {" + joined(c->resizeFactors) + "}");
  }
  return ok();
}

Check modeIn(const Op& op, const March& march) {
  const OpConstraints* c = limitsOf(op, march);
  if (!c || c->modes.empty()) return ok();
  const std::string& mode = op.getString("mode");
  if (contains(c->modes, mode)) return ok();
  return violated("mode \"" + mode + "\"", "a mode from {" + joined(c->modes) + "}");
}

Check topkK(const Op& op, const March& march) {
  const OpConstraints* c = limitsOf(op, march);
  if (!c || !c->kMax || op.getInt("k") <= *c->kMax) return ok();
  return violated("k = " + str(op.getInt("k")), "k of at most " + str(*c->kMax));
}

Check reductionSize(const Op& op, const March& march) {
  const OpConstraints* c = limitsOf(op, march);
  if (!c || !c->kMax) return ok();
  int64_t k = op.operand(0)->type.shape.back();
  if (k <= *c->kMax) return ok();
  return violated("a reduction over K = " + str(k), "K of at most " + str(*c->kMax));
}

}  // namespace

bool Rule::appliesTo(const std::string& opName) const { return ops.empty() || contains(ops, opName); }

const std::vector<Rule>& constraintRules() {
  static const std::vector<Rule> rules = {
      {"supported-op",
       "The march must run the op: it is listed under `ops` in the march file.",
       "rewrite it with ops the march runs (docs/marches.md lists them per march) or choose another --march",
       "",
       {},
       {},
       supportedOp},
      {"quantized",
       "The model must be quantized: only `quantize` on graph inputs and `dequantize` on graph outputs touch f32.",
       "quantize the model (calibrate, then convert) before compiling; keep float pre- and post-processing outside "
       "the model",
       "",
       {},
       {},
       quantized},
      {"dtype",
       "The op's activation element type must be one the march lists in `dtypes` for it.",
       "quantize this op to a listed type (its qconfig decides between int8 and int16)",
       "dtypes",
       {},
       {},
       dtype},
      {"tensor-rank",
       "No tensor has more dims than `tensor.max_rank`.",
       "merge dims with reshape or flatten so that every tensor stays within the rank limit",
       "",
       {},
       {},
       tensorRank},
      {"tensor-dim",
       "No tensor dim is larger than `tensor.max_dim`.",
       "split the tensor along that dim (split ... concat) or reshape it into more, smaller dims",
       "",
       {},
       {},
       tensorDim},
      {"kernel-size",
       "Convolution and pooling kernels are at most `kernel_max` high and wide.",
       "replace the large kernel by a stack of smaller ones (two 3x3 see as far as one 5x5)",
       "kernel_max",
       {"conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d"},
       {},
       kernelSize},
      {"stride",
       "Convolution and pooling strides (height and width) are values listed in `strides`.",
       "use a listed stride, or downsample in steps (e.g. two stride-2 layers instead of one stride-4)",
       "strides",
       {"conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d"},
       {},
       stride},
      {"dilation",
       "Convolution and max-pooling dilations are at most `dilation_max`.",
       "use a smaller dilation, or a larger kernel or an extra layer for the same receptive field",
       "dilation_max",
       {"conv2d", "conv_transpose2d", "max_pool2d"},
       {},
       dilation},
      {"channels",
       "Input and output channels (C of NCHW; in and out features of linear) are at most `channels_max`.",
       "use fewer channels, or split the op along channels (split, one op per part, concat)",
       "channels_max",
       {"conv2d", "conv_transpose2d", "linear", "max_pool2d", "avg_pool2d", "global_avg_pool2d"},
       {},
       channels},
      {"groups",
       "Channel groups follow `groups`: \"1\" dense only, \"depthwise_or_1\" dense or depthwise (groups = input "
       "channels = output channels), \"any\" every grouping.",
       "use a dense or depthwise convolution (e.g. a depthwise conv followed by a 1x1 conv)",
       "groups",
       {"conv2d", "conv_transpose2d"},
       {},
       groups},
      {"resize-factor",
       "resize2d scales H and W by whole factors listed in `resize_factors`, up or down (an unchanged dim always "
       "passes).",
       "resize by a listed factor (several steps if needed), or use a conv_transpose2d for learned upsampling",
       "resize_factors",
       {"resize2d"},
       {},
       resizeFactor},
      {"resize-mode",
       "resize2d's `mode` is one listed in `modes`.",
       "use a listed interpolation mode (nearest is the cheapest and always exact)",
       "modes",
       {"resize2d"},
       {"nearest", "bilinear"},
       modeIn},
      {"pad-mode",
       "pad's `mode` is one listed in `modes`.",
       "use constant padding (or pad inside the convolution through its `padding` attribute)",
       "modes",
       {"pad"},
       {"constant", "edge", "reflect"},
       modeIn},
      {"topk-k",
       "topk's k is at most `k_max`.",
       "lower k, or take the top k of smaller chunks and then of their union",
       "k_max",
       {"topk"},
       {},
       topkK},
      {"reduction-size",
       "The reduction length K of linear and matmul (last dim of the input) is at most `k_max`.",
       "split K into chunks, multiply each, and add the partial results",
       "k_max",
       {"linear", "matmul"},
       {},
       reductionSize},
  };
  return rules;
}

std::string Violation::str() const {
  return location + ": '" + op + "' op" + (value.empty() ? "" : " " + value) + ": " + rule + ": expected " + limit +
         " but got " + actual + "; " + hint;
}

std::vector<Violation> checkModule(const ir::Module& m, const March& march) {
  std::vector<Violation> out;
  for (const auto& fn : m.functions) {
    for (const auto& opPtr : fn->ops) {
      const Op& op = *opPtr;
      for (const Rule& rule : constraintRules()) {
        if (!rule.appliesTo(op.name())) continue;
        Check c = rule.check(op, march);
        if (c.ok) continue;
        Violation v;
        v.op = op.name();
        v.value = op.numResults() ? "%" + op.result()->name : "";
        if (v.value == "%") v.value.clear();
        v.location = op.loc.str();
        if (op.loc.hasFilePos() && !op.loc.name.empty()) v.location += " loc(\"" + op.loc.name + "\")";
        v.rule = rule.name;
        v.actual = std::move(c.actual);
        v.limit = std::move(c.limit);
        v.hint = rule.hint;
        out.push_back(std::move(v));
      }
    }
  }
  return out;
}

std::string violationReport(const std::vector<Violation>& violations, const std::string& marchName) {
  std::string s = std::to_string(violations.size()) + (violations.size() == 1 ? " violation" : " violations") +
                  " of march '" + marchName + "'";
  for (const Violation& v : violations) s += "\n" + v.str();
  return s;
}

}  // namespace hbdk::march
