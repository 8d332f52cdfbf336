// Python access to march descriptions and the constraint checker: load or parse a march, read its
// parameters as plain values and dicts, check a module, and list the rules and the schema that
// docs/marches.md is generated from.
#include "march/march.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <sstream>

#include "bindings/handles.h"
#include "ir/text.h"
#include "march/constraints.h"

namespace py = pybind11;
using namespace hbdk;

namespace {

py::dict violationToPy(const march::Violation& v) {
  return py::dict(py::arg("op") = v.op, py::arg("value") = v.value, py::arg("location") = v.location,
                  py::arg("rule") = v.rule, py::arg("actual") = v.actual, py::arg("limit") = v.limit,
                  py::arg("hint") = v.hint, py::arg("message") = v.str());
}

py::list violationsToPy(const std::vector<march::Violation>& vs) {
  py::list out;
  for (const auto& v : vs) out.append(violationToPy(v));
  return out;
}

// The op's limits under their JSON names; fields the march leaves out are absent.
py::dict opConstraintsToPy(const march::OpConstraints& c) {
  py::dict d;
  d["dtypes"] = c.dtypes;
  if (c.kernelMax) d["kernel_max"] = *c.kernelMax;
  if (!c.strides.empty()) d["strides"] = c.strides;
  if (c.dilationMax) d["dilation_max"] = *c.dilationMax;
  if (c.channelsMax) d["channels_max"] = *c.channelsMax;
  if (!c.groupsMode.empty()) d["groups"] = c.groupsMode;
  if (!c.resizeFactors.empty()) d["resize_factors"] = c.resizeFactors;
  if (!c.modes.empty()) d["modes"] = c.modes;
  if (c.kMax) d["k_max"] = *c.kMax;
  return d;
}

std::vector<march::Violation> checkText(const march::March& m, const std::string& text, const std::string& filename) {
  auto mod = ir::parseModule(text, filename);
  return march::checkModule(*mod, m);
}

}  // namespace

void bindMarch(py::module_& m) {
  py::object base = m.attr("HbirError");
  py::register_exception<march::MarchError>(m, "MarchError", base.ptr());

  // ConstraintError carries the violations as dicts besides the multi-line report.
  PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<py::object> constraintErrorType;
  constraintErrorType.call_once_and_store_result(
      [&]() -> py::object { return py::exception<march::ConstraintError>(m, "ConstraintError", base.ptr()); });
  py::register_exception_translator([](std::exception_ptr p) {
    if (!p) return;
    try {
      std::rethrow_exception(p);
    } catch (const march::ConstraintError& e) {
      py::object type = constraintErrorType.get_stored();
      py::object err = type(e.what());
      err.attr("violations") = violationsToPy(e.violations());
      PyErr_SetObject(type.ptr(), err.ptr());
    }
  });

  py::class_<march::March>(m, "March", "A march description: the target's hardware parameters and op constraints.")
      .def_property_readonly("name", [](const march::March& a) { return a.name; })
      .def_property_readonly("description", [](const march::March& a) { return a.description; })
      .def_property_readonly("source_path", [](const march::March& a) { return a.sourcePath; })
      .def_property_readonly("clock_mhz", [](const march::March& a) { return a.clockMHz; })
      .def_property_readonly(
          "peak_tops", [](const march::March& a) { return a.peakTops("int8"); },
          "Peak int8 tera-operations per second (2 per MAC).")
      .def("peak_tops_for", &march::March::peakTops, py::arg("precision"),
           "Peak tera-operations per second at `precision` (\"int8\" or \"int16\").")
      .def_property_readonly("mac_array",
                             [](const march::March& a) {
                               return py::dict(py::arg("rows") = a.macArray.rows, py::arg("cols") = a.macArray.cols,
                                               py::arg("dataflow") = march::dataflowName(a.macArray.dataflow),
                                               py::arg("macs_per_cycle") = a.macArray.macsPerCycle,
                                               py::arg("depthwise_macs_per_cycle") = a.macArray.depthwiseMacsPerCycle);
                             })
      .def_property_readonly("vector_unit",
                             [](const march::March& a) {
                               return py::dict(py::arg("lanes") = a.vectorUnit.lanes,
                                               py::arg("ops_per_cycle_per_lane") = a.vectorUnit.opsPerCyclePerLane);
                             })
      .def_property_readonly(
          "sram",
          [](const march::March& a) {
            return py::dict(py::arg("size_bytes") = a.sram.sizeBytes, py::arg("size_kib") = a.sram.sizeBytes / 1024,
                            py::arg("banks") = a.sram.banks, py::arg("bytes_per_cycle") = a.sram.bytesPerCycle);
          })
      .def_property_readonly("ddr",
                             [](const march::March& a) {
                               return py::dict(py::arg("bandwidth_gbps") = a.ddr.bandwidthGBps,
                                               py::arg("latency_cycles") = a.ddr.latencyCycles);
                             })
      .def_property_readonly("dma",
                             [](const march::March& a) {
                               return py::dict(py::arg("engines") = a.dma.engines,
                                               py::arg("bytes_per_cycle") = a.dma.bytesPerCycle);
                             })
      .def_property_readonly("tensor",
                             [](const march::March& a) {
                               return py::dict(py::arg("max_rank") = a.maxRank, py::arg("max_dim") = a.maxDim);
                             })
      .def_property_readonly(
          "ops",
          [](const march::March& a) {
            py::dict d;
            for (const auto& [name, c] : a.ops) d[py::str(name)] = opConstraintsToPy(c);
            return d;
          },
          "op name -> its constraints under the JSON field names; an op not listed is unsupported.")
      .def_property_readonly("fuse",
                             [](const march::March& a) {
                               return py::dict(py::arg("conv_activation") = a.fuse.convActivation,
                                               py::arg("conv_add") = a.fuse.convAdd);
                             })
      .def(
          "check",
          [](const march::March& a, const bindings::PyModule& module) {
            return violationsToPy(march::checkModule(module.m(), a));
          },
          py::arg("module"), "Every constraint violation of the module on this march, as dicts (empty: it fits).")
      .def(
          "validate",
          [](const march::March& a, const bindings::PyModule& module) {
            auto violations = march::checkModule(module.m(), a);
            if (!violations.empty()) throw march::ConstraintError(std::move(violations), a.name);
          },
          py::arg("module"),
          "Raise ConstraintError (message: the full report; `violations`: the dicts) unless the module fits.")
      .def(
          "check_text",
          [](const march::March& a, const std::string& text, const std::string& filename) {
            return violationsToPy(checkText(a, text, filename));
          },
          py::arg("text"), py::arg("filename") = "<string>",
          "Like check(), for HBIR text; violations carry file:line:col positions.")
      .def("__repr__", [](const march::March& a) {
        std::ostringstream os;
        os << "<March " << a.name << ": " << a.macArray.rows << "x" << a.macArray.cols << " @ " << a.clockMHz
           << " MHz>";
        return os.str();
      });

  m.def("load_march_file", &march::loadMarchFile, py::arg("path"),
        "Load and validate a march JSON file; raises MarchError or ParseError naming the field or position.");
  m.def("parse_march", &march::parseMarch, py::arg("text"), py::arg("origin") = "<string>",
        "Parse and validate march JSON text; `origin` names it in messages.");

  m.def(
      "constraint_rules",
      [] {
        py::list out;
        for (const auto& r : march::constraintRules())
          out.append(py::dict(py::arg("name") = r.name, py::arg("doc") = r.doc, py::arg("hint") = r.hint,
                              py::arg("field") = r.field, py::arg("ops") = r.ops, py::arg("values") = r.values));
        return out;
      },
      "Every hardware rule the checker runs, in report order.");

  m.def(
      "march_schema",
      [] {
        py::list out;
        for (const auto& f : march::marchSchema())
          out.append(py::dict(py::arg("path") = f.path, py::arg("type") = f.type, py::arg("required") = f.required,
                              py::arg("doc") = f.doc));
        return out;
      },
      "The fields of a march JSON file, in schema order.");
}
