// The hardware rules a quantized module must satisfy to run on a march. Each rule is one small
// predicate with a one-line message (its doc), a fix hint and the march field it reads; the
// checker, the march loader (which fields an op may carry) and docs/marches.md all read this list.
#pragma once

#include <string>
#include <vector>

#include "ir/ir.h"
#include "march/march.h"

namespace hbdk::march {

// One rule's verdict on one op. `actual` and `limit` read after "got" and "expected".
struct Check {
  bool ok = true;
  std::string actual;  // what the op has, e.g. "an 11x11 kernel"
  std::string limit;   // what the march allows, e.g. "a kernel of at most 7x7"
};

struct Rule {
  const char* name;  // "kernel-size"
  const char* doc;   // the user's message: what the march requires, one line
  const char* hint;  // how to change the model so that it passes
  // The key of ops.<op> that holds the limit, or "" for a rule on march-wide settings.
  const char* field;
  std::vector<std::string> ops;     // op kinds the rule applies to; empty: every op
  std::vector<std::string> values;  // the values `field` may list (e.g. pad modes); empty: any
  Check (*check)(const ir::Op& op, const March& march);

  bool appliesTo(const std::string& opName) const;
};

// Every rule, in report order.
const std::vector<Rule>& constraintRules();

struct Violation {
  std::string op;        // op kind, "conv2d"
  std::string value;     // the op's first result, "%y" ("" for an op without results)
  std::string location;  // "model.hbir:12:3", loc("backbone.conv1") or "<unknown>"
  std::string rule;      // "kernel-size"
  std::string actual;
  std::string limit;
  std::string hint;

  // "model.hbir:12:3: 'conv2d' op %y: kernel-size: expected <limit> but got <actual>; <hint>"
  std::string str() const;
};

// Runs every rule on every op of every function and returns all violations in op order; an op
// the march does not support is reported once and skips the rules that read its constraints.
std::vector<Violation> checkModule(const ir::Module& m, const March& march);

// "N violations of march 'bpu'" followed by one line per violation.
std::string violationReport(const std::vector<Violation>& violations, const std::string& marchName);

// Thrown by the check-constraints pass; what() is the full multi-line report.
class ConstraintError : public ir::Error {
 public:
  ConstraintError(std::vector<Violation> violations, const std::string& marchName)
      : ir::Error(violationReport(violations, marchName)), violations_(std::move(violations)) {}
  const std::vector<Violation>& violations() const { return violations_; }

 private:
  std::vector<Violation> violations_;
};

}  // namespace hbdk::march
