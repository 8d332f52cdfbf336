// Rewrite helpers shared by the passes (see pass_utils.h).
#include "passes/pass_utils.h"

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

}  // namespace hbdk::passes
