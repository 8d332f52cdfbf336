// What the integer reference kernels share across their files (int_reference.cpp: the helpers,
// the arithmetic kernels and the op -> kernel table; int_reference_spatial.cpp: data movement,
// pooling, resize and selection). Not a public interface: exec/int_reference.h is.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "exec/requant.h"
#include "exec/tensor.h"
#include "ir/ir.h"

namespace hbdk::exec::intref {

using Inputs = std::vector<const Tensor*>;

// ---- Element access
Tensor resultTensor(const ir::Op& op, size_t i = 0);
// Raw element copy: data movement keeps the element type, whatever it is (f32 included).
void copyElement(const Tensor& src, size_t si, Tensor& dst, size_t di);
// Ordering value of an element, for argmax/topk, which also accept f32 inputs.
double orderValue(const Tensor& t, size_t i);
void store(Tensor& t, size_t i, int64_t v);  // saturated to the tensor's element type
int64_t roundHalfEven(double v);
// sat_T(round_half_even(v)) for any double, infinities included.
int64_t saturateRound(double v, ir::ElemType t);

// ---- Types and scales (each check names the op and the operand or result)
std::string operandLabel(size_t i);
std::string resultLabel(size_t i);
void requireInteger(const ir::Op& op, const ir::TensorType& t, const std::string& label);
void requireElem(const ir::Op& op, const ir::TensorType& t, const std::string& label,
                 std::initializer_list<ir::ElemType> ok);
const ir::Quant& quantOf(const ir::Op& op, const ir::TensorType& t, const std::string& label);
// The one scale of a per-tensor quantized type, widened to float64.
double scaleOf(const ir::Op& op, const ir::TensorType& t, const std::string& label);
double operandScale(const ir::Op& op, size_t i);
double resultScale(const ir::Op& op, size_t i = 0);

// Per-element scale lookup for a per-tensor or per-axis quantized type.
struct ScaleMap {
  std::vector<double> scales;  // one, or one per index of `axis`
  int64_t inner = 1, dim = 1;

  double at(size_t flat) const {
    return scales.size() == 1 ? scales[0] : scales[static_cast<size_t>((static_cast<int64_t>(flat) / inner) % dim)];
  }
};

ScaleMap scaleMapOf(const ir::Op& op, const ir::TensorType& t, const std::string& label);
// computeRequant with the op named in the error (a ratio >= 2^31 means the scales are unusable).
Requant requantFor(const ir::Op& op, double ratio);
void checkInputs(const ir::Op& op, const Inputs& in);

// ---- The kernels of int_reference_spatial.cpp
std::vector<Tensor> reshape(const ir::Op& op, const Inputs& in);
std::vector<Tensor> transpose(const ir::Op& op, const Inputs& in);
std::vector<Tensor> concat(const ir::Op& op, const Inputs& in);
std::vector<Tensor> split(const ir::Op& op, const Inputs& in);
std::vector<Tensor> slice(const ir::Op& op, const Inputs& in);
std::vector<Tensor> gather(const ir::Op& op, const Inputs& in);
std::vector<Tensor> pointPillarScatter(const ir::Op& op, const Inputs& in);
std::vector<Tensor> pad(const ir::Op& op, const Inputs& in);
std::vector<Tensor> maxPool2d(const ir::Op& op, const Inputs& in);
std::vector<Tensor> avgPool2d(const ir::Op& op, const Inputs& in);
std::vector<Tensor> globalAvgPool2d(const ir::Op& op, const Inputs& in);
std::vector<Tensor> resize2d(const ir::Op& op, const Inputs& in);
std::vector<Tensor> gridSample(const ir::Op& op, const Inputs& in);
std::vector<Tensor> argmax(const ir::Op& op, const Inputs& in);
std::vector<Tensor> topk(const ir::Op& op, const Inputs& in);

}  // namespace hbdk::exec::intref
