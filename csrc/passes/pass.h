// Passes and the pass manager. A pass is registered once by name with a one-line summary;
// pipelines are named, explicit lists of pass names. The pass manager, not the passes, owns
// instrumentation: verification after each pass, IR printing and timing.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "ir/ir.h"

namespace hbdk::march {
struct March;
}
namespace hbdk::isa {
struct Program;
}

namespace hbdk::passes {

// What the back-end passes read and produce besides the module. Owned by the caller (the compile
// driver); a pass that needs a member that is not set fails with a PassError saying so.
struct PassContext {
  const march::March* march = nullptr;     // the target, for check-constraints and lower
  isa::Program* program = nullptr;         // filled by lower
  std::vector<uint8_t>* binary = nullptr;  // filled by serialize
  // Provenance serialize records in the .hbm: the input .hbir text (its SHA-256 is the source
  // hash; when null, the hash is that of the serialized graph) and the input file's name.
  const std::string* sourceText = nullptr;
  std::string sourceName;
};

// What a pass changed, for `--time-passes` style reports and tests: counter name -> value.
using PassStatistics = std::map<std::string, int64_t>;

class Pass {
 public:
  virtual ~Pass() = default;
  virtual const char* name() const = 0;
  virtual const char* summary() const = 0;
  // Transforms the module in place; returns statistics (may be empty). Throws ir::PassError
  // (or ir::VerifyError) when the module cannot be handled.
  virtual PassStatistics run(ir::Module& m, PassContext& ctx) = 0;
};

struct PassInfo {
  std::string name;
  std::string summary;
  std::function<std::unique_ptr<Pass>()> create;
};

// All registered passes, sorted by name.
const std::vector<PassInfo>& passRegistry();
// Throws ir::PassError listing the known names (closest first) when `name` is unknown.
std::unique_ptr<Pass> createPass(const std::string& name);

struct PipelineInfo {
  std::string name;
  std::string summary;
  std::vector<std::string> passes;
};
// Named pipelines, defined as plain lists in registry.cpp.
const std::vector<PipelineInfo>& pipelineRegistry();
// A pipeline name expands to its passes; any other name is taken as a single pass name.
std::vector<std::string> expandPipeline(const std::vector<std::string>& names);

struct PassTiming {
  std::string pass;
  double seconds = 0;
  PassStatistics stats;
};

struct PassManagerOptions {
  bool verifyEach = true;                 // run the verifier after every pass
  bool printIrAfterAll = false;           // print the module after every pass
  std::vector<std::string> printIrAfter;  // ... or after the named passes only
  std::ostream* irStream = nullptr;       // where IR dumps go (default std::cerr)
};

class PassManager {
 public:
  explicit PassManager(PassManagerOptions opts = {}) : opts_(std::move(opts)) {}

  // Adds passes by name; pipeline names expand. Throws ir::PassError for an unknown name.
  void add(const std::string& nameOrPipeline);
  void add(std::unique_ptr<Pass> pass);
  // Runs every pass in order. A verification failure after a pass throws ir::VerifyError whose
  // message names the pass ("after pass 'fold-bn': ...").
  void run(ir::Module& m, PassContext& ctx);
  void run(ir::Module& m) {
    PassContext none;
    run(m, none);
  }

  const std::vector<PassTiming>& timings() const { return timings_; }
  // The `--time-passes` table: one line per pass with wall time, percent and statistics.
  std::string timingReport() const;
  std::vector<std::string> passNames() const;

 private:
  PassManagerOptions opts_;
  std::vector<std::unique_ptr<Pass>> passes_;
  std::vector<PassTiming> timings_;
  double verifySeconds_ = 0;  // verifier time over the whole run, reported as its own row
};

// Each pass file ends with its factory; registry.cpp lists the factories in one place (an explicit
// list rather than static initializers, which a static library's linker would drop).
std::unique_ptr<Pass> createCanonicalizePass();
std::unique_ptr<Pass> createConstantFoldPass();
std::unique_ptr<Pass> createFoldBnPass();
std::unique_ptr<Pass> createLowerPass();
std::unique_ptr<Pass> createSerializePass();
std::unique_ptr<Pass> createCheckConstraintsPass();
std::unique_ptr<Pass> createQuantizePass();
std::unique_ptr<Pass> createFusePass();

}  // namespace hbdk::passes
