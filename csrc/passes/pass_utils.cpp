// Rewrite helpers shared by the passes (see pass_utils.h).
#include "passes/pass_utils.h"

#include <cmath>
#include <string>

namespace hbdk::passes {

ir::Op* definingConstant(const ir::Value* v) { return v && v->owner && v->owner->is("constant") ? v->owner : nullptr; }

bool eraseConstantIfDead(ir::Module& m, ir::Function& fn, const ir::Value* v) {
  ir::Op* c = definingConstant(v);
  if (!c || v->hasUses()) return false;
  std::string key = c->attr("value").asResource().key;
  fn.erase(c);
  if (m.resourceRefs(key) == 0) m.eraseResource(key);
  return true;
}

exec::FloatTensor finiteConstantValue(const ir::Module& m, const ir::Op& c) {
  exec::FloatTensor t = exec::constantValue(m, c);
  for (size_t i = 0; i < t.data.size(); ++i) {
    float x = t.data[i];
    if (std::isfinite(x)) continue;
    // The element's index in the constant's shape, innermost last.
    std::string at;
    size_t rest = i;
    for (size_t d = t.shape.size(); d-- > 0;) {
      auto extent = static_cast<size_t>(t.shape[d]);
      at = std::to_string(rest % extent) + (at.empty() ? "" : ", ") + at;
      rest /= extent;
    }
    const std::string& key = c.attr("value").asResource().key;
    const std::string& name = c.result()->name;
    std::string what = name.empty() ? "resource '" + key + "'" : "%" + name + " (resource '" + key + "')";
    throw ir::DataError(c.diag(what + " holds " +
                               (std::isnan(x) ? "NaN"
                                : x > 0       ? "+Inf"
                                              : "-Inf") +
                               " at [" + at +
                               "]: float constants must be finite to be folded or quantized; re-export the "
                               "model from finite weights (NaN or Inf weights usually mean the training diverged)"));
  }
  return t;
}

}  // namespace hbdk::passes
