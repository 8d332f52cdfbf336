// serialize: writes the lowered module and its program (ctx.program, from lower) as .hbm bytes into
// ctx.binary. The module is not changed; the format is docs/hbm.md.
#include "hbm/hbm.h"
#include "isa/program.h"
#include "passes/pass.h"

namespace hbdk::passes {

namespace {

class SerializePass : public Pass {
 public:
  const char* name() const override { return "serialize"; }
  const char* summary() const override {
    return "write the lowered module, its instruction stream and I/O descriptions as an .hbm binary";
  }

  PassStatistics run(ir::Module& m, PassContext& ctx) override {
    if (!ctx.binary) throw ir::PassError("error: pass 'serialize' needs an output buffer (PassContext::binary)");
    if (!ctx.program || ctx.program->instructions.empty())
      throw ir::PassError("error: pass 'serialize' needs the program from pass 'lower'; run lower first");
    hbm::WriteOptions opts;
    opts.sourceText = ctx.sourceText;
    opts.sourceName = ctx.sourceName;
    try {
      *ctx.binary = hbm::writeHbm(m, *ctx.program, opts);
    } catch (const hbm::HbmError& e) {
      throw ir::PassError(e.what());
    }
    return {{"bytes", static_cast<int64_t>(ctx.binary->size())},
            {"instructions", static_cast<int64_t>(ctx.program->instructions.size())}};
  }
};

}  // namespace

std::unique_ptr<Pass> createSerializePass() { return std::make_unique<SerializePass>(); }

}  // namespace hbdk::passes
