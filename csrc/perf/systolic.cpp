// MAC-array timing in closed form: how many folds a GEMM takes on a rows x cols array for each
// dataflow and how long one fold lasts, counted as SCALE-Sim 3 counts them. docs/perf_model.md
// ("MAC array timing") derives the formulas; tests/perf/scalesim_reference.json pins them.
#include "perf/systolic.h"

#include <string>

#include "ir/diagnostics.h"

namespace hbdk::perf {

namespace {

int64_t checkedMul(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) throw ir::Error("systolic compute cycles overflow int64");
  return r;
}

int64_t checkedAdd(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) throw ir::Error("systolic compute cycles overflow int64");
  return r;
}

int64_t ceilDiv(int64_t a, int64_t b) { return a / b + (a % b != 0); }

void requirePositive(const char* what, int64_t v) {
  if (v <= 0)
    throw ir::Error(std::string("expected a positive ") + what + " for systolic timing but got " + std::to_string(v));
}

}  // namespace

int64_t systolicComputeCycles(const GemmShape& g, int64_t rows, int64_t cols, march::Dataflow dataflow, int64_t batch) {
  requirePositive("m", g.m);
  requirePositive("n", g.n);
  requirePositive("k", g.k);
  requirePositive("array rows", rows);
  requirePositive("array cols", cols);
  requirePositive("batch", batch);

  // Each dataflow pins one operand dimension to the rows (spatialRows), one to the columns
  // (spatialCols) and streams the third through time. A fold is one rows x cols tile of the two
  // spatial dimensions; the array runs the folds one after another with no overlap.
  int64_t spatialRows = 0, spatialCols = 0, streamed = 0, fill = 0;
  switch (dataflow) {
    case march::Dataflow::OutputStationary:
      // One output per PE: operands enter skewed from the left and the top, so a fold is the k
      // streamed steps plus rows-1 and cols-1 cycles of skew fill/drain.
      spatialRows = g.m, spatialCols = g.n, streamed = g.k;
      fill = rows + cols - 2;
      break;
    case march::Dataflow::WeightStationary:
      // A k x n weight tile is loaded first (rows cycles); then the m input rows stream through
      // with rows-1 cycles of skew and the partial sums drain across cols-1 columns.
      spatialRows = g.k, spatialCols = g.n, streamed = g.m;
      fill = 2 * rows + cols - 2;
      break;
    case march::Dataflow::InputStationary:
      // The same schedule as weight-stationary with the input tile (k x m) held in place and the
      // n filters streamed.
      spatialRows = g.k, spatialCols = g.m, streamed = g.n;
      fill = 2 * rows + cols - 2;
      break;
  }
  const int64_t folds = checkedMul(ceilDiv(spatialRows, rows), ceilDiv(spatialCols, cols));
  const int64_t perFold = checkedAdd(streamed, fill);
  // SCALE-Sim reports the (0-based) cycle of the last output write: one less than the cycles its
  // demand trace spans. Each of `batch` GEMMs is its own SCALE-Sim layer, so each loses that one.
  const int64_t one = checkedMul(folds, perFold) - 1;
  return checkedMul(one, batch);
}

}  // namespace hbdk::perf
