// The Python-side HbmModel: a loaded .hbm whose graph became a Module object once (so
// `model.module is model.module`). Shared by the .hbm bindings and the perf bindings.
#pragma once

#include <pybind11/pybind11.h>

#include "hbm/hbm.h"

namespace hbdk::bindings {

struct PyHbmModel {
  hbm::HbmModel model;
  pybind11::object module;
};

}  // namespace hbdk::bindings
