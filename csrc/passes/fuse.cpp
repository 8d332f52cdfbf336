// fuse: marks the chains of integer ops that one BPU instruction executes, so that lower emits
// them as one instruction and the cycle model charges one pass over memory. Only discardable
// attributes change; a group computes exactly the composition of its ops.
//
// Groups (each intermediate value has exactly one reader and is not returned):
//   anchor (conv2d | conv_transpose2d | linear) -> requantize [-> relu | relu6 | clip]
//   anchor -> requantize -> add (the other operand is the residual) [-> relu | relu6 | clip]
// Algorithm, per function:
//   1. Drop `bpu.group` / `bpu.group_role` from every op, so the pass can run again.
//   2. For each anchor in order whose result's one reader is a requantize: the group is
//      {anchor, requantize}. With march.fuse.convAdd, an add reading the requantized value and a
//      different value of the same shape (no broadcasting) joins as the residual add. An
//      activation reading the chain's last value joins when the march fuses it: convActivation
//      after the requantize, convAdd (conv + add + activation) after a residual add.
//   3. Each op of a group gets `bpu.group = <id>` (ids from 0, in order of the anchors) and
//      `bpu.group_role` = "anchor", "requant", "residual_add" or "activation".
#include <set>

#include "march/march.h"
#include "passes/pass.h"

namespace hbdk::passes {

namespace {

const char* const kGroup = "bpu.group";
const char* const kRole = "bpu.group_role";

bool isAnchor(const ir::Op& op) { return op.def().traits.fusion == ir::Fusion::Anchor; }
bool isActivation(const ir::Op& op) { return op.def().traits.fusion == ir::Fusion::Epilogue; }
bool isResidual(const ir::Op& op) { return op.def().traits.fusion == ir::Fusion::Residual; }

class FusePass : public Pass {
 public:
  const char* name() const override { return "fuse"; }
  const char* summary() const override {
    return "group conv/linear + requantize (+ residual add) (+ relu/relu6/clip) into one BPU instruction "
           "(bpu.group attributes; needs a march)";
  }

  PassStatistics run(ir::Module& m, PassContext& ctx) override {
    if (!ctx.march) throw ir::PassError("error: fuse needs a march for its fuse rules (give --march NAME)");
    const march::FuseRules& rules = ctx.march->fuse;
    PassStatistics stats{
        {"groups", 0}, {"conv_requant", 0}, {"conv_activation", 0}, {"conv_add", 0}, {"conv_add_activation", 0}};
    for (auto& fn : m.functions) {
      for (auto& op : fn->ops) {
        op->removeAttr(kGroup);
        op->removeAttr(kRole);
      }
      std::set<const ir::Op*> grouped;
      std::vector<ir::Op*> anchors;
      for (auto& op : fn->ops)
        if (isAnchor(*op)) anchors.push_back(op.get());
      for (ir::Op* anchor : anchors) {
        ir::Op* requant = soleReader(anchor->result());
        if (!requant || !requant->is("requantize") || grouped.count(requant)) continue;
        std::vector<std::pair<ir::Op*, const char*>> group{{anchor, "anchor"}, {requant, "requant"}};
        ir::Op* add = rules.convAdd ? residualAdd(requant->result()) : nullptr;
        if (add && grouped.count(add)) add = nullptr;
        if (add) group.emplace_back(add, "residual_add");
        bool activationFuses = add ? rules.convAdd : rules.convActivation;
        ir::Op* act = activationFuses ? soleReader(group.back().first->result()) : nullptr;
        if (act && (!isActivation(*act) || grouped.count(act))) act = nullptr;
        if (act) group.emplace_back(act, "activation");

        int64_t id = stats["groups"]++;
        for (auto& [op, role] : group) {
          op->setAttr(kGroup, ir::Attribute(id));
          op->setAttr(kRole, ir::Attribute(role));
          grouped.insert(op);
        }
        ++stats[add ? (act ? "conv_add_activation" : "conv_add") : (act ? "conv_activation" : "conv_requant")];
      }
    }
    return stats;
  }

 private:
  // The op reading `v`, when it is the only reader and `v` is not returned.
  static ir::Op* soleReader(const ir::Value* v) { return v->uses().size() == 1 ? v->uses()[0].user : nullptr; }

  // The add reading `v` (its only reader) together with a different value of the same shape.
  static ir::Op* residualAdd(const ir::Value* v) {
    ir::Op* add = soleReader(v);
    if (!add || !isResidual(*add) || add->operand(0) == add->operand(1)) return nullptr;
    for (const ir::Value* x : add->operands())
      if (x->type.shape != add->result()->type.shape) return nullptr;
    return add;
  }
};

}  // namespace

std::unique_ptr<Pass> createFusePass() { return std::make_unique<FusePass>(); }

}  // namespace hbdk::passes
