// Python access to the one requantization rule and the LUT builder (docs/numerics.md §2, §5), so
// that the torch int model, the quantize pass's Python side and the tests never restate them.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "exec/layer_norm.h"
#include "exec/lut.h"
#include "exec/requant.h"
#include "host/nms.h"
#include "ir/diagnostics.h"

namespace py = pybind11;
using namespace hbdk;

namespace {

ir::ElemType elemFromName(const std::string& name) {
  auto t = ir::parseElemType(name);
  if (!t) throw py::value_error("unknown element type '" + name + "'");
  return *t;
}

template <typename T>
py::array toArray(const std::vector<int64_t>& v) {
  py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
  auto m = a.template mutable_unchecked<1>();
  for (size_t i = 0; i < v.size(); ++i) m(static_cast<py::ssize_t>(i)) = static_cast<T>(v[i]);
  return std::move(a);
}

}  // namespace

void bindNumerics(py::module_& m) {
  m.def(
      "nms",
      [](py::array_t<float, py::array::c_style | py::array::forcecast> boxes,
         py::array_t<float, py::array::c_style | py::array::forcecast> scores, std::optional<py::object> classes,
         double iouThreshold, int64_t maxKeep) {
        if (boxes.ndim() != 2 || boxes.shape(1) != 4)
          throw py::value_error("nms: boxes must be an (N, 4) array of x1, y1, x2, y2");
        const py::ssize_t n = boxes.shape(0);
        if (scores.ndim() != 1 || scores.shape(0) != n)
          throw py::value_error("nms: scores must be an (N,) array, one per box");
        py::array_t<int64_t, py::array::c_style | py::array::forcecast> cls;
        const bool hasClasses = classes && !classes->is_none();
        if (hasClasses) {
          cls = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(*classes);
          if (!cls || cls.ndim() != 1 || cls.shape(0) != n)
            throw py::value_error("nms: classes must be an (N,) integer array, one per box");
        }
        std::vector<int64_t> keep;
        try {
          py::gil_scoped_release release;
          keep = host::nms(boxes.data(), scores.data(), hasClasses ? cls.data() : nullptr, n, iouThreshold, maxKeep);
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
        return toArray<int64_t>(keep);
      },
      py::arg("boxes"), py::arg("scores"), py::arg("classes") = py::none(), py::arg("iou_threshold"),
      py::arg("max_keep") = -1,
      "Greedy NMS (csrc/host/nms.h): the kept box indices by descending score, boxes of different classes "
      "never suppressing each other.");
  m.def(
      "compute_requant",
      [](double ratio) {
        exec::Requant r = exec::computeRequant(ratio);
        return py::make_tuple(r.multiplier, r.shift);
      },
      py::arg("ratio"),
      "(multiplier, shift) for a real ratio (docs/numerics.md §2); raises HbirError for "
      "ratios that are not finite and positive or are >= 2^31.");
  m.def(
      "layer_norm_params",
      [](int64_t n, double eps, double inScale, double outScale, const std::vector<float>& gamma,
         const std::vector<float>& beta) {
        exec::LayerNormParams p = exec::layerNormParams(n, eps, inScale, outScale, gamma, beta);
        std::vector<int64_t> multipliers, shifts, signs, biases;
        for (const auto& c : p.channels) {
          multipliers.push_back(c.requant.multiplier);
          shifts.push_back(c.requant.shift);
          signs.push_back(c.sign);
          biases.push_back(c.bias);
        }
        return py::make_tuple(p.epsTerm, multipliers, shifts, signs, biases);
      },
      py::arg("n"), py::arg("eps"), py::arg("in_scale"), py::arg("out_scale"), py::arg("gamma"), py::arg("beta"),
      "The integer layer_norm's (eps_term, multipliers, shifts, signs, biases) per channel (docs/numerics.md "
      "§4), as the C++ kernel derives them.");
  m.def(
      "apply_requant",
      [](int64_t x, int64_t multiplier, int32_t shift) { return exec::applyRequant(x, {multiplier, shift}); },
      py::arg("x"), py::arg("multiplier"), py::arg("shift"),
      "(x * multiplier + 2^(shift-1)) >> shift exactly, before saturation.");
  m.def(
      "apply_requant",
      [](py::array_t<int64_t, py::array::c_style | py::array::forcecast> x, int64_t multiplier, int32_t shift) {
        py::array_t<int64_t> out(x.request().shape);
        const int64_t* src = x.data();
        int64_t* dst = out.mutable_data();
        for (py::ssize_t i = 0; i < x.size(); ++i) dst[i] = exec::applyRequant(src[i], {multiplier, shift});
        return out;
      },
      py::arg("x"), py::arg("multiplier"), py::arg("shift"), "Elementwise over an integer array (int64 result).");
  m.def(
      "compute_requant_pair",
      [](double ratioA, double ratioB) {
        exec::RequantPair p = exec::computeRequantPair(ratioA, ratioB);
        return py::make_tuple(p.multiplierA, p.multiplierB, p.shift);
      },
      py::arg("ratio_a"), py::arg("ratio_b"), "(multiplier_a, multiplier_b, shift) sharing one shift, for add/sub.");
  m.def(
      "build_lut",
      [](const std::string& kind, const std::string& inDtype, double inScale, const std::string& outDtype,
         double outScale, double alpha) {
        auto f = exec::parseLutFunction(kind);
        if (!f)
          throw py::value_error("unknown LUT function '" + kind + "' (expected leaky_relu, sigmoid, tanh or exp)");
        ir::ElemType outType = elemFromName(outDtype);
        std::vector<int64_t> table = exec::buildLut(*f, elemFromName(inDtype), inScale, outType, outScale, alpha);
        switch (outType) {
          case ir::ElemType::SI8: return toArray<int8_t>(table);
          case ir::ElemType::SI16: return toArray<int16_t>(table);
          case ir::ElemType::UI8: return toArray<uint8_t>(table);
          default: return toArray<int32_t>(table);
        }
      },
      py::arg("kind"), py::arg("in_dtype"), py::arg("in_scale"), py::arg("out_dtype"), py::arg("out_scale"),
      py::arg("alpha") = 0.01,
      "Table for `lut` (docs/numerics.md §5): 256 entries for an si8 input, 257 knots for si16, as a numpy "
      "array of the output type.");
}
