// lower, step 2: fused groups. Ops sharing a `bpu.group` value become one instruction, emitted
// where the last member stands; the anchor is the group's MAC-array op (else the op the fuse pass
// marked, else the first member), and the group's constants, inputs and outputs are collected.
#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "passes/lower_internal.h"

namespace hbdk::passes::lowering {

std::vector<Group> formGroups(const ir::Function& fn) {
  std::vector<Group> groups;
  std::map<int64_t, size_t> byId;
  for (size_t i = 0; i < fn.ops.size(); ++i) {
    ir::Op* op = fn.ops[i].get();
    if (op->is("constant")) continue;
    std::optional<int64_t> id;
    if (op->hasAttr("bpu.group")) {
      const ir::Attribute& a = op->attr("bpu.group");
      if (a.kind() != ir::AttrKind::Int) fail(*op, "expected an int 'bpu.group' but got " + a.str());
      id = a.asInt();
    }
    size_t g;
    if (id && byId.count(*id)) {
      g = byId[*id];
    } else {
      g = groups.size();
      groups.emplace_back();
      groups.back().id = id.value_or(-1);
      if (id) byId[*id] = g;
    }
    groups[g].members.push_back(op);
    groups[g].last = i;
  }
  std::stable_sort(groups.begin(), groups.end(), [](const Group& a, const Group& b) { return a.last < b.last; });

  for (Group& g : groups) {
    std::set<const ir::Op*> inGroup(g.members.begin(), g.members.end());
    for (ir::Op* op : g.members)
      if (isMacOp(*op)) {
        if (g.anchor) fail(*op, "shares bpu.group " + std::to_string(g.id) + " with another MAC-array op");
        g.anchor = op;
      }
    // The fuse pass names the anchor; it must be the MAC op where the group has one.
    for (ir::Op* op : g.members)
      if (op->hasAttr("bpu.group_role") && op->attr("bpu.group_role") == ir::Attribute("anchor")) {
        if (g.anchor && g.anchor != op)
          fail(*op, "is marked bpu.group_role \"anchor\" but the MAC-array op of its group is '" +
                        std::string(g.anchor->name()) + "'");
        g.anchor = op;
      }
    if (!g.anchor) g.anchor = g.members.front();
    for (ir::Op* op : g.members) {
      for (ir::Value* v : op->operands()) {
        if (v->owner && inGroup.count(v->owner)) continue;
        if (v->owner && v->owner->is("constant")) {
          if (std::find(g.constants.begin(), g.constants.end(), v->owner) == g.constants.end())
            g.constants.push_back(v->owner);
        } else if (std::find(g.inputs.begin(), g.inputs.end(), v) == g.inputs.end()) {
          g.inputs.push_back(v);
        }
      }
      for (const auto& r : op->results) {
        bool external = false;
        for (const ir::Use& u : r->uses()) external |= !u.user || !inGroup.count(u.user);
        if (external) g.outputs.push_back(r.get());
      }
    }
  }
  return groups;
}

}  // namespace hbdk::passes::lowering
