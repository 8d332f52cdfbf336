// The integer layer_norm of docs/numerics.md §4, in one place: the per-channel parameters the
// kernel derives from the f32 affine operands and the scales (also bound to Python, so that
// int_infer computes with the very same integers), and the normalization of one row.
#pragma once

#include <cstdint>
#include <vector>

#include "exec/requant.h"

namespace hbdk::exec {

// What channel c of the normalized axis multiplies and adds: y = sign * applyRequant(z, requant)
// + bias, with z the row's normalized value in Q16 / sqrt(n). sign 0: gamma is 0, y = bias.
struct LayerNormChannel {
  Requant requant;
  int32_t sign = 0;
  int64_t bias = 0;  // round_half_even(beta / s_out), saturated to int32
};

struct LayerNormParams {
  int64_t epsTerm = 0;  // round_half_even(n * eps / s_in^2), at most 2^40
  std::vector<LayerNormChannel> channels;
};

// Throws ir::Error naming the channel when a ratio is unusable (a requantization >= 2^31).
LayerNormParams layerNormParams(int64_t n, double eps, double inScale, double outScale, const std::vector<float>& gamma,
                                const std::vector<float>& beta);

// Normalizes one row of n quantized values (read at q[i * stride]) into Q16 values z_i ~=
// (x_i - mean) / sqrt(var + eps) / sqrt(n) * 2^16, |z_i| <= 2^16.
void layerNormRow(const int64_t* q, int64_t n, int64_t epsTerm, int64_t* z);

}  // namespace hbdk::exec
