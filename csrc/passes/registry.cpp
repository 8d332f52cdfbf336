// The one place that lists every pass (by its factory) and every named pipeline. Lookups by name
// fail loudly with the closest known names, never fall back silently.
#include <algorithm>

#include "ir/strings.h"
#include "passes/pass.h"

namespace hbdk::passes {

namespace {

PassInfo infoOf(std::unique_ptr<Pass> (*factory)()) {
  auto probe = factory();
  return {probe->name(), probe->summary(), factory};
}

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

const std::vector<PassInfo>& passRegistry() {
  static const std::vector<PassInfo> passes = [] {
    std::vector<PassInfo> v = {
        infoOf(createCanonicalizePass), infoOf(createCheckConstraintsPass),
        infoOf(createConstantFoldPass), infoOf(createFoldBnPass),
        infoOf(createFusePass),         infoOf(createLowerPass),
        infoOf(createQuantizePass),     infoOf(createSerializePass),
    };
    std::sort(v.begin(), v.end(), [](const PassInfo& a, const PassInfo& b) { return a.name < b.name; });
    return v;
  }();
  return passes;
}

const std::vector<PipelineInfo>& pipelineRegistry() {
  static const std::vector<PipelineInfo> pipelines = {
      {"default",
       "graph cleanup before quantization: simplify, fold batch norms, fold constant subgraphs",
       {
           "canonicalize",   // forward identity ops and drop dead ones so later patterns see direct producers
           "fold-bn",        // fold batch_norm into the conv/linear before it; needs the conv -> bn edge direct
           "constant-fold",  // evaluate subgraphs that only read constants (e.g. reshaped weights)
           "canonicalize",   // remove the constants and resources the folds left unused
       }},
      {"compile",
       "calibrated float graph to a .hbm binary: cleanup, quantize, fuse, check the march, lower, serialize",
       {
           "canonicalize",       // as in "default": direct producers for the patterns below
           "fold-bn",            // batch_norm has no integer form; fold it while the weights are f32
           "constant-fold",      // constant subgraphs become single constants the quantizer can read
           "canonicalize",       // drop what the folds left unused
           "quantize",           // the integer graph: si8/si16 activations, requantize, lookup tables
           "canonicalize",       // drop the f32 constants quantization replaced
           "fuse",               // group conv + requantize (+ add) (+ activation) for one instruction
           "check-constraints",  // the march's operator rules on the final integer ops and groups
           "lower",              // instructions for the march (ctx.program)
           "serialize",          // the .hbm bytes (ctx.binary)
       }},
  };
  return pipelines;
}

std::vector<std::string> expandPipeline(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const std::string& name : names) {
    auto it = std::find_if(pipelineRegistry().begin(), pipelineRegistry().end(),
                           [&](const PipelineInfo& p) { return p.name == name; });
    if (it == pipelineRegistry().end())
      out.push_back(name);
    else
      out.insert(out.end(), it->passes.begin(), it->passes.end());
  }
  return out;
}

std::unique_ptr<Pass> createPass(const std::string& name) {
  for (const PassInfo& p : passRegistry())
    if (p.name == name) return p.create();

  std::vector<std::string> passes, pipelines;
  for (const PassInfo& p : passRegistry()) passes.push_back(p.name);
  for (const PipelineInfo& p : pipelineRegistry()) pipelines.push_back(p.name);
  std::vector<std::string> all = passes;
  all.insert(all.end(), pipelines.begin(), pipelines.end());

  std::string msg = "error: unknown pass '" + name + "'";
  if (auto best = ir::closestMatch(name, all)) msg += "; did you mean '" + *best + "'?";
  msg += " (passes: " + joined(passes) + "; pipelines: " + joined(pipelines) + ")";
  throw ir::PassError(msg);
}

}  // namespace hbdk::passes
