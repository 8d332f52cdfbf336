// Tests for the MAC-array timing: every value SCALE-Sim 3 produced in
// tests/perf/scalesim_reference.json is matched exactly, and the formulas keep the properties the
// cycle model relies on (monotone in every GEMM dimension, linear in batch).
#include <fstream>
#include <sstream>
#include <string>

#include "march/json.h"
#include "perf/systolic.h"
#include "testing.h"

using namespace hbdk;
using march::Dataflow;

namespace {

march::json::Value loadReference() {
  const std::string path = std::string(HBDK_SOURCE_DIR) + "/tests/perf/scalesim_reference.json";
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  march::json::Limits limits;
  limits.maxBytes = size_t{16} << 20;
  return march::json::parse(ss.str(), path, limits);
}

int64_t field(const march::json::Value& obj, const char* key) {
  const auto* v = obj.find(key);
  if (!v || !v->isInteger) throw ir::Error(std::string("reference entry lacks integer field ") + key);
  return v->integer;
}

Dataflow parseDataflow(const std::string& s) {
  if (s == "os") return Dataflow::OutputStationary;
  if (s == "ws") return Dataflow::WeightStationary;
  if (s == "is") return Dataflow::InputStationary;
  throw ir::Error("unknown dataflow " + s);
}

const Dataflow kAll[] = {Dataflow::OutputStationary, Dataflow::WeightStationary, Dataflow::InputStationary};

}  // namespace

TEST(systolic_matches_every_scalesim_value) {
  const auto doc = loadReference();
  const auto* entries = doc.find("entries");
  CHECK(entries != nullptr);
  if (!entries) return;
  CHECK(entries->items.size() >= 12 * 3 * 2);
  int checked = 0;
  for (const auto& e : entries->items) {
    const auto& gemm = *e.find("gemm");
    perf::GemmShape g{field(gemm, "m"), field(gemm, "n"), field(gemm, "k")};
    const int64_t got = perf::systolicComputeCycles(g, field(e, "rows"), field(e, "cols"),
                                                    parseDataflow(e.find("dataflow")->text), field(gemm, "batch"));
    const int64_t want = field(e, "compute_cycles");
    if (got != want) {
      std::ostringstream msg;
      msg << e.find("name")->text << " " << e.find("dataflow")->text << " " << field(e, "rows") << "x"
          << field(e, "cols") << ": expected " << want << " but got " << got;
      hbdk::testing::recordFailure(__FILE__, __LINE__, msg.str());
    }
    ++checked;
  }
  CHECK(checked == static_cast<int>(entries->items.size()));
}

TEST(systolic_hand_computed_folds) {
  // 10x13 by 13x7 on 8 rows x 4 cols. os: ceil(10/8)*ceil(7/4) = 4 folds of 13+8+4-2 = 23.
  const perf::GemmShape g{10, 7, 13};
  CHECK_EQ(perf::systolicComputeCycles(g, 8, 4, Dataflow::OutputStationary), 4 * 23 - 1);
  // ws: ceil(13/8)*ceil(7/4) = 4 folds of 2*8+4+10-2 = 28.
  CHECK_EQ(perf::systolicComputeCycles(g, 8, 4, Dataflow::WeightStationary), 4 * 28 - 1);
  // is: ceil(13/8)*ceil(10/4) = 6 folds of 2*8+4+7-2 = 25.
  CHECK_EQ(perf::systolicComputeCycles(g, 8, 4, Dataflow::InputStationary), 6 * 25 - 1);
  // batch: independent GEMMs back to back, each its own SCALE-Sim layer.
  CHECK_EQ(perf::systolicComputeCycles(g, 8, 4, Dataflow::InputStationary, 3), 3 * (6 * 25 - 1));
}

TEST(systolic_monotone_in_every_dimension) {
  const int64_t arrays[][2] = {{1, 1}, {4, 4}, {8, 3}, {32, 32}, {64, 128}};
  for (const auto& a : arrays)
    for (Dataflow df : kAll)
      for (int64_t m = 1; m <= 70; m += 7)
        for (int64_t n = 1; n <= 70; n += 9)
          for (int64_t k = 1; k <= 70; k += 11) {
            const int64_t c = perf::systolicComputeCycles({m, n, k}, a[0], a[1], df);
            CHECK(c >= 0);  // 0 only for a 1x1x1 GEMM on a 1x1 array in os: one cycle, reported as index 0
            CHECK(perf::systolicComputeCycles({m + 1, n, k}, a[0], a[1], df) >= c);
            CHECK(perf::systolicComputeCycles({m, n + 1, k}, a[0], a[1], df) >= c);
            CHECK(perf::systolicComputeCycles({m, n, k + 1}, a[0], a[1], df) >= c);
            CHECK_EQ(perf::systolicComputeCycles({m, n, k}, a[0], a[1], df, 5), 5 * c);
          }
}

TEST(systolic_larger_array_can_be_slower) {
  // SCALE-Sim charges the skew of the whole array on every fold, so a tiny layer takes longer on a
  // bigger array: "larger is never slower" is not a property of this model.
  const perf::GemmShape tiny{1, 1, 1};
  for (Dataflow df : kAll)
    CHECK(perf::systolicComputeCycles(tiny, 64, 128, df) > perf::systolicComputeCycles(tiny, 32, 32, df));
}

TEST(systolic_rejects_bad_input) {
  CHECK_THROWS(ir::Error, perf::systolicComputeCycles({0, 1, 1}, 4, 4, Dataflow::OutputStationary),
               "expected a positive m");
  CHECK_THROWS(ir::Error, perf::systolicComputeCycles({1, 1, 1}, 4, -2, Dataflow::OutputStationary),
               "expected a positive array cols for systolic timing but got -2");
  CHECK_THROWS(ir::Error, perf::systolicComputeCycles({1, 1, 1}, 4, 4, Dataflow::WeightStationary, 0),
               "expected a positive batch");
  const int64_t big = int64_t{1} << 40;
  CHECK_THROWS(ir::Error, perf::systolicComputeCycles({big, big, big}, 1, 1, Dataflow::OutputStationary), "overflow");
}
