// The pass manager: runs passes in order and owns all instrumentation (verification after each
// pass, IR dumps, wall-clock timing and the statistics table), so that passes stay plain rewrites.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <set>

#include "ir/text.h"
#include "ir/verifier.h"
#include "passes/pass.h"

namespace hbdk::passes {

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::string statsText(const PassStatistics& stats) {
  std::string s;
  for (const auto& [name, value] : stats) {
    if (value == 0) continue;  // a counter that stayed at zero says nothing in a report
    s += (s.empty() ? "" : " ") + name + "=" + std::to_string(value);
  }
  return s;
}

std::string format(const char* fmt, const std::string& a, double b, double c) {
  char buf[256];
  std::snprintf(buf, sizeof buf, fmt, a.c_str(), b, c);
  return buf;
}

}  // namespace

void PassManager::add(const std::string& nameOrPipeline) {
  for (const std::string& name : expandPipeline({nameOrPipeline})) passes_.push_back(createPass(name));
}

void PassManager::add(std::unique_ptr<Pass> pass) { passes_.push_back(std::move(pass)); }

std::vector<std::string> PassManager::passNames() const {
  std::vector<std::string> names;
  for (const auto& p : passes_) names.emplace_back(p->name());
  return names;
}

void PassManager::run(ir::Module& m, PassContext& ctx) {
  // A misspelled --print-ir-after would otherwise silently print nothing.
  std::vector<std::string> scheduled = passNames();
  for (const std::string& want : opts_.printIrAfter)
    if (std::find(scheduled.begin(), scheduled.end(), want) == scheduled.end()) {
      std::string list;
      for (const std::string& s : scheduled) list += (list.empty() ? "" : ", ") + s;
      throw ir::PassError("error: --print-ir-after names pass '" + want +
                          "', which is not in this pipeline (scheduled: " + (list.empty() ? "none" : list) + ")");
    }

  std::ostream& irOut = opts_.irStream ? *opts_.irStream : std::cerr;
  timings_.clear();
  verifySeconds_ = 0;
  for (const auto& pass : passes_) {
    const std::string name = pass->name();
    PassTiming timing{name, 0, {}};
    auto start = Clock::now();
    try {
      timing.stats = pass->run(m, ctx);
    } catch (const ir::VerifyError& e) {
      throw ir::VerifyError("in pass '" + name + "': " + e.what());
    } catch (const ir::DataError&) {
      throw;  // about the input file, which it names: the pass that found it does not matter
    } catch (const ir::PassError& e) {
      throw ir::PassError("in pass '" + name + "': " + e.what());
    }
    timing.seconds = secondsSince(start);
    timings_.push_back(std::move(timing));

    if (opts_.verifyEach) {
      auto verifyStart = Clock::now();
      try {
        ir::verifyModule(m);
      } catch (const ir::VerifyError& e) {
        throw ir::VerifyError("after pass '" + name + "': " + e.what());
      }
      verifySeconds_ += secondsSince(verifyStart);
    }
    bool print = opts_.printIrAfterAll ||
                 std::find(opts_.printIrAfter.begin(), opts_.printIrAfter.end(), name) != opts_.printIrAfter.end();
    if (print) irOut << "// -----// IR Dump After " << name << " //----- //\n" << ir::printModule(m) << std::flush;
  }
}

std::string PassManager::timingReport() const {
  double total = verifySeconds_;
  size_t width = std::string("(verifier)").size();
  for (const auto& t : timings_) total += t.seconds, width = std::max(width, t.pass.size());
  auto pct = [&](double s) { return total > 0 ? 100.0 * s / total : 0.0; };
  std::string w = std::to_string(width);
  std::string row = "  %-" + w + "s %10.3f %6.1f%%";

  std::string out = "===- Pass execution timing report -===\n";
  char header[256];
  std::snprintf(header, sizeof header, ("  %-" + w + "s %10s %7s  %s\n").c_str(), "Pass", "Wall ms", "%", "Statistics");
  out += header;
  for (const auto& t : timings_) {
    std::string line = format(row.c_str(), t.pass, t.seconds * 1e3, pct(t.seconds));
    std::string stats = statsText(t.stats);
    out += (stats.empty() ? line : line + "  " + stats) + "\n";
  }
  if (opts_.verifyEach) out += format(row.c_str(), "(verifier)", verifySeconds_ * 1e3, pct(verifySeconds_)) + "\n";
  out += format(row.c_str(), "Total", total * 1e3, total > 0 ? 100.0 : 0.0) + "\n";
  return out;
}

}  // namespace hbdk::passes
