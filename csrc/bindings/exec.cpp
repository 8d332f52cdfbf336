// Python bindings of the executor: Executor(module, function, optimized, threads) runs a function
// on numpy arrays. The executor keeps the module's holder alive and refuses to run once a pass
// has transformed the module (its resolved kernels would point at freed ops).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <map>
#include <string>

#include "bindings/handles.h"
#include "exec/executor.h"

namespace py = pybind11;
using hbdk::bindings::HolderPtr;
using hbdk::bindings::PyModule;
namespace ir = hbdk::ir;
namespace exec = hbdk::exec;

namespace {

py::dtype dtypeOf(ir::ElemType t) {
  switch (t) {
    case ir::ElemType::F32: return py::dtype::of<float>();
    case ir::ElemType::SI8: return py::dtype::of<int8_t>();
    case ir::ElemType::SI16: return py::dtype::of<int16_t>();
    case ir::ElemType::SI32: return py::dtype::of<int32_t>();
    case ir::ElemType::UI8: return py::dtype::of<uint8_t>();
    case ir::ElemType::Bool: return py::dtype::of<bool>();
  }
  throw py::value_error("unknown element type");
}

std::string shapeText(const ir::Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

// A result handed to numpy without a copy: the array owns the tensor's bytes.
py::array toArray(exec::Tensor&& t) {
  std::vector<py::ssize_t> shape(t.type.shape.begin(), t.type.shape.end());
  py::dtype dtype = dtypeOf(t.type.elem);
  if (t.bytes.empty()) return py::array(dtype, shape);
  auto* bytes = new ir::Blob(std::move(t.bytes));
  py::capsule owner(bytes, [](void* p) { delete static_cast<ir::Blob*>(p); });
  return py::array(dtype, shape, bytes->data(), owner);
}

class PyExecutor {
 public:
  PyExecutor(const PyModule& m, const std::string& function, bool optimized, int threads)
      : holder_(m.holder), generation_(m.holder->generation) {
    if (threads < 0)
      throw py::value_error("threads must be >= 0 (0: one per hardware thread) but got " + std::to_string(threads));
    exec_ = std::make_unique<exec::Executor>(*holder_->module, function, exec::ExecOptions{optimized, threads});
  }

  py::list run(const py::sequence& args) const {
    std::vector<exec::Tensor> results = evaluate(args);
    py::list out;
    for (auto& t : results) out.append(toArray(std::move(t)));
    return out;
  }

  py::dict runAll(const py::sequence& args) const {
    std::vector<exec::Tensor> inputs = convert(args);
    std::map<const ir::Value*, exec::Tensor> all;
    {
      py::gil_scoped_release release;
      all = exec_->runAll(inputs);
    }
    py::dict out;
    for (const auto& [value, key] : valueKeys()) out[py::str(key)] = toArray(std::move(all.at(value)));
    return out;
  }

  std::string functionName() const { return live().name; }

 private:
  const ir::Function& live() const {
    if (generation_ != holder_->generation)
      throw py::value_error("the module was transformed by a pass after this Executor was made; make a new one");
    return exec_->function();
  }

  std::vector<exec::Tensor> evaluate(const py::sequence& args) const {
    std::vector<exec::Tensor> inputs = convert(args);
    py::gil_scoped_release release;
    return exec_->run(inputs);
  }

  // numpy arrays (or anything numpy turns into one) -> tensors of the arguments' declared types.
  // f32 takes any float dtype (float64 is rounded); integers only dtypes that cast safely.
  std::vector<exec::Tensor> convert(const py::sequence& args) const {
    const ir::Function& fn = live();
    if (py::isinstance<py::array>(args))
      throw py::type_error("run() takes a list of arrays, one per argument of @" + fn.name + ", not one array");
    if (args.size() != fn.args.size())
      throw py::value_error("@" + fn.name + " takes " + std::to_string(fn.args.size()) + " argument(s) but got " +
                            std::to_string(args.size()));
    py::module_ np = py::module_::import("numpy");
    std::vector<exec::Tensor> out;
    for (size_t i = 0; i < args.size(); ++i) {
      const ir::Value& arg = *fn.args[i];
      std::string what =
          "argument #" + std::to_string(i) + (arg.name.empty() ? "" : " (%" + arg.name + ")") + " of @" + fn.name;
      py::array a = py::array::ensure(args[i]);
      if (!a) throw py::type_error(what + " expects an array but got " + std::string(py::repr(args[i])));
      py::dtype want = dtypeOf(arg.type.elem);
      if (!a.dtype().equal(want)) {
        bool convertible = arg.type.elem == ir::ElemType::F32
                               ? a.dtype().kind() == 'f'
                               : np.attr("can_cast")(a.dtype(), want, "safe").cast<bool>();
        if (!convertible)
          throw py::type_error(what + " expects " + std::string(py::str(want)) + " data (" +
                               ir::elemTypeName(arg.type.elem) + ") but got " + std::string(py::str(a.dtype())));
        a = a.attr("astype")(want);
      }
      ir::Shape shape(a.shape(), a.shape() + a.ndim());
      if (shape != arg.type.shape)
        throw py::value_error(what + " expects shape " + shapeText(arg.type.shape) + " but got " + shapeText(shape));
      py::array c = py::array::ensure(a, py::array::c_style);
      ir::Blob bytes(static_cast<size_t>(c.nbytes()));
      if (!bytes.empty()) std::memcpy(bytes.data(), c.data(), bytes.size());
      out.emplace_back(arg.type, std::move(bytes));
    }
    return out;
  }

  // run_all's keys: a value's name where it is unique, else "<op>#<op index>" (":<result>" for
  // a later result) or "arg#<index>".
  std::vector<std::pair<const ir::Value*, std::string>> valueKeys() const {
    const ir::Function& fn = live();
    std::vector<std::pair<const ir::Value*, std::string>> values;
    for (size_t i = 0; i < fn.args.size(); ++i) values.emplace_back(fn.args[i].get(), "arg#" + std::to_string(i));
    for (size_t k = 0; k < fn.ops.size(); ++k)
      for (size_t r = 0; r < fn.ops[k]->numResults(); ++r)
        values.emplace_back(fn.ops[k]->result(r), std::string(fn.ops[k]->name()) + "#" + std::to_string(k) +
                                                      (r ? ":" + std::to_string(r) : ""));
    std::map<std::string, int> count;
    for (const auto& [v, fallback] : values) ++count[v->name];
    for (auto& [v, key] : values)
      if (!v->name.empty() && count[v->name] == 1) key = v->name;
    return values;
  }

  HolderPtr holder_;  // declared first: destroyed after the executor that points into its module
  uint64_t generation_;
  std::unique_ptr<exec::Executor> exec_;
};

}  // namespace

void bindExec(py::module_& m) {
  py::class_<PyExecutor>(
      m, "Executor",
      "Runs a function of a module: float ops on the float reference kernels, integer ops bit-exactly "
      "(optimized kernels where they exist). Made once, run many times; it reads the module as it was "
      "when made.")
      .def(py::init<const PyModule&, const std::string&, bool, int>(), py::arg("module"), py::arg("function") = "main",
           py::arg("optimized") = true, py::arg("threads") = 0,
           "optimized=False runs the integer reference kernels only; threads=0 uses every hardware thread.")
      .def("run", &PyExecutor::run, py::arg("args"),
           "Run on a list of arrays (one per argument); returns the results as a list of arrays.")
      .def("run_all", &PyExecutor::runAll, py::arg("args"),
           "Run and return every value as {name: array}; unnamed or ambiguous values are keyed '<op>#<op index>' "
           "or 'arg#<index>'.")
      .def_property_readonly("function", &PyExecutor::functionName)
      .def("__repr__", [](const PyExecutor& e) { return "<Executor @" + e.functionName() + ">"; });
}
