// The Python-side ownership of a module, shared by the binding files: Python objects hold a
// module's shared holder plus a pointer and the generation it was taken at, so a handle to an op a
// pass may have erased raises a clear error instead of touching freed memory.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>

#include "ir/ir.h"

namespace hbdk::bindings {

struct ModuleHolder {
  std::unique_ptr<ir::Module> module;
  uint64_t generation = 0;
};
using HolderPtr = std::shared_ptr<ModuleHolder>;

// A reference to an object owned by a module; valid until the module is transformed.
template <typename T>
struct Handle {
  HolderPtr holder;
  T* ptr;
  uint64_t generation;

  T* get() const {
    if (generation != holder->generation)
      throw pybind11::value_error(
          "stale handle: the module was transformed by a pass since this object was "
          "obtained; walk the module again");
    return ptr;
  }
};

template <typename T>
Handle<T> handle(const HolderPtr& h, T* p) {
  return Handle<T>{h, p, h->generation};
}

class PyModule {
 public:
  HolderPtr holder;
  explicit PyModule(std::unique_ptr<ir::Module> m) : holder(std::make_shared<ModuleHolder>()) {
    holder->module = std::move(m);
  }
  ir::Module& m() const { return *holder->module; }
};

}  // namespace hbdk::bindings
