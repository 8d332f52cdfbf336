// Python access to the .hbm format: load a file or bytes into an HbmModel (the graph as a Module,
// the program as instruction dicts, I/O, perf summary, metadata), and build .hbm bytes from a
// quantized, fused module with the lower and serialize passes.
#include "hbm/hbm.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "bindings/handles.h"
#include "bindings/hbm_model.h"
#include "isa/program.h"
#include "march/march.h"
#include "passes/pass.h"

namespace py = pybind11;
using namespace hbdk;

namespace {

py::dict instructionToPy(const isa::Instruction& in) {
  py::list postOps, sram;
  for (isa::Opcode o : in.postOps) postOps.append(isa::opcodeName(o));
  for (const isa::SramBuffer& b : in.sram)
    sram.append(py::dict(py::arg("role") = isa::bufferRoleName(b.role), py::arg("offset") = b.offset,
                         py::arg("bytes") = b.bytes, py::arg("count") = b.count));
  py::dict d;
  d["unit"] = isa::unitName(in.unit);
  d["opcode"] = isa::opcodeName(in.opcode);
  d["op_index"] = in.opIndex;
  d["ops"] = in.ops;
  d["group"] = in.group;
  d["layer"] = in.layer;
  d["post_ops"] = postOps;
  d["input_dtype"] = ir::elemTypeName(in.inputElem);
  d["output_shape"] = in.outputShape;
  d["tile_shape"] = in.tileShape;
  d["tile_count"] = in.tileCount;
  d["gemm"] = py::dict(py::arg("batch") = in.gemmBatch, py::arg("m") = in.gemmM, py::arg("n") = in.gemmN,
                       py::arg("k") = in.gemmK);
  d["macs"] = in.macs;
  d["elements"] = in.elements;
  d["bytes_in"] = in.bytesIn;
  d["bytes_out"] = in.bytesOut;
  d["ddr_read_bytes"] = in.ddrReadBytes;
  d["ddr_write_bytes"] = in.ddrWriteBytes;
  d["sram"] = sram;
  return d;
}

py::dict sramPlanToPy(const isa::SramPlan& s) {
  py::list resident;
  for (const isa::SramRegion& r : s.resident)
    resident.append(py::dict(py::arg("value") = r.value, py::arg("offset") = r.offset, py::arg("bytes") = r.bytes,
                             py::arg("first_instruction") = r.firstInstruction,
                             py::arg("last_instruction") = r.lastInstruction));
  return py::dict(py::arg("capacity_bytes") = s.capacityBytes, py::arg("peak_bytes") = s.peakBytes,
                  py::arg("onchip_bytes") = s.onChipBytes, py::arg("spilled_bytes") = s.spilledBytes,
                  py::arg("resident") = resident);
}

py::list ioToPy(const std::vector<hbm::IoDesc>& ios) {
  py::list out;
  for (const hbm::IoDesc& d : ios)
    out.append(py::dict(py::arg("name") = d.name, py::arg("shape") = d.shape,
                        py::arg("dtype") = ir::elemTypeName(d.dtype),
                        py::arg("quant_dtype") = ir::elemTypeName(d.quantDtype), py::arg("scales") = d.scales,
                        py::arg("axis") = d.axis));
  return out;
}

using bindings::PyHbmModel;

PyHbmModel wrap(hbm::HbmModel m) {
  PyHbmModel out;
  out.module = py::cast(bindings::PyModule(std::move(m.module)));
  out.model = std::move(m);
  return out;
}

std::vector<uint8_t> bufferBytes(const py::buffer& data) {
  py::buffer_info info = data.request();
  if (info.itemsize != 1 || info.ndim != 1 || (info.ndim == 1 && info.strides[0] != 1))
    throw py::type_error("expected bytes, bytearray or a contiguous byte buffer");
  const auto* p = static_cast<const uint8_t*>(info.ptr);
  return std::vector<uint8_t>(p, p + info.size);
}

}  // namespace

void bindHbm(py::module_& m) {
  py::object base = m.attr("HbirError");
  py::register_exception<hbm::HbmError>(m, "HbmError", base.ptr());

  py::class_<PyHbmModel>(m, "HbmModel", "A verified .hbm file: graph, BPU program, I/O, perf summary, metadata.")
      .def_readonly("module", &PyHbmModel::module, "The graph the executor runs, constants included (a Module).")
      .def_property_readonly(
          "graph_text", [](const PyHbmModel& h) { return h.model.graphText; }, "Canonical HBIR text of the graph.")
      .def_property_readonly("march", [](const PyHbmModel& h) { return h.model.march; })
      .def_property_readonly("format_version", [](const PyHbmModel& h) { return h.model.formatVersion; })
      .def_property_readonly("compiler_version", [](const PyHbmModel& h) { return h.model.compilerVersion; })
      .def_property_readonly("flags", [](const PyHbmModel& h) { return h.model.flags; })
      .def_property_readonly(
          "inputs", [](const PyHbmModel& h) { return ioToPy(h.model.inputs); },
          "Graph inputs: dicts of name, shape, dtype, quant_dtype, scales, axis.")
      .def_property_readonly("outputs", [](const PyHbmModel& h) { return ioToPy(h.model.outputs); })
      .def_property_readonly(
          "perf_summary",
          [](const PyHbmModel& h) {
            py::dict d;
            for (const auto& [k, v] : h.model.perfSummary) d[py::str(k)] = v;
            return d;
          },
          "Totals over the program: MACs, instruction counts, DDR bytes, SRAM use.")
      .def_property_readonly("metadata",
                             [](const PyHbmModel& h) {
                               py::dict d;
                               for (const auto& [k, v] : h.model.metadata) d[py::str(k)] = v;
                               return d;
                             })
      .def_property_readonly(
          "source_hash", [](const PyHbmModel& h) { return h.model.sourceHashHex(); },
          "SHA-256 (hex) of the input .hbir text (or of the graph, see metadata source_hash_of).")
      .def_property_readonly(
          "program",
          [](const PyHbmModel& h) {
            py::list out;
            for (const isa::Instruction& in : h.model.program.instructions) out.append(instructionToPy(in));
            return out;
          },
          "The BPU instructions, one dict each.")
      .def_property_readonly("sram_plan", [](const PyHbmModel& h) { return sramPlanToPy(h.model.program.sram); })
      .def_property_readonly("program_text", [](const PyHbmModel& h) { return isa::printProgram(h.model.program); })
      .def("__repr__", [](const PyHbmModel& h) {
        return "<HbmModel march=" + h.model.march +
               " instructions=" + std::to_string(h.model.program.instructions.size()) +
               " version=" + std::to_string(h.model.formatVersion) + ">";
      });

  m.def(
      "load_hbm_bytes",
      [](const py::buffer& data, const std::string& origin) {
        std::vector<uint8_t> bytes = bufferBytes(data);
        return wrap(hbm::readHbm(bytes.data(), bytes.size(), origin));
      },
      py::arg("data"), py::arg("origin") = "<bytes>",
      "Verify and load .hbm bytes; raises HbmError naming what is wrong with a corrupt file.");
  m.def(
      "load_hbm", [](const std::string& path) { return wrap(hbm::loadHbmFile(path)); }, py::arg("path"),
      "Verify and load an .hbm file.");
  m.def(
      "build_hbm",
      [](const bindings::PyModule& module, const march::March& march, const std::optional<std::string>& sourceText,
         const std::string& sourceName) {
        isa::Program program;
        std::vector<uint8_t> binary;
        passes::PassContext ctx;
        ctx.march = &march;
        ctx.program = &program;
        ctx.binary = &binary;
        ctx.sourceText = sourceText ? &*sourceText : nullptr;
        ctx.sourceName = sourceName;
        passes::createPass("lower")->run(module.m(), ctx);
        passes::createPass("serialize")->run(module.m(), ctx);
        return py::bytes(reinterpret_cast<const char*>(binary.data()), binary.size());
      },
      py::arg("module"), py::arg("march"), py::arg("source_text") = py::none(), py::arg("source_name") = "",
      "Lower a quantized, fused module for `march` and serialize it: the .hbm bytes. The module is unchanged.");
}
