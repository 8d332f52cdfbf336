// hbdk_sim._core: the thin pybind11 layer over the C++ core. Python holds handles (module +
// pointer + generation); running a pipeline bumps the module's generation so that a handle to an
// op a pass may have erased raises a clear error instead of touching freed memory.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <sstream>

#include "bindings/handles.h"
#include "exec/float_reference.h"
#include "exec/int_optimized.h"
#include "exec/int_reference.h"
#include "ir/ir.h"
#include "ir/text.h"
#include "ir/verifier.h"
#include "isa/program.h"
#include "march/march.h"
#include "passes/pass.h"

namespace py = pybind11;
using namespace hbdk::ir;
namespace passes = hbdk::passes;

namespace {

using hbdk::bindings::handle;
using hbdk::bindings::HolderPtr;
using hbdk::bindings::PyModule;
using PyFunction = hbdk::bindings::Handle<Function>;
using PyOp = hbdk::bindings::Handle<Op>;
using PyValue = hbdk::bindings::Handle<Value>;

// ---- numpy <-> element types ------------------------------------------------------------------

py::dtype numpyDtype(ElemType t) {
  switch (t) {
    case ElemType::F32: return py::dtype::of<float>();
    case ElemType::SI8: return py::dtype::of<int8_t>();
    case ElemType::SI16: return py::dtype::of<int16_t>();
    case ElemType::SI32: return py::dtype::of<int32_t>();
    case ElemType::UI8: return py::dtype::of<uint8_t>();
    case ElemType::Bool: return py::dtype::of<bool>();
  }
  throw py::value_error("unknown element type");
}

ElemType elemFromNumpy(const py::dtype& d) {
  for (ElemType t : {ElemType::F32, ElemType::SI8, ElemType::SI16, ElemType::SI32, ElemType::UI8, ElemType::Bool})
    if (numpyDtype(t).is(d) || numpyDtype(t).equal(d)) return t;
  throw py::type_error("unsupported numpy dtype " + std::string(py::str(d)) +
                       "; use float32, int8, int16, int32, uint8 or bool");
}

ElemType elemFromName(const std::string& name) {
  if (auto t = parseElemType(name)) return *t;
  throw py::value_error("unknown element type '" + name + "'; expected f32, si8, si16, si32, ui8 or bool");
}

TensorType makeType(const Shape& shape, const std::string& dtype, py::object scale, int64_t axis) {
  TensorType t(shape, elemFromName(dtype));
  if (!scale.is_none()) {
    Quant q;
    if (py::isinstance<py::float_>(scale) || py::isinstance<py::int_>(scale)) {
      q.scales = {scale.cast<float>()};
      q.axis = -1;
    } else {
      q.scales = scale.cast<std::vector<float>>();
      q.axis = axis;
      if (axis < 0) throw py::value_error("per-axis scales need axis >= 0");
    }
    t.quant = q;
  }
  return t;
}

py::array blobToArray(const Blob& blob, const TensorType& t) {
  if (blob.size() != t.byteSize())
    throw py::value_error("resource has " + std::to_string(blob.size()) + " bytes but " + t.str() + " needs " +
                          std::to_string(t.byteSize()));
  py::array out(numpyDtype(t.elem), std::vector<py::ssize_t>(t.shape.begin(), t.shape.end()));
  if (!blob.empty()) std::memcpy(out.mutable_data(), blob.data(), blob.size());
  return out;
}

Blob arrayToBlob(const py::array& a, ElemType elem) {
  py::array c = py::array::ensure(a, py::array::c_style | py::array::forcecast);
  if (!c) throw py::type_error("expected an array");
  py::array typed = c;
  if (!numpyDtype(elem).equal(c.dtype())) typed = c.attr("astype")(numpyDtype(elem));
  typed = py::array::ensure(typed, py::array::c_style);
  Blob b(static_cast<size_t>(typed.nbytes()));
  if (!b.empty()) std::memcpy(b.data(), typed.data(), b.size());
  return b;
}

// ---- attributes -------------------------------------------------------------------------------

py::object attrToPy(const Attribute& a) {
  switch (a.kind()) {
    case AttrKind::Bool: return py::bool_(a.asBool());
    case AttrKind::Int: return py::int_(a.asInt());
    case AttrKind::Float: return py::float_(a.asFloat());
    case AttrKind::String: return py::str(a.asString());
    case AttrKind::IntList: return py::cast(a.asInts());
    case AttrKind::FloatList: return py::cast(a.asFloats());
    case AttrKind::Resource: return py::str("dense_resource<" + a.asResource().key + ">");
  }
  return py::none();
}

// A discardable attribute ("bpu.group") has no declared kind: it follows the Python value.
Attribute discardableFromPy(const std::string& name, py::handle v) {
  if (py::isinstance<py::bool_>(v)) return Attribute(v.cast<bool>());
  if (py::isinstance<py::int_>(v)) return Attribute(v.cast<int64_t>());
  if (py::isinstance<py::float_>(v)) return Attribute(v.cast<double>());
  if (py::isinstance<py::str>(v)) return Attribute(v.cast<std::string>());
  if (py::isinstance<py::sequence>(v)) {
    bool allInts = true;
    for (py::handle item : v.cast<py::sequence>())
      allInts = allInts && py::isinstance<py::int_>(item) && !py::isinstance<py::bool_>(item);
    try {
      return allInts ? Attribute(v.cast<std::vector<int64_t>>()) : Attribute(v.cast<std::vector<double>>());
    } catch (const py::cast_error&) {
    }
  }
  throw py::type_error("attribute '" + name + "' expects bool, int, float, str or a list of numbers but got " +
                       std::string(py::repr(v)));
}

// Python values are converted by the kind the op table declares, so [1, 2] becomes float[] where
// a float list is expected.
Attribute attrFromPy(const OpDef& def, const std::string& name, py::handle v) {
  if (isDiscardableAttr(name)) return discardableFromPy(name, v);
  const AttrDef* ad = def.findAttr(name);
  if (!ad) {
    std::string known;
    for (const auto& a : def.attrs) known += std::string(known.empty() ? "" : ", ") + a.name;
    throw py::key_error("op '" + std::string(def.name) + "' has no attribute '" + name +
                        "' (expected one of: " + (known.empty() ? "none" : known) + ")");
  }
  try {
    switch (ad->kind) {
      case AttrKind::Bool:
        if (!py::isinstance<py::bool_>(v)) break;
        return Attribute(v.cast<bool>());
      case AttrKind::Int:
        if (py::isinstance<py::bool_>(v) || !py::isinstance<py::int_>(v)) break;
        return Attribute(v.cast<int64_t>());
      case AttrKind::Float: return Attribute(v.cast<double>());
      case AttrKind::String:
        if (!py::isinstance<py::str>(v)) break;
        return Attribute(v.cast<std::string>());
      case AttrKind::IntList: return Attribute(v.cast<std::vector<int64_t>>());
      case AttrKind::FloatList: return Attribute(v.cast<std::vector<double>>());
      case AttrKind::Resource:
        if (!py::isinstance<py::str>(v)) break;
        return Attribute(ResourceRef{v.cast<std::string>()});
    }
  } catch (const py::cast_error&) {
  }
  throw py::type_error("attribute '" + name + "' of op '" + def.name + "' expects " + attrKindName(ad->kind) +
                       " but got " + std::string(py::repr(v)));
}

py::dict opDefToPy(const OpDef& d) {
  auto arity = [](Arity a) { return a == Arity::One ? "one" : a == Arity::Optional ? "optional" : "variadic"; };
  py::list operands, results, attrs;
  for (const auto& o : d.operands)
    operands.append(py::dict(py::arg("name") = o.name, py::arg("arity") = arity(o.arity), py::arg("doc") = o.doc));
  for (const auto& r : d.results)
    results.append(py::dict(py::arg("name") = r.name, py::arg("arity") = arity(r.arity), py::arg("doc") = r.doc));
  for (const auto& a : d.attrs)
    attrs.append(py::dict(
        py::arg("name") = a.name, py::arg("kind") = attrKindName(a.kind),
        py::arg("default") = a.defaultValue ? py::object(py::str(a.defaultValue->str())) : py::object(py::none()),
        py::arg("doc") = a.doc));
  const OpTraits& t = d.traits;
  std::optional<hbdk::isa::Opcode> code = t.opcode ? hbdk::isa::parseOpcode(t.opcode) : std::nullopt;
  py::dict traits(
      py::arg("quant_rule") = quantRuleName(t.quant), py::arg("quant_rule_varies") = t.quantOf != nullptr,
      py::arg("opcode") = t.opcode ? py::object(py::str(t.opcode)) : py::object(py::none()),
      py::arg("unit") =
          code ? py::object(py::str(hbdk::isa::unitName(hbdk::isa::unitOf(*code)))) : py::object(py::none()),
      py::arg("tile") = tileClassName(t.tile), py::arg("fusion") = fusionName(t.fusion),
      py::arg("weight_axis") = t.weightAxis, py::arg("bounded_by_input") = t.boundedByInput,
      py::arg("vector_work") = code ? py::object(py::str(hbdk::isa::vectorWorkName(hbdk::isa::vectorWorkOf(*code))))
                                    : py::object(py::none()));
  py::dict kernels(py::arg("float") = hbdk::exec::floatKernelExists(d.name),
                   py::arg("int") = hbdk::exec::intKernelExists(d.name),
                   py::arg("optimized") =
                       std::any_of(hbdk::exec::optimizedKernelOps().begin(), hbdk::exec::optimizedKernelOps().end(),
                                   [&](const char* n) { return std::string_view(n) == d.name; }));
  return py::dict(py::arg("name") = d.name, py::arg("summary") = d.summary, py::arg("operands") = operands,
                  py::arg("results") = results, py::arg("attrs") = attrs, py::arg("example") = d.example,
                  py::arg("has_macs") = d.macs != nullptr, py::arg("traits") = traits, py::arg("kernels") = kernels);
}

std::vector<Value*> unwrapValues(const std::vector<PyValue>& vs) {
  std::vector<Value*> out;
  for (const auto& v : vs) out.push_back(v.get());
  return out;
}

void checkSameModule(const PyModule& m, const HolderPtr& h) {
  if (m.holder != h) throw py::value_error("the object belongs to a different module");
}

}  // namespace

void bindNumerics(py::module_& m);
void bindMarch(py::module_& m);
void bindExec(py::module_& m);
void bindHbm(py::module_& m);
void bindSystolic(py::module_& m);
void bindPerf(py::module_& m);

PYBIND11_MODULE(_core, mod) {
  mod.doc() = "hbdk-sim C++ core: HBIR, its text form, the verifier and the pass manager";
  mod.attr("__version__") = HBDK_VERSION;

  auto base = py::register_exception<Error>(mod, "HbirError");
  py::register_exception<ParseError>(mod, "ParseError", base.ptr());
  py::register_exception<VerifyError>(mod, "VerifyError", base.ptr());
  auto passError = py::register_exception<PassError>(mod, "PassError", base.ptr());
  py::register_exception<DataError>(mod, "DataError", passError.ptr());

  // ---- TensorType -----------------------------------------------------------------------------
  py::class_<TensorType>(mod, "TensorType")
      .def(py::init(&makeType), py::arg("shape"), py::arg("dtype") = "f32", py::arg("scale") = py::none(),
           py::arg("axis") = -1, "A tensor type; `scale` is a float (per tensor) or a list (per `axis`).")
      .def_property_readonly("shape", [](const TensorType& t) { return t.shape; })
      .def_property_readonly("dtype", [](const TensorType& t) { return std::string(elemTypeName(t.elem)); })
      .def_property_readonly("numel", &TensorType::numel)
      .def_property_readonly("nbytes", [](const TensorType& t) { return t.byteSize(); })
      .def_property_readonly("scales",
                             [](const TensorType& t) -> py::object {
                               if (!t.quant) return py::none();
                               return py::cast(t.quant->scales);
                             })
      .def_property_readonly("axis",
                             [](const TensorType& t) -> py::object {
                               if (!t.quant || t.quant->perTensor()) return py::none();
                               return py::int_(t.quant->axis);
                             })
      .def("__eq__", [](const TensorType& a, const TensorType& b) { return a == b; })
      .def("__str__", &TensorType::str)
      .def("__repr__", [](const TensorType& t) { return "TensorType(" + t.str() + ")"; });

  // ---- Value ----------------------------------------------------------------------------------
  py::class_<PyValue>(mod, "Value")
      .def_property(
          "name", [](const PyValue& v) { return v.get()->name; },
          [](const PyValue& v, const std::string& n) { v.get()->name = n; })
      .def_property_readonly("type", [](const PyValue& v) { return v.get()->type; })
      .def_property_readonly("shape", [](const PyValue& v) { return v.get()->type.shape; })
      .def_property_readonly("dtype", [](const PyValue& v) { return std::string(elemTypeName(v.get()->type.elem)); })
      .def_property_readonly("is_argument", [](const PyValue& v) { return v.get()->isArgument(); })
      .def_property_readonly(
          "owner",
          [](const PyValue& v) -> py::object {
            Value* val = v.get();
            if (!val->owner) return py::none();
            return py::cast(handle(v.holder, val->owner));
          },
          "The defining op, or None for a function argument.")
      .def(
          "set_type", [](const PyValue& v, const TensorType& t) { v.get()->type = t; },
          "Replace the value's type (e.g. to attach quantization scales); verify() checks it.")
      .def("__eq__", [](const PyValue& a, const PyValue& b) { return a.get() == b.get(); })
      .def("__hash__", [](const PyValue& v) { return std::hash<const void*>()(v.get()); })
      .def("__repr__", [](const PyValue& v) { return "<Value %" + v.get()->name + ": " + v.get()->type.str() + ">"; });

  // ---- Op -------------------------------------------------------------------------------------
  py::class_<PyOp>(mod, "Op")
      .def_property_readonly("name", [](const PyOp& o) { return std::string(o.get()->name()); })
      .def_property_readonly("operands",
                             [](const PyOp& o) {
                               std::vector<PyValue> out;
                               for (Value* v : o.get()->operands()) out.push_back(handle(o.holder, v));
                               return out;
                             })
      .def_property_readonly("results",
                             [](const PyOp& o) {
                               std::vector<PyValue> out;
                               for (auto& v : o.get()->results) out.push_back(handle(o.holder, v.get()));
                               return out;
                             })
      .def(
          "result", [](const PyOp& o, size_t i) { return handle(o.holder, o.get()->result(i)); }, py::arg("index") = 0)
      .def_property_readonly("attrs",
                             [](const PyOp& o) {
                               py::dict d;
                               for (const auto& [k, v] : o.get()->attrs) d[py::str(k)] = attrToPy(v);
                               return d;
                             })
      .def("get_attr", [](const PyOp& o, const std::string& n) { return attrToPy(o.get()->attr(n)); })
      .def(
          "set_attr",
          [](const PyOp& o, const std::string& n, py::handle v) {
            Op* op = o.get();
            op->setAttr(n, attrFromPy(op->def(), n, v));
          },
          "Set an attribute (converted to the kind the op table declares); verify() checks the result.")
      .def_property(
          "loc", [](const PyOp& o) { return o.get()->loc.name; },
          [](const PyOp& o, const std::string& n) { o.get()->loc.name = n; })
      .def_property_readonly("macs",
                             [](const PyOp& o) -> int64_t {
                               Op* op = o.get();
                               return op->def().macs ? op->def().macs(*op) : 0;
                             })
      .def("__eq__", [](const PyOp& a, const PyOp& b) { return a.get() == b.get(); })
      .def("__hash__", [](const PyOp& o) { return std::hash<const void*>()(o.get()); })
      .def("__repr__", [](const PyOp& o) {
        Op* op = o.get();
        std::string s = "<Op " + std::string(op->name());
        if (!op->loc.name.empty()) s += " loc(\"" + op->loc.name + "\")";
        return s + ">";
      });

  // ---- Function -------------------------------------------------------------------------------
  py::class_<PyFunction>(mod, "Function")
      .def_property_readonly("name", [](const PyFunction& f) { return f.get()->name; })
      .def_property_readonly("arguments",
                             [](const PyFunction& f) {
                               std::vector<PyValue> out;
                               for (auto& a : f.get()->args) out.push_back(handle(f.holder, a.get()));
                               return out;
                             })
      .def_property_readonly("ops",
                             [](const PyFunction& f) {
                               std::vector<PyOp> out;
                               for (auto& op : f.get()->ops) out.push_back(handle(f.holder, op.get()));
                               return out;
                             })
      .def_property(
          "returns",
          [](const PyFunction& f) {
            std::vector<PyValue> out;
            for (Value* v : f.get()->returns()) out.push_back(handle(f.holder, v));
            return out;
          },
          [](const PyFunction& f, const std::vector<PyValue>& vs) {
            for (const auto& v : vs)
              if (v.holder != f.holder) throw py::value_error("a returned value belongs to a different module");
            f.get()->setReturns(unwrapValues(vs));
          })
      .def(
          "add_argument",
          [](const PyFunction& f, const TensorType& t, const std::string& name) {
            return handle(f.holder, f.get()->addArgument(t, name));
          },
          py::arg("type"), py::arg("name") = "")
      .def(
          "uses",
          [](const PyFunction& f, const PyValue& v) {
            std::vector<std::pair<py::object, unsigned>> out;
            for (auto [op, i] : f.get()->uses(v.get()))
              out.emplace_back(op ? py::cast(handle(f.holder, op)) : py::object(py::none()), i);
            return out;
          },
          "(op, operand index) pairs reading the value; op is None for a use by `return`.")
      .def("__repr__", [](const PyFunction& f) { return "<Function @" + f.get()->name + ">"; });

  // ---- Module ---------------------------------------------------------------------------------
  py::class_<PyModule>(mod, "Module")
      .def(py::init([](const std::string& name) { return PyModule(std::make_unique<Module>(name)); }),
           py::arg("name") = "main")
      .def_property(
          "name", [](const PyModule& m) { return m.m().name; },
          [](const PyModule& m, const std::string& n) { m.m().name = n; })
      .def_property_readonly("functions",
                             [](const PyModule& m) {
                               std::vector<PyFunction> out;
                               for (auto& f : m.m().functions) out.push_back(handle(m.holder, f.get()));
                               return out;
                             })
      .def("function",
           [](const PyModule& m, const std::string& n) {
             Function* f = m.m().function(n);
             if (!f) throw py::key_error("no function @" + n + " in module @" + m.m().name);
             return handle(m.holder, f);
           })
      .def("add_function",
           [](const PyModule& m, const std::string& n) {
             if (m.m().function(n)) throw py::value_error("function @" + n + " already exists");
             return handle(m.holder, m.m().addFunction(n));
           })
      .def(
          "create_op",
          [](const PyModule& m, const PyFunction& fn, const std::string& opName, const std::vector<PyValue>& operands,
             const py::dict& attrs, const std::vector<TensorType>& resultTypes, const std::string& loc,
             const std::vector<std::string>& names) {
            checkSameModule(m, fn.holder);
            for (const auto& v : operands) checkSameModule(m, v.holder);
            const OpDef* def = lookupOp(opName);
            if (!def) throw VerifyError("error: unknown op '" + opName + "'");
            AttrList list;
            for (auto [k, v] : attrs)
              list.emplace_back(k.cast<std::string>(), attrFromPy(*def, k.cast<std::string>(), v));
            Location l;
            l.name = loc;
            Op* op = m.m().createOp(fn.get(), opName, unwrapValues(operands), std::move(list), resultTypes, l);
            for (size_t i = 0; i < names.size() && i < op->numResults(); ++i) op->result(i)->name = names[i];
            return handle(m.holder, op);
          },
          py::arg("function"), py::arg("op"), py::arg("operands"), py::arg("attrs") = py::dict(),
          py::arg("result_types") = std::vector<TensorType>{}, py::arg("loc") = "",
          py::arg("names") = std::vector<std::string>{},
          "Append an op; result types are inferred unless given (required where the element type is open).")
      .def(
          "create_constant",
          [](const PyModule& m, const PyFunction& fn, py::array data, const std::string& name, py::object dtype,
             py::object scale, int64_t axis) {
            checkSameModule(m, fn.holder);
            ElemType elem = dtype.is_none() ? elemFromNumpy(data.dtype()) : elemFromName(dtype.cast<std::string>());
            Shape shape(data.shape(), data.shape() + data.ndim());
            TensorType t = makeType(shape, elemTypeName(elem), scale, axis);
            Location l;
            l.name = "";
            Op* op = m.m().createConstant(fn.get(), name.empty() ? std::string("const") : name, t,
                                          arrayToBlob(data, elem), l);
            op->result()->name = name;
            return handle(m.holder, op);
          },
          py::arg("function"), py::arg("data"), py::arg("name") = "", py::arg("dtype") = py::none(),
          py::arg("scale") = py::none(), py::arg("axis") = -1,
          "Append a `constant` op holding a copy of `data` in a new resource named after `name`.")
      .def(
          "constant_value",
          [](const PyModule& m, const PyOp& op) {
            checkSameModule(m, op.holder);
            Op* o = op.get();
            if (!o->is("constant")) throw py::value_error("op is '" + std::string(o->name()) + "', not 'constant'");
            return blobToArray(m.m().resource(o->attr("value").asResource().key), o->result()->type);
          },
          "The weights of a `constant` op as a new numpy array.")
      .def(
          "set_constant_value",
          [](const PyModule& m, const PyOp& op, py::array data) {
            checkSameModule(m, op.holder);
            Op* o = op.get();
            if (!o->is("constant")) throw py::value_error("op is '" + std::string(o->name()) + "', not 'constant'");
            const TensorType& t = o->result()->type;
            Shape shape(data.shape(), data.shape() + data.ndim());
            if (shape != t.shape)
              throw py::value_error("expected an array of shape " + TensorType(shape, t.elem).str() + " for " +
                                    t.str());
            m.m().setResource(o->attr("value").asResource().key, arrayToBlob(data, t.elem));
          },
          "Replace the weights of a `constant` op (same shape; converted to its element type).")
      .def_property_readonly("resource_keys",
                             [](const PyModule& m) {
                               std::vector<std::string> keys;
                               for (const auto& [k, v] : m.m().resources()) keys.push_back(k);
                               return keys;
                             })
      .def(
          "verify", [](const PyModule& m) { verifyModule(m.m()); }, "Raise VerifyError if the module is invalid.")
      .def(
          "print", [](const PyModule& m) { return printModule(m.m()); }, "The canonical text form.")
      .def("__str__", [](const PyModule& m) { return printModule(m.m()); })
      .def(
          "run_pipeline",
          [](PyModule& m, const std::vector<std::string>& names, bool verifyEach, bool printIrAfterAll,
             const std::vector<std::string>& printIrAfter, const hbdk::march::March* target,
             const std::optional<std::string>& sourceText, const std::string& sourceName) {
            passes::PassManagerOptions opts;
            opts.verifyEach = verifyEach;
            opts.printIrAfterAll = printIrAfterAll;
            opts.printIrAfter = printIrAfter;
            std::ostringstream dumps;
            opts.irStream = &dumps;
            passes::PassManager pm(opts);
            for (const auto& n : names) pm.add(n);
            hbdk::isa::Program program;
            std::vector<uint8_t> binary;
            passes::PassContext ctx;
            ctx.march = target;
            ctx.program = &program;
            ctx.binary = &binary;
            ctx.sourceText = sourceText ? &*sourceText : nullptr;
            ctx.sourceName = sourceName;
            ++m.holder->generation;  // passes may erase ops: outstanding handles go stale
            {
              py::gil_scoped_release release;
              pm.run(m.m(), ctx);
            }
            py::list timings;
            for (const auto& t : pm.timings())
              timings.append(
                  py::dict(py::arg("pass") = t.pass, py::arg("seconds") = t.seconds, py::arg("stats") = t.stats));
            py::object bin = binary.empty() ? py::object(py::none())
                                            : py::bytes(reinterpret_cast<const char*>(binary.data()), binary.size());
            return py::dict(py::arg("timings") = timings, py::arg("report") = pm.timingReport(),
                            py::arg("ir_dumps") = dumps.str(), py::arg("binary") = bin,
                            py::arg("instructions") = program.instructions.size());
          },
          py::arg("passes"), py::arg("verify_each") = true, py::arg("print_ir_after_all") = false,
          py::arg("print_ir_after") = std::vector<std::string>{}, py::arg("march") = nullptr,
          py::arg("source_text") = py::none(), py::arg("source_name") = "",
          "Run passes or named pipelines in order; `march` is the target for the back-end passes and "
          "`source_text` the input hashed into an .hbm. Returns timings, the --time-passes report, IR dumps, "
          "and the .hbm bytes (`binary`) and instruction count when the pipeline lowers and serializes.")
      .def("__repr__", [](const PyModule& m) { return "<Module @" + m.m().name + ">"; });

  mod.def(
      "parse",
      [](const std::string& text, const std::string& filename) { return PyModule(parseModule(text, filename)); },
      py::arg("text"), py::arg("filename") = "<string>", "Parse and verify HBIR text.");

  mod.def(
      "op_table",
      [] {
        py::list out;
        for (const auto& d : opTable()) out.append(opDefToPy(d));
        return out;
      },
      "Every op of the table, in declaration order, as dicts.");

  mod.def(
      "passes",
      [] {
        std::vector<std::pair<std::string, std::string>> out;
        for (const auto& p : passes::passRegistry()) out.emplace_back(p.name, p.summary);
        return out;
      },
      "(name, summary) of every registered pass.");

  mod.def(
      "pipelines",
      [] {
        py::list out;
        for (const auto& p : passes::pipelineRegistry())
          out.append(py::dict(py::arg("name") = p.name, py::arg("summary") = p.summary, py::arg("passes") = p.passes));
        return out;
      },
      "Named pipelines and their passes.");
  bindNumerics(mod);
  bindMarch(mod);
  bindExec(mod);
  bindHbm(mod);
  bindPerf(mod);
  bindSystolic(mod);
}
