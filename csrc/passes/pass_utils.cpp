// Rewrite helpers shared by the passes (see pass_utils.h).
#include "passes/pass_utils.h"

#include <string>

namespace hbdk::passes {

ir::Op* definingConstant(const ir::Value* v) { return v && v->owner && v->owner->is("constant") ? v->owner : nullptr; }

bool resourceReferenced(const ir::Module& m, std::string_view key) {
  for (const auto& fn : m.functions)
    for (const auto& op : fn->ops)
      for (const auto& [name, attr] : op->attrs)
        if (attr.kind() == ir::AttrKind::Resource && attr.asResource().key == key) return true;
  return false;
}

bool eraseConstantIfDead(ir::Module& m, ir::Function& fn, const ir::Value* v) {
  ir::Op* c = definingConstant(v);
  if (!c || fn.hasUses(v)) return false;
  std::string key = c->attr("value").asResource().key;
  fn.erase(c);
  if (!resourceReferenced(m, key)) m.eraseResource(key);
  return true;
}

}  // namespace hbdk::passes
