// check-constraints: the gate between quantization and lowering. It changes nothing; it runs
// every hardware rule of csrc/march/constraints.h on every op and fails with one report that
// lists all violations, so that a user fixes a model in one round instead of one error at a time.
#include "ir/diagnostics.h"
#include "march/constraints.h"
#include "passes/pass.h"

namespace hbdk::passes {

namespace {

class CheckConstraintsPass : public Pass {
 public:
  const char* name() const override { return "check-constraints"; }
  const char* summary() const override {
    return "check every op against the target march's rules (docs/marches.md); report all violations at once";
  }

  PassStatistics run(ir::Module& m, PassContext& ctx) override {
    if (!ctx.march) throw ir::PassError("error: pass 'check-constraints' needs a target march (--march)");
    std::vector<march::Violation> violations = march::checkModule(m, *ctx.march);
    if (!violations.empty()) throw march::ConstraintError(std::move(violations), ctx.march->name);
    int64_t ops = 0;
    for (const auto& fn : m.functions) ops += static_cast<int64_t>(fn->ops.size());
    return {{"ops-checked", ops}};
  }
};

}  // namespace

std::unique_ptr<Pass> createCheckConstraintsPass() { return std::make_unique<CheckConstraintsPass>(); }

}  // namespace hbdk::passes
