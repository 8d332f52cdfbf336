// The one place that lists every pass (by its factory) and every named pipeline. Lookups by name
// fail loudly with the closest known names, never fall back silently.
#include <algorithm>

#include "passes/pass.h"

namespace hbdk::passes {

namespace {

PassInfo infoOf(std::unique_ptr<Pass> (*factory)()) {
  auto probe = factory();
  return {probe->name(), probe->summary(), factory};
}

size_t editDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
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
        infoOf(createCanonicalizePass),
        infoOf(createCheckConstraintsPass),
        infoOf(createConstantFoldPass),
        infoOf(createFoldBnPass),
        infoOf(createFusePass),
        infoOf(createLowerPass),
        infoOf(createQuantizePass),
        infoOf(createSerializePass),
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
  auto closestFirst = [&](std::vector<std::string>& v) {
    std::stable_sort(v.begin(), v.end(), [&](const std::string& a, const std::string& b) {
      return editDistance(name, a) < editDistance(name, b);
    });
  };
  closestFirst(passes);
  closestFirst(pipelines);
  std::vector<std::string> all = passes;
  all.insert(all.end(), pipelines.begin(), pipelines.end());
  closestFirst(all);

  std::string msg = "error: unknown pass '" + name + "'";
  // Suggest only a plausible typo: within a third of the name's length (and at least 2 edits).
  if (!all.empty() && editDistance(name, all[0]) <= std::max<size_t>(2, name.size() / 3))
    msg += "; did you mean '" + all[0] + "'?";
  msg += " (passes: " + joined(passes) + "; pipelines: " + joined(pipelines) + ")";
  throw ir::PassError(msg);
}

}  // namespace hbdk::passes
