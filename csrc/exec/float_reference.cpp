// Float reference kernels, one function per op, dispatched through a single name -> kernel table.
// Loops are naive on purpose (this is the oracle); reductions accumulate in double so that the
// reference is at least as accurate as any optimized kernel compared against it.
#include "exec/float_reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <unordered_map>

#include "exec/index_math.h"
#include "exec/lut.h"
#include "exec/resize_coords.h"

namespace hbdk::exec {

using ir::Op;
using ir::Shape;

namespace {

using Inputs = std::vector<FloatTensor>;
using Kernel = std::vector<FloatTensor> (*)(const Op& op, const Inputs& in);

Shape outShape(const Op& op, size_t i = 0) { return op.result(i)->type.shape; }

template <typename F>
std::vector<FloatTensor> unary(const Inputs& in, F f) {
  FloatTensor out = in[0];
  for (float& v : out.data) v = f(v);
  return {out};
}

std::vector<FloatTensor> relu(const Op&, const Inputs& in) {
  return unary(in, [](float x) { return x > 0.0f ? x : 0.0f; });
}
std::vector<FloatTensor> relu6(const Op&, const Inputs& in) {
  return unary(in, [](float x) { return std::min(std::max(x, 0.0f), 6.0f); });
}
std::vector<FloatTensor> clip(const Op& op, const Inputs& in) {
  float lo = static_cast<float>(op.getFloat("min")), hi = static_cast<float>(op.getFloat("max"));
  return unary(in, [=](float x) { return std::min(std::max(x, lo), hi); });
}
std::vector<FloatTensor> leakyRelu(const Op& op, const Inputs& in) {
  float alpha = static_cast<float>(op.getFloat("alpha"));
  return unary(in, [=](float x) { return x >= 0.0f ? x : alpha * x; });
}
std::vector<FloatTensor> sigmoid(const Op&, const Inputs& in) {
  return unary(in, [](float x) { return static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(x)))); });
}
std::vector<FloatTensor> tanhK(const Op&, const Inputs& in) {
  return unary(in, [](float x) { return std::tanh(x); });
}
std::vector<FloatTensor> expK(const Op&, const Inputs& in) {
  return unary(in, [](float x) { return std::exp(x); });
}
// The activations that quantize to lookup tables, in float64 as the tables sample them.
template <LutFunction F>
std::vector<FloatTensor> lutActivation(const Op&, const Inputs& in) {
  return unary(in, [](float x) { return static_cast<float>(evalLutFunction(F, static_cast<double>(x))); });
}

std::vector<FloatTensor> layerNorm(const Op& op, const Inputs& in) {
  const Shape& s = in[0].shape;
  size_t axis = normAxis(op.getInt("axis"), s.size());
  int64_t n = s[axis], inner = innerOf(s, axis), outer = outerOf(s, axis);
  double eps = op.getFloat("eps");
  FloatTensor out = in[0];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t k) { return static_cast<size_t>((o * n + k) * inner + i); };
      double mean = 0, var = 0;
      for (int64_t k = 0; k < n; ++k) mean += in[0].data[at(k)];
      mean /= static_cast<double>(n);
      for (int64_t k = 0; k < n; ++k) var += (in[0].data[at(k)] - mean) * (in[0].data[at(k)] - mean);
      double rstd = 1.0 / std::sqrt(var / static_cast<double>(n) + eps);
      for (int64_t k = 0; k < n; ++k)
        out.data[at(k)] = static_cast<float>((in[0].data[at(k)] - mean) * rstd * in[1].data[static_cast<size_t>(k)] +
                                             in[2].data[static_cast<size_t>(k)]);
    }
  return {out};
}

std::vector<FloatTensor> softmax(const Op& op, const Inputs& in) {
  const Shape& s = in[0].shape;
  int64_t axis = normAxis(op.getInt("axis"), s.size());
  int64_t dim = s[axis], inner = stridesOf(s)[axis], outer = in[0].numel() / std::max<int64_t>(dim * inner, 1);
  FloatTensor out(s);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const float* x = in[0].data.data() + o * dim * inner + i;
      float* y = out.data.data() + o * dim * inner + i;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t d = 0; d < dim; ++d) mx = std::max(mx, x[d * inner]);
      // Shifting by the max keeps exp() finite for large logits.
      std::vector<double> e(static_cast<size_t>(dim));
      double sum = 0;
      for (int64_t d = 0; d < dim; ++d) sum += e[d] = std::exp(static_cast<double>(x[d * inner]) - mx);
      for (int64_t d = 0; d < dim; ++d) y[d * inner] = static_cast<float>(e[d] / sum);
    }
  return {out};
}

template <typename F>
std::vector<FloatTensor> binary(const Op& op, const Inputs& in, F f) {
  FloatTensor out(outShape(op));
  std::vector<int64_t> ls = broadcastStrides(in[0].shape, out.shape), rs = broadcastStrides(in[1].shape, out.shape);
  forEachIndex(out.shape, [&](int64_t o, const std::vector<int64_t>& c) {
    int64_t l = 0, r = 0;
    for (size_t d = 0; d < c.size(); ++d) l += c[d] * ls[d], r += c[d] * rs[d];
    out.data[o] = f(in[0].data[l], in[1].data[r]);
  });
  return {out};
}
std::vector<FloatTensor> add(const Op& op, const Inputs& in) {
  return binary(op, in, [](float a, float b) { return a + b; });
}
std::vector<FloatTensor> sub(const Op& op, const Inputs& in) {
  return binary(op, in, [](float a, float b) { return a - b; });
}
std::vector<FloatTensor> mul(const Op& op, const Inputs& in) {
  return binary(op, in, [](float a, float b) { return a * b; });
}

// reshape and flatten only reinterpret the shape of row-major data.
std::vector<FloatTensor> reshape(const Op& op, const Inputs& in) { return {FloatTensor(outShape(op), in[0].data)}; }

std::vector<FloatTensor> transpose(const Op& op, const Inputs& in) {
  const auto& perm = op.getInts("perm");
  std::vector<int64_t> inStrides = stridesOf(in[0].shape);
  FloatTensor out(outShape(op));
  forEachIndex(out.shape, [&](int64_t o, const std::vector<int64_t>& c) {
    int64_t src = 0;
    for (size_t d = 0; d < c.size(); ++d) src += c[d] * inStrides[normAxis(perm[d], perm.size())];
    out.data[o] = in[0].data[src];
  });
  return {out};
}

std::vector<FloatTensor> concat(const Op& op, const Inputs& in) {
  FloatTensor out(outShape(op));
  int64_t axis = normAxis(op.getInt("axis"), out.shape.size());
  int64_t inner = stridesOf(out.shape)[axis];
  int64_t outer = ir::numElements(Shape(out.shape.begin(), out.shape.begin() + axis));
  float* dst = out.data.data();
  for (int64_t o = 0; o < outer; ++o)
    for (const FloatTensor& t : in) {
      int64_t chunk = t.shape[axis] * inner;
      std::copy_n(t.data.data() + o * chunk, chunk, dst);
      dst += chunk;
    }
  return {out};
}

std::vector<FloatTensor> split(const Op& op, const Inputs& in) {
  const Shape& s = in[0].shape;
  int64_t axis = normAxis(op.getInt("axis"), s.size());
  int64_t inner = stridesOf(s)[axis], outer = ir::numElements(Shape(s.begin(), s.begin() + axis));
  std::vector<FloatTensor> outs;
  for (size_t i = 0; i < op.numResults(); ++i) outs.emplace_back(outShape(op, i));
  const float* src = in[0].data.data();
  for (int64_t o = 0; o < outer; ++o)
    for (FloatTensor& t : outs) {
      int64_t chunk = t.shape[axis] * inner;
      std::copy_n(src, chunk, t.data.data() + o * chunk);
      src += chunk;
    }
  return outs;
}

std::vector<FloatTensor> slice(const Op& op, const Inputs& in) {
  const Shape& s = in[0].shape;
  std::vector<int64_t> start(s.size(), 0), step(s.size(), 1);
  const auto &axes = op.getInts("axes"), &starts = op.getInts("starts"), &steps = op.getInts("steps");
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t a = normAxis(axes[i], s.size());
    int64_t b = starts[i] < 0 ? starts[i] + s[a] : starts[i];
    start[a] = std::clamp<int64_t>(b, 0, s[a]);
    step[a] = steps.empty() ? 1 : steps[i];
  }
  std::vector<int64_t> inStrides = stridesOf(s);
  FloatTensor out(outShape(op));
  forEachIndex(out.shape, [&](int64_t o, const std::vector<int64_t>& c) {
    int64_t src = 0;
    for (size_t d = 0; d < c.size(); ++d) src += (start[d] + c[d] * step[d]) * inStrides[d];
    out.data[o] = in[0].data[src];
  });
  return {out};
}

std::vector<FloatTensor> pad(const Op& op, const Inputs& in) {
  const Shape& s = in[0].shape;
  const auto& pads = op.getInts("pads");
  const std::string& mode = op.getString("mode");
  float value = static_cast<float>(op.getFloat("value"));
  std::vector<int64_t> inStrides = stridesOf(s);
  FloatTensor out(outShape(op));
  forEachIndex(out.shape, [&](int64_t o, const std::vector<int64_t>& c) {
    int64_t src = 0;
    for (size_t d = 0; d < c.size(); ++d) {
      int64_t i = c[d] - pads[d];
      if (i < 0 || i >= s[d]) {
        if (mode == "constant") {
          out.data[o] = value;
          return;
        }
        i = padSource(i, s[d], mode);
      }
      src += i * inStrides[d];
    }
    out.data[o] = in[0].data[src];
  });
  return {out};
}

std::vector<FloatTensor> batchNorm(const Op& op, const Inputs& in) {
  const FloatTensor &x = in[0], &mean = in[1], &var = in[2], &gamma = in[3], &beta = in[4];
  double eps = op.getFloat("eps");
  int64_t channels = x.shape[1], inner = stridesOf(x.shape)[1];
  FloatTensor out(x.shape);
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t c = (i / inner) % channels;
    double scale = gamma.data[c] / std::sqrt(static_cast<double>(var.data[c]) + eps);
    out.data[i] = static_cast<float>((x.data[i] - static_cast<double>(mean.data[c])) * scale + beta.data[c]);
  }
  return {out};
}

std::vector<FloatTensor> linear(const Op& op, const Inputs& in) {
  const FloatTensor &x = in[0], &w = in[1];
  int64_t n = w.shape[0], k = w.shape[1], rows = x.numel() / k;
  FloatTensor out(outShape(op));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) {
      double acc = in.size() > 2 ? in[2].data[j] : 0.0;
      for (int64_t i = 0; i < k; ++i) acc += static_cast<double>(x.data[r * k + i]) * w.data[j * k + i];
      out.data[r * n + j] = static_cast<float>(acc);
    }
  return {out};
}

std::vector<FloatTensor> matmul(const Op& op, const Inputs& in) {
  const FloatTensor &a = in[0], &b = in[1];
  FloatTensor out(outShape(op));
  size_t r = out.shape.size();
  int64_t m = out.shape[r - 2], n = out.shape[r - 1], k = a.shape[a.shape.size() - 1];
  Shape batch(out.shape.begin(), out.shape.end() - 2);
  std::vector<int64_t> as = broadcastStrides(Shape(a.shape.begin(), a.shape.end() - 2), batch);
  std::vector<int64_t> bs = broadcastStrides(Shape(b.shape.begin(), b.shape.end() - 2), batch);
  forEachIndex(batch, [&](int64_t o, const std::vector<int64_t>& c) {
    int64_t ao = 0, bo = 0;
    for (size_t d = 0; d < c.size(); ++d) ao += c[d] * as[d], bo += c[d] * bs[d];
    const float* pa = a.data.data() + ao * m * k;
    const float* pb = b.data.data() + bo * k * n;
    float* py = out.data.data() + o * m * n;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t t = 0; t < k; ++t) acc += static_cast<double>(pa[i * k + t]) * pb[t * n + j];
        py[i * n + j] = static_cast<float>(acc);
      }
  });
  return {out};
}

std::vector<FloatTensor> conv2d(const Op& op, const Inputs& in) {
  const FloatTensor &x = in[0], &w = in[1];
  const auto &stride = op.getInts("stride"), &pads = op.getInts("padding"), &dil = op.getInts("dilation");
  int64_t groups = op.getInt("groups");
  FloatTensor out(outShape(op));
  int64_t batch = x.shape[0], cin = x.shape[1], h = x.shape[2], wd = x.shape[3];
  int64_t cout = out.shape[1], oh = out.shape[2], ow = out.shape[3], kh = w.shape[2], kw = w.shape[3];
  int64_t cinG = cin / groups, coutG = cout / groups;
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t oc = 0; oc < cout; ++oc)
      for (int64_t y = 0; y < oh; ++y)
        for (int64_t xo = 0; xo < ow; ++xo) {
          double acc = in.size() > 2 ? in[2].data[oc] : 0.0;
          int64_t g = oc / coutG;
          for (int64_t ic = 0; ic < cinG; ++ic)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                int64_t iy = y * stride[0] - pads[0] + i * dil[0], ix = xo * stride[1] - pads[1] + j * dil[1];
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                acc += static_cast<double>(x.data[((n * cin + g * cinG + ic) * h + iy) * wd + ix]) *
                       w.data[((oc * cinG + ic) * kh + i) * kw + j];
              }
          out.data[((n * cout + oc) * oh + y) * ow + xo] = static_cast<float>(acc);
        }
  return {out};
}

// Scatter form: every input pixel adds its weighted kernel into the output window it reaches.
std::vector<FloatTensor> convTranspose2d(const Op& op, const Inputs& in) {
  const FloatTensor &x = in[0], &w = in[1];
  const auto &stride = op.getInts("stride"), &pads = op.getInts("padding"), &dil = op.getInts("dilation");
  int64_t groups = op.getInt("groups");
  Shape os = outShape(op);
  int64_t batch = x.shape[0], cin = x.shape[1], h = x.shape[2], wd = x.shape[3];
  int64_t cout = os[1], oh = os[2], ow = os[3], kh = w.shape[2], kw = w.shape[3];
  int64_t cinG = cin / groups, coutG = cout / groups;
  std::vector<double> acc(static_cast<size_t>(ir::numElements(os)), 0.0);
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t ic = 0; ic < cin; ++ic)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t xi = 0; xi < wd; ++xi) {
          double v = x.data[((n * cin + ic) * h + y) * wd + xi];
          int64_t g = ic / cinG;
          for (int64_t oc = 0; oc < coutG; ++oc)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                int64_t oy = y * stride[0] - pads[0] + i * dil[0], ox = xi * stride[1] - pads[1] + j * dil[1];
                if (oy < 0 || oy >= oh || ox < 0 || ox >= ow) continue;
                double wv = w.data[((ic * coutG + oc) * kh + i) * kw + j];
                acc[((n * cout + g * coutG + oc) * oh + oy) * ow + ox] += v * wv;
              }
        }
  FloatTensor out(os);
  for (size_t i = 0; i < acc.size(); ++i) {
    int64_t oc = (static_cast<int64_t>(i) / (oh * ow)) % cout;
    out.data[i] = static_cast<float>(acc[i] + (in.size() > 2 ? in[2].data[oc] : 0.0));
  }
  return {out};
}

// max_pool2d and avg_pool2d share the window walk; PyTorch semantics, including windows that
// ceil_mode lets start inside the right/bottom padding.
std::vector<FloatTensor> pool2d(const Op& op, const Inputs& in, bool isMax) {
  const FloatTensor& x = in[0];
  const auto &k = op.getInts("kernel"), &stride = op.getInts("stride"), &pads = op.getInts("padding");
  std::vector<int64_t> dil = isMax ? op.getInts("dilation") : std::vector<int64_t>{1, 1};
  bool includePad = !isMax && op.getBool("count_include_pad");
  FloatTensor out(outShape(op));
  int64_t planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3], oh = out.shape[2], ow = out.shape[3];
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t y = 0; y < oh; ++y)
      for (int64_t xo = 0; xo < ow; ++xo) {
        int64_t y0 = y * stride[0] - pads[0], x0 = xo * stride[1] - pads[1];
        double best = -std::numeric_limits<double>::infinity(), sum = 0;
        int64_t count = 0;
        for (int64_t i = 0; i < k[0]; ++i)
          for (int64_t j = 0; j < k[1]; ++j) {
            int64_t iy = y0 + i * dil[0], ix = x0 + j * dil[1];
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            double v = x.data[(p * h + iy) * w + ix];
            best = std::max(best, v), sum += v, ++count;
          }
        if (includePad) {
          int64_t y1 = std::min(y0 + k[0], h + pads[2]), x1 = std::min(x0 + k[1], w + pads[3]);
          count = (y1 - y0) * (x1 - x0);
        }
        out.data[(p * oh + y) * ow + xo] = static_cast<float>(isMax ? best : sum / std::max<int64_t>(count, 1));
      }
  return {out};
}
std::vector<FloatTensor> maxPool2d(const Op& op, const Inputs& in) { return pool2d(op, in, true); }
std::vector<FloatTensor> avgPool2d(const Op& op, const Inputs& in) { return pool2d(op, in, false); }

std::vector<FloatTensor> globalAvgPool2d(const Op& op, const Inputs& in) {
  const FloatTensor& x = in[0];
  int64_t planes = x.shape[0] * x.shape[1], hw = x.shape[2] * x.shape[3];
  FloatTensor out(outShape(op));
  for (int64_t p = 0; p < planes; ++p) {
    double sum = 0;
    for (int64_t i = 0; i < hw; ++i) sum += x.data[p * hw + i];
    out.data[p] = static_cast<float>(sum / static_cast<double>(hw));
  }
  return {out};
}

std::vector<FloatTensor> resize2d(const Op& op, const Inputs& in) {
  const FloatTensor& x = in[0];
  const std::string& cmode = op.getString("coordinate_mode");
  FloatTensor out(outShape(op));
  int64_t planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3], oh = out.shape[2], ow = out.shape[3];
  ResizeAxis ay{h, oh, cmode}, ax{w, ow, cmode};
  bool nearest = op.getString("mode") == "nearest";
  for (int64_t oy = 0; oy < oh; ++oy)
    for (int64_t ox = 0; ox < ow; ++ox) {
      if (nearest) {
        int64_t iy = ay.nearest(oy), ix = ax.nearest(ox);
        for (int64_t p = 0; p < planes; ++p) out.data[(p * oh + oy) * ow + ox] = x.data[(p * h + iy) * w + ix];
        continue;
      }
      ResizeAxis::Taps ty = ay.taps(oy), tx = ax.taps(ox);
      for (int64_t p = 0; p < planes; ++p) {
        const float* top = x.data.data() + (p * h + ty.i0) * w;
        const float* bottom = x.data.data() + (p * h + ty.i1) * w;
        double t = (1 - tx.frac) * top[tx.i0] + tx.frac * top[tx.i1];
        double b = (1 - tx.frac) * bottom[tx.i0] + tx.frac * bottom[tx.i1];
        out.data[(p * oh + oy) * ow + ox] = static_cast<float>((1 - ty.frac) * t + ty.frac * b);
      }
    }
  return {out};
}

std::vector<FloatTensor> gridSample(const Op& op, const Inputs& in) {
  const FloatTensor &x = in[0], &grid = in[1];
  bool ac = op.getBool("align_corners");
  FloatTensor out(outShape(op));
  int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3], oh = out.shape[2], ow = out.shape[3];
  for (int64_t b = 0; b < n; ++b)
    for (int64_t o = 0; o < oh * ow; ++o) {
      const float* g = grid.data.data() + (b * oh * ow + o) * 2;
      double px = gridSource(static_cast<double>(g[0]), w, ac), py = gridSource(static_cast<double>(g[1]), h, ac);
      double x0 = std::floor(px), y0 = std::floor(py), fx = px - x0, fy = py - y0;
      for (int64_t ch = 0; ch < c; ++ch) {
        const float* plane = x.data.data() + (b * c + ch) * h * w;
        double acc = 0.0;
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx) {
            int64_t iy = static_cast<int64_t>(y0) + dy, ix = static_cast<int64_t>(x0) + dx;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;  // zero padding
            acc += (dy ? fy : 1 - fy) * (dx ? fx : 1 - fx) * plane[iy * w + ix];
          }
        out.data[(b * c + ch) * oh * ow + o] = static_cast<float>(acc);
      }
    }
  return {out};
}

const std::unordered_map<std::string, Kernel>& kernels() {
  static const std::unordered_map<std::string, Kernel> table = {
      {"relu", relu},
      {"relu6", relu6},
      {"clip", clip},
      {"leaky_relu", leakyRelu},
      {"sigmoid", sigmoid},
      {"layer_norm", layerNorm},
      {"silu", lutActivation<LutFunction::Silu>},
      {"hardswish", lutActivation<LutFunction::Hardswish>},
      {"hardsigmoid", lutActivation<LutFunction::Hardsigmoid>},
      {"gelu", lutActivation<LutFunction::Gelu>},
      {"sin", lutActivation<LutFunction::Sin>},
      {"cos", lutActivation<LutFunction::Cos>},
      {"tanh", tanhK},
      {"exp", expK},
      {"softmax", softmax},
      {"add", add},
      {"sub", sub},
      {"mul", mul},
      {"reshape", reshape},
      {"flatten", reshape},
      {"transpose", transpose},
      {"concat", concat},
      {"split", split},
      {"slice", slice},
      {"pad", pad},
      {"batch_norm", batchNorm},
      {"linear", linear},
      {"matmul", matmul},
      {"conv2d", conv2d},
      {"conv_transpose2d", convTranspose2d},
      {"max_pool2d", maxPool2d},
      {"avg_pool2d", avgPool2d},
      {"global_avg_pool2d", globalAvgPool2d},
      {"resize2d", resize2d},
      {"grid_sample", gridSample},
  };
  return table;
}

}  // namespace

FloatTensor floatTensorFromBlob(const Shape& shape, const ir::Blob& bytes) {
  FloatTensor t(shape);
  if (bytes.size() != t.data.size() * sizeof(float))
    throw ir::VerifyError("error: expected " + std::to_string(t.data.size() * sizeof(float)) +
                          " bytes for an f32 tensor of shape [" + ir::shapeStr(shape) + "] but got " +
                          std::to_string(bytes.size()));
  if (!bytes.empty()) std::memcpy(t.data.data(), bytes.data(), bytes.size());
  return t;
}

ir::Blob blobFromFloatTensor(const FloatTensor& t) {
  ir::Blob b(t.data.size() * sizeof(float));
  if (!b.empty()) std::memcpy(b.data(), t.data.data(), b.size());
  return b;
}

FloatTensor constantValue(const ir::Module& m, const Op& constantOp) {
  const ir::TensorType& t = constantOp.result()->type;
  if (t.elem != ir::ElemType::F32) constantOp.error("expected an f32 constant but got " + t.str());
  return floatTensorFromBlob(t.shape, m.resource(constantOp.attr("value").asResource().key));
}

bool hasFloatKernel(const Op& op) { return kernels().count(op.name()) > 0; }
bool floatKernelExists(std::string_view opName) { return kernels().count(std::string(opName)) > 0; }

std::optional<std::vector<FloatTensor>> evalOpFloat(const Op& op, const std::vector<FloatTensor>& inputs) {
  auto it = kernels().find(op.name());
  if (it == kernels().end()) return std::nullopt;
  if (inputs.size() != op.numOperands())
    op.error("expected " + std::to_string(op.numOperands()) + " float input(s) but got " +
             std::to_string(inputs.size()));
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].shape != op.operand(i)->type.shape)
      op.error("float input #" + std::to_string(i) + " has shape [" + ir::shapeStr(inputs[i].shape) +
               "] but the operand type is " + op.operand(i)->type.str());
  return it->second(op, inputs);
}

std::vector<FloatTensor> runFunctionFloat(const ir::Module& m, const ir::Function& fn,
                                          const std::vector<FloatTensor>& args) {
  if (args.size() != fn.args.size())
    throw ir::PassError("error: function @" + fn.name + " takes " + std::to_string(fn.args.size()) +
                        " argument(s) but got " + std::to_string(args.size()));
  std::unordered_map<const ir::Value*, FloatTensor> env;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].shape != fn.args[i]->type.shape)
      throw ir::PassError("error: argument #" + std::to_string(i) + " of @" + fn.name + " expects " +
                          fn.args[i]->type.str() + " but got shape [" + ir::shapeStr(args[i].shape) + "]");
    env[fn.args[i].get()] = args[i];
  }
  for (const auto& op : fn.ops) {
    if (op->is("constant")) {
      env[op->result()] = constantValue(m, *op);
      continue;
    }
    std::vector<FloatTensor> in;
    for (const ir::Value* v : op->operands()) {
      if (v->type.elem != ir::ElemType::F32)
        throw ir::PassError(op->diag("float evaluation needs f32 operands but got " + v->type.str()));
      in.push_back(env.at(v));
    }
    auto out = evalOpFloat(*op, in);
    if (!out) throw ir::PassError(op->diag("has no float reference kernel"));
    for (size_t i = 0; i < out->size(); ++i) env[op->result(i)] = std::move((*out)[i]);
  }
  std::vector<FloatTensor> results;
  for (const ir::Value* v : fn.returns()) results.push_back(env.at(v));
  return results;
}

}  // namespace hbdk::exec
