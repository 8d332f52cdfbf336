// MAC-array timing: compute cycles of one GEMM on a rows x cols systolic array for a dataflow,
// with no memory stalls, counted exactly as SCALE-Sim 3 counts them (docs/perf_model.md states
// the formulas and SCALE-Sim's conventions; tests/perf/ pins values produced by SCALE-Sim itself).
#pragma once

#include <cstdint>

#include "march/march.h"

namespace hbdk::perf {

// A layer as the MAC array sees it: an (m x k) by (k x n) product. For a convolution in SCALE-Sim's
// terms: m = output pixels (Eh * Ew), n = filters, k = filter height * width * channels.
struct GemmShape {
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
};

// Compute cycles for one GEMM; `batch` independent GEMMs (depthwise channels, matmul batches) run
// back to back. Throws ir::Error on a non-positive dimension.
int64_t systolicComputeCycles(const GemmShape& g, int64_t rows, int64_t cols, march::Dataflow dataflow,
                              int64_t batch = 1);

}  // namespace hbdk::perf
