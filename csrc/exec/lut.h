// Lookup tables of docs/numerics.md §5: how the quantize pass turns leaky_relu, sigmoid, tanh and
// exp into a table, and how the `lut` op reads one (direct for si8 input, segmented linear
// interpolation between 257 knots for si16 input).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include "ir/types.h"

namespace hbdk::exec {

enum class LutFunction : uint8_t { LeakyRelu, Sigmoid, Tanh, Exp, Silu, Hardswish, Hardsigmoid, Gelu, Sin, Cos };

// "leaky_relu", "sigmoid", "tanh", "exp", "silu", "hardswish", "hardsigmoid", "gelu", "sin", "cos" (the op
// names); nullopt for any other name.
std::optional<LutFunction> parseLutFunction(std::string_view name);
// The float64 function a table samples; `alpha` only matters for LeakyRelu.
double evalLutFunction(LutFunction f, double x, double alpha = 0.01);

// Entries a table has for an input type: 256 for si8, 257 knots for si16; throws ir::Error for
// any other type.
size_t lutEntries(ir::ElemType inType);

// sat_out(round_half_even(f(x * inScale) / outScale)) at every sample x of the input type
// (docs/numerics.md §5). The scales are the f32 values widened to float64. Throws ir::Error for
// an input type other than si8/si16, an output type that is not an integer type, or a scale that
// is not finite and positive.
std::vector<int64_t> buildLut(const std::function<double(double)>& f, ir::ElemType inType, double inScale,
                              ir::ElemType outType, double outScale);
std::vector<int64_t> buildLut(LutFunction f, ir::ElemType inType, double inScale, ir::ElemType outType, double outScale,
                              double alpha = 0.01);

// The exp table of the integer softmax (docs/numerics.md §4): 256 entries
// round_half_even(65535 * exp(-k * step)), step = inScale (si8 input) or inScale * 256 (si16, whose
// distances are taken in steps of 256). Throws ir::Error for another input type or a scale that
// is not finite and positive.
std::vector<int64_t> softmaxExpTable(ir::ElemType inType, double inScale);

// The table's value at input `q` of type `inType` (the table has lutEntries(inType) entries),
// before saturation to the output type.
int64_t applyLut(const std::vector<int64_t>& table, ir::ElemType inType, int64_t q);

}  // namespace hbdk::exec
