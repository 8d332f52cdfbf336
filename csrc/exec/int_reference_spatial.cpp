// Integer reference kernels that move, gather, pool, resize or select elements (docs/numerics.md
// §5-§6): data movement copies elements whatever their type, pooling and resize requantize
// through exec::computeRequant, selection orders int and f32 inputs alike. Registered in the
// kernel table of int_reference.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <string>

#include "exec/index_math.h"
#include "exec/int_reference_internal.h"
#include "exec/resize_coords.h"

namespace hbdk::exec::intref {

using ir::ElemType;
using ir::Op;
using ir::Shape;
using ir::TensorType;

// ---- Data movement ----------------------------------------------------------------------------

namespace {

// Fills `out` from `src` by an index map: srcIndex(outCoords) gives the source flat index.
template <typename F>
Tensor gatherInto(const Op& op, const Tensor& src, size_t result, F srcIndex) {
  Tensor out = resultTensor(op, result);
  forEachIndex(out.type.shape, [&](size_t o, const std::vector<int64_t>& c) { copyElement(src, srcIndex(c), out, o); });
  return out;
}

}  // namespace

std::vector<Tensor> reshape(const Op& op, const Inputs& in) {
  Tensor out = resultTensor(op);
  out.bytes = in[0]->bytes;  // row-major data is unchanged by a reshape
  return {std::move(out)};
}

std::vector<Tensor> transpose(const Op& op, const Inputs& in) {
  const auto& perm = op.getInts("perm");
  std::vector<int64_t> st = stridesOf(in[0]->type.shape);
  std::vector<int64_t> permuted(perm.size());
  for (size_t d = 0; d < perm.size(); ++d) permuted[d] = st[normAxis(perm[d], perm.size())];
  return {gatherInto(op, *in[0], 0, [&](const std::vector<int64_t>& c) { return dot(c, permuted); })};
}

// Concatenation with each input requantized to the output scale; a plain copy when no side
// carries a scale (e.g. si32 index tensors).
std::vector<Tensor> concat(const Op& op, const Inputs& in) {
  Tensor out = resultTensor(op);
  size_t axis = normAxis(op.getInt("axis"), out.type.shape.size());
  bool scaled = out.type.quant.has_value();
  for (size_t i = 0; i < in.size(); ++i) scaled = scaled || op.operand(i)->type.quant.has_value();
  std::vector<Requant> rq;
  if (scaled) {
    double sy = resultScale(op);
    for (size_t i = 0; i < in.size(); ++i) rq.push_back(requantFor(op, operandScale(op, i) / sy));
  }
  int64_t inner = innerOf(out.type.shape, axis), outer = outerOf(out.type.shape, axis);
  size_t dst = 0;
  for (int64_t o = 0; o < outer; ++o)
    for (size_t i = 0; i < in.size(); ++i) {
      int64_t chunk = in[i]->type.shape[axis] * inner;
      for (int64_t j = 0; j < chunk; ++j, ++dst) {
        size_t src = static_cast<size_t>(o * chunk + j);
        if (scaled)
          store(out, dst, applyRequant(in[i]->getInt(src), rq[i]));
        else
          copyElement(*in[i], src, out, dst);
      }
    }
  return {std::move(out)};
}

std::vector<Tensor> split(const Op& op, const Inputs& in) {
  const Tensor& x = *in[0];
  size_t axis = normAxis(op.getInt("axis"), x.type.shape.size());
  std::vector<int64_t> st = stridesOf(x.type.shape);
  std::vector<Tensor> outs;
  int64_t start = 0;
  for (size_t r = 0; r < op.numResults(); ++r) {
    outs.push_back(gatherInto(
        op, x, r, [&](const std::vector<int64_t>& c) { return dot(c, st) + static_cast<size_t>(start * st[axis]); }));
    start += op.result(r)->type.shape[axis];
  }
  return outs;
}

std::vector<Tensor> slice(const Op& op, const Inputs& in) {
  const Shape& s = in[0]->type.shape;
  std::vector<int64_t> start(s.size(), 0), step(s.size(), 1);
  const auto &axes = op.getInts("axes"), &starts = op.getInts("starts"), &steps = op.getInts("steps");
  for (size_t i = 0; i < axes.size(); ++i) {
    size_t a = normAxis(axes[i], s.size());
    start[a] = std::clamp<int64_t>(starts[i] < 0 ? starts[i] + s[a] : starts[i], 0, s[a]);
    step[a] = steps.empty() ? 1 : steps[i];
  }
  std::vector<int64_t> st = stridesOf(s);
  return {gatherInto(op, *in[0], 0, [&](const std::vector<int64_t>& c) {
    int64_t src = 0;
    for (size_t d = 0; d < c.size(); ++d) src += (start[d] + c[d] * step[d]) * st[d];
    return static_cast<size_t>(src);
  })};
}

namespace {

// An index into a dim of size n: negative counts from the end; anything else out of range is an
// error of the data, reported with the op.
int64_t checkedIndex(const Op& op, int64_t i, int64_t n, const std::string& what) {
  if (i < -n || i >= n)
    op.error("expected " + what + " in [" + std::to_string(-n) + ", " + std::to_string(n) + ") but got " +
             std::to_string(i));
  return i < 0 ? i + n : i;
}

}  // namespace

std::vector<Tensor> gather(const Op& op, const Inputs& in) {
  const Tensor &x = *in[0], &idx = *in[1];
  size_t axis = normAxis(op.getInt("axis"), x.type.shape.size());
  int64_t dim = x.type.shape[axis], inner = innerOf(x.type.shape, axis), outer = outerOf(x.type.shape, axis);
  int64_t count = idx.numel();
  Tensor out = resultTensor(op);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < count; ++k) {
      int64_t i = checkedIndex(op, idx.getInt(static_cast<size_t>(k)), dim, "gather indices");
      for (int64_t j = 0; j < inner; ++j)
        copyElement(x, static_cast<size_t>((o * dim + i) * inner + j), out,
                    static_cast<size_t>((o * count + k) * inner + j));
    }
  return {std::move(out)};
}

// Pillars whose batch, y or x falls outside the canvas are skipped (padding rows); a later pillar
// at the same place overwrites an earlier one.
std::vector<Tensor> pointPillarScatter(const Op& op, const Inputs& in) {
  const Tensor &features = *in[0], &coords = *in[1];
  Tensor out = resultTensor(op);  // zero-filled: 0 in every integer type and in f32
  const Shape& os = out.type.shape;
  int64_t pillars = features.type.shape[0], channels = features.type.shape[1];
  for (int64_t p = 0; p < pillars; ++p) {
    int64_t b = coords.getInt(static_cast<size_t>(p * 4)), y = coords.getInt(static_cast<size_t>(p * 4 + 2));
    int64_t x = coords.getInt(static_cast<size_t>(p * 4 + 3));
    if (b < 0 || b >= os[0] || y < 0 || y >= os[2] || x < 0 || x >= os[3]) continue;
    for (int64_t c = 0; c < channels; ++c)
      copyElement(features, static_cast<size_t>(p * channels + c), out,
                  static_cast<size_t>(((b * channels + c) * os[2] + y) * os[3] + x));
  }
  return {std::move(out)};
}

std::vector<Tensor> pad(const Op& op, const Inputs& in) {
  const Tensor& x = *in[0];
  requireInteger(op, x.type, operandLabel(0));
  const Shape& s = x.type.shape;
  const auto& pads = op.getInts("pads");
  const std::string& mode = op.getString("mode");
  double scale = x.type.quant ? operandScale(op, 0) : 1.0;  // unscaled integers pad with the value itself
  int64_t fill = saturateRound(op.getFloat("value") / scale, x.type.elem);
  std::vector<int64_t> st = stridesOf(s);
  Tensor out = resultTensor(op);
  forEachIndex(out.type.shape, [&](size_t o, const std::vector<int64_t>& c) {
    int64_t src = 0;
    for (size_t d = 0; d < c.size(); ++d) {
      int64_t i = c[d] - pads[d];
      if (i < 0 || i >= s[d]) {
        if (mode == "constant") return out.setInt(o, fill);
        i = padSource(i, s[d], mode);
      }
      src += i * st[d];
    }
    copyElement(x, static_cast<size_t>(src), out, o);
  });
  return {std::move(out)};
}

// ---- Pooling ----------------------------------------------------------------------------------

std::vector<Tensor> maxPool2d(const Op& op, const Inputs& in) {
  const Tensor& x = *in[0];
  requireInteger(op, x.type, operandLabel(0));
  const auto &k = op.getInts("kernel"), &stride = op.getInts("stride"), &pads = op.getInts("padding");
  const auto& dil = op.getInts("dilation");
  Tensor out = resultTensor(op);
  int64_t planes = x.type.shape[0] * x.type.shape[1], h = x.type.shape[2], w = x.type.shape[3];
  int64_t oh = out.type.shape[2], ow = out.type.shape[3];
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        int64_t best = minOf(x.type.elem);  // sat(-inf): a dilated window may hold padding only
        for (int64_t i = 0; i < k[0]; ++i)
          for (int64_t j = 0; j < k[1]; ++j) {
            int64_t iy = oy * stride[0] - pads[0] + i * dil[0], ix = ox * stride[1] - pads[1] + j * dil[1];
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;  // padding never wins
            best = std::max(best, x.getInt(static_cast<size_t>((p * h + iy) * w + ix)));
          }
        store(out, static_cast<size_t>((p * oh + oy) * ow + ox), best);
      }
  return {std::move(out)};
}

std::vector<Tensor> avgPool2d(const Op& op, const Inputs& in) {
  const Tensor& x = *in[0];
  requireInteger(op, x.type, operandLabel(0));
  const auto &k = op.getInts("kernel"), &stride = op.getInts("stride"), &pads = op.getInts("padding");
  bool includePad = op.getBool("count_include_pad");
  // One Requant per distinct divisor n: ratio s_in / (s_out * n).
  double sIn = operandScale(op, 0), sOut = resultScale(op);
  std::map<int64_t, Requant> byDivisor;
  Tensor out = resultTensor(op);
  int64_t planes = x.type.shape[0] * x.type.shape[1], h = x.type.shape[2], w = x.type.shape[3];
  int64_t oh = out.type.shape[2], ow = out.type.shape[3];
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        int64_t y0 = oy * stride[0] - pads[0], x0 = ox * stride[1] - pads[1];
        int64_t sum = 0, count = 0;
        for (int64_t iy = std::max<int64_t>(y0, 0); iy < std::min(y0 + k[0], h); ++iy)
          for (int64_t ix = std::max<int64_t>(x0, 0); ix < std::min(x0 + k[1], w); ++ix) {
            sum += x.getInt(static_cast<size_t>((p * h + iy) * w + ix));
            ++count;
          }
        // count_include_pad: the window clipped to the padded input (PyTorch's divisor).
        if (includePad) count = (std::min(y0 + k[0], h + pads[2]) - y0) * (std::min(x0 + k[1], w + pads[3]) - x0);
        auto it = byDivisor.find(count);
        if (it == byDivisor.end())
          it = byDivisor.emplace(count, requantFor(op, sIn / (sOut * static_cast<double>(count)))).first;
        store(out, static_cast<size_t>((p * oh + oy) * ow + ox), applyRequant(sum, it->second));
      }
  return {std::move(out)};
}

std::vector<Tensor> globalAvgPool2d(const Op& op, const Inputs& in) {
  const Tensor& x = *in[0];
  requireInteger(op, x.type, operandLabel(0));
  int64_t planes = x.type.shape[0] * x.type.shape[1], hw = x.type.shape[2] * x.type.shape[3];
  Requant r = requantFor(op, operandScale(op, 0) / (resultScale(op) * static_cast<double>(hw)));
  Tensor out = resultTensor(op);
  for (int64_t p = 0; p < planes; ++p) {
    int64_t sum = 0;
    for (int64_t i = 0; i < hw; ++i) sum += x.getInt(static_cast<size_t>(p * hw + i));
    store(out, static_cast<size_t>(p), applyRequant(sum, r));
  }
  return {std::move(out)};
}

// ---- resize2d ---------------------------------------------------------------------------------

std::vector<Tensor> resize2d(const Op& op, const Inputs& in) {
  const Tensor& x = *in[0];
  requireInteger(op, x.type, operandLabel(0));
  const std::string& cmode = op.getString("coordinate_mode");
  Tensor out = resultTensor(op);
  int64_t planes = x.type.shape[0] * x.type.shape[1], h = x.type.shape[2], w = x.type.shape[3];
  int64_t oh = out.type.shape[2], ow = out.type.shape[3];
  ResizeAxis ay{h, oh, cmode}, ax{w, ow, cmode};
  if (op.getString("mode") == "nearest") {
    for (int64_t p = 0; p < planes; ++p)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox)
          copyElement(x, static_cast<size_t>((p * h + ay.nearest(oy)) * w + ax.nearest(ox)), out,
                      static_cast<size_t>((p * oh + oy) * ow + ox));
    return {std::move(out)};
  }
  Requant r = requantFor(op, operandScale(op, 0) / (resultScale(op) * 1048576.0));
  for (int64_t oy = 0; oy < oh; ++oy) {
    ResizeAxis::Taps ty = ay.taps(oy);
    int64_t y0 = ty.i0, y1 = ty.i1, wy = roundHalfEven(ty.frac * 1024.0);
    for (int64_t ox = 0; ox < ow; ++ox) {
      ResizeAxis::Taps tx = ax.taps(ox);
      int64_t x0 = tx.i0, x1 = tx.i1, wx = roundHalfEven(tx.frac * 1024.0);
      for (int64_t p = 0; p < planes; ++p) {
        auto q = [&](int64_t iy, int64_t ix) { return x.getInt(static_cast<size_t>((p * h + iy) * w + ix)); };
        int64_t acc = (1024 - wy) * (1024 - wx) * q(y0, x0) + (1024 - wy) * wx * q(y0, x1) +
                      wy * (1024 - wx) * q(y1, x0) + wy * wx * q(y1, x1);
        store(out, static_cast<size_t>((p * oh + oy) * ow + ox), applyRequant(acc, r));
      }
    }
  }
  return {std::move(out)};
}

// ---- grid_sample ------------------------------------------------------------------------------

std::vector<Tensor> gridSample(const Op& op, const Inputs& in) {
  const Tensor &x = *in[0], &grid = *in[1];
  requireInteger(op, x.type, operandLabel(0));
  requireInteger(op, grid.type, operandLabel(1));
  bool ac = op.getBool("align_corners");
  double sGrid = operandScale(op, 1);
  Requant r = requantFor(op, operandScale(op, 0) / (resultScale(op) * 1048576.0));
  Tensor out = resultTensor(op);
  int64_t n = x.type.shape[0], c = x.type.shape[1], h = x.type.shape[2], w = x.type.shape[3];
  int64_t oh = out.type.shape[2], ow = out.type.shape[3];
  for (int64_t b = 0; b < n; ++b)
    for (int64_t o = 0; o < oh * ow; ++o) {
      size_t g = static_cast<size_t>((b * oh * ow + o) * 2);
      double px = gridSource(static_cast<double>(grid.getInt(g)) * sGrid, w, ac);
      double py = gridSource(static_cast<double>(grid.getInt(g + 1)) * sGrid, h, ac);
      int64_t x0 = static_cast<int64_t>(std::floor(px)), y0 = static_cast<int64_t>(std::floor(py));
      int64_t wx = roundHalfEven((px - static_cast<double>(x0)) * 1024.0);
      int64_t wy = roundHalfEven((py - static_cast<double>(y0)) * 1024.0);
      for (int64_t ch = 0; ch < c; ++ch) {
        int64_t acc = 0;
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx) {
            int64_t iy = y0 + dy, ix = x0 + dx;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;  // zero padding
            acc += (dy ? wy : 1024 - wy) * (dx ? wx : 1024 - wx) *
                   x.getInt(static_cast<size_t>(((b * c + ch) * h + iy) * w + ix));
          }
        store(out, static_cast<size_t>((b * c + ch) * oh * ow + o), applyRequant(acc, r));
      }
    }
  return {std::move(out)};
}

// ---- Selection --------------------------------------------------------------------------------

std::vector<Tensor> argmax(const Op& op, const Inputs& in) {
  const Tensor& x = *in[0];
  size_t axis = normAxis(op.getInt("axis"), x.type.shape.size());
  int64_t dim = x.type.shape[axis], inner = innerOf(x.type.shape, axis), outer = outerOf(x.type.shape, axis);
  Tensor out = resultTensor(op);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t best = 0;
      for (int64_t d = 1; d < dim; ++d)
        if (orderValue(x, static_cast<size_t>((o * dim + d) * inner + i)) >
            orderValue(x, static_cast<size_t>((o * dim + best) * inner + i)))
          best = d;  // strictly greater: the first maximum wins
      out.setInt(static_cast<size_t>(o * inner + i), best);
    }
  return {std::move(out)};
}

// Results are always best first (sorted = false permits any order; this is the one chosen).
std::vector<Tensor> topk(const Op& op, const Inputs& in) {
  const Tensor& x = *in[0];
  size_t axis = normAxis(op.getInt("axis"), x.type.shape.size());
  int64_t k = op.getInt("k");
  bool largest = op.getBool("largest");
  int64_t dim = x.type.shape[axis], inner = innerOf(x.type.shape, axis), outer = outerOf(x.type.shape, axis);
  Tensor values = resultTensor(op, 0), indices = resultTensor(op, 1);
  std::vector<int64_t> order(static_cast<size_t>(dim));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t d) { return static_cast<size_t>((o * dim + d) * inner + i); };
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        double va = orderValue(x, at(a)), vb = orderValue(x, at(b));
        return largest ? va > vb : va < vb;  // stable: ties keep the lower index first
      });
      for (int64_t j = 0; j < k; ++j) {
        size_t dst = static_cast<size_t>((o * k + j) * inner + i);
        copyElement(x, at(order[static_cast<size_t>(j)]), values, dst);
        indices.setInt(dst, order[static_cast<size_t>(j)]);
      }
    }
  return {std::move(values), std::move(indices)};
}

}  // namespace hbdk::exec::intref
