// Python access to the MAC-array timing (csrc/perf/systolic.h): the SCALE-Sim agreement tests and
// the estimator benchmark call it with plain integers and a dataflow name.
#include <pybind11/pybind11.h>

#include <string>

#include "perf/systolic.h"

namespace py = pybind11;
using namespace hbdk;

namespace {

march::Dataflow dataflowFromName(const std::string& s) {
  if (s == "os" || s == "output_stationary") return march::Dataflow::OutputStationary;
  if (s == "ws" || s == "weight_stationary") return march::Dataflow::WeightStationary;
  if (s == "is" || s == "input_stationary") return march::Dataflow::InputStationary;
  throw py::value_error("expected dataflow 'os', 'ws' or 'is' (or its long name) but got '" + s + "'");
}

}  // namespace

void bindSystolic(py::module_& mod) {
  mod.def(
      "systolic_compute_cycles",
      [](int64_t m, int64_t n, int64_t k, int64_t rows, int64_t cols, const std::string& dataflow, int64_t batch) {
        // A non-positive dimension raises the core's ir::Error, which Python sees as HbirError.
        return perf::systolicComputeCycles({m, n, k}, rows, cols, dataflowFromName(dataflow), batch);
      },
      py::arg("m"), py::arg("n"), py::arg("k"), py::arg("rows"), py::arg("cols"), py::arg("dataflow"),
      py::arg("batch") = 1,
      "Compute cycles of `batch` (m x k) by (k x n) GEMMs on a rows x cols systolic array, no memory "
      "stalls, as SCALE-Sim 3 counts them (docs/perf_model.md, MAC array timing).");
}
