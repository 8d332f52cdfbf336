// Integer reference kernels: docs/numerics.md §3-§6 stated as one plain loop nest per op, with
// every requantization going through exec::computeRequant. This file holds the helpers the
// kernels share (element access, scale lookups), the arithmetic kernels in the order of the
// doc's table and the op -> kernel table; data movement, pooling, resize and selection are in
// int_reference_spatial.cpp, index math in index_math.h.
#include "exec/int_reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <unordered_map>

#include "exec/index_math.h"
#include "exec/int_reference_internal.h"
#include "exec/layer_norm.h"
#include "exec/lut.h"
#include "exec/requant.h"

namespace hbdk::exec {

using ir::ElemType;
using ir::Op;
using ir::Shape;
using ir::TensorType;

namespace intref {

// ---- Element access ---------------------------------------------------------------------------

Tensor resultTensor(const Op& op, size_t i) { return Tensor(op.result(i)->type); }

// Raw element copy: data movement keeps the element type, whatever it is (f32 included).
void copyElement(const Tensor& src, size_t si, Tensor& dst, size_t di) {
  size_t b = ir::elemTypeBytes(src.type.elem);
  std::memcpy(dst.bytes.data() + di * b, src.bytes.data() + si * b, b);
}

// Ordering value of an element, for argmax/topk, which also accept f32 inputs.
double orderValue(const Tensor& t, size_t i) {
  return t.type.elem == ElemType::F32 ? static_cast<double>(t.getFloat(i)) : static_cast<double>(t.getInt(i));
}

void store(Tensor& t, size_t i, int64_t v) { t.setInt(i, saturate(v, t.type.elem)); }

int64_t roundHalfEven(double v) { return static_cast<int64_t>(std::nearbyint(v)); }

// sat_T(round_half_even(v)) for any double, infinities included.
int64_t saturateRound(double v, ElemType t) {
  if (std::isnan(v)) return 0;
  if (v <= static_cast<double>(minOf(t))) return minOf(t);
  if (v >= static_cast<double>(maxOf(t))) return maxOf(t);
  return roundHalfEven(v);
}

// ---- Types and scales -------------------------------------------------------------------------

std::string operandLabel(size_t i) { return "operand #" + std::to_string(i); }
std::string resultLabel(size_t i) { return "result #" + std::to_string(i); }

void requireInteger(const Op& op, const TensorType& t, const std::string& label) {
  if (!ir::isInteger(t.elem)) op.error(label + ": expected an integer element type but got " + t.str());
}

void requireElem(const Op& op, const TensorType& t, const std::string& label, std::initializer_list<ElemType> ok) {
  std::string names;
  for (ElemType e : ok) {
    if (t.elem == e) return;
    names += std::string(names.empty() ? "" : " or ") + ir::elemTypeName(e);
  }
  op.error(label + ": expected element type " + names + " but got " + t.str());
}

const ir::Quant& quantOf(const Op& op, const TensorType& t, const std::string& label) {
  if (!t.quant) op.error(label + " has no scale; quantize the graph first");
  return *t.quant;
}

// The one scale of a per-tensor quantized type, widened to float64.
double scaleOf(const Op& op, const TensorType& t, const std::string& label) {
  const ir::Quant& q = quantOf(op, t, label);
  if (!q.perTensor() || q.scales.size() != 1) op.error(label + ": expected a per-tensor scale but got " + t.str());
  return static_cast<double>(q.scales[0]);
}
double operandScale(const Op& op, size_t i) { return scaleOf(op, op.operand(i)->type, operandLabel(i)); }
double resultScale(const Op& op, size_t i) { return scaleOf(op, op.result(i)->type, resultLabel(i)); }

ScaleMap scaleMapOf(const Op& op, const TensorType& t, const std::string& label) {
  const ir::Quant& q = quantOf(op, t, label);
  ScaleMap m;
  m.scales.assign(q.scales.begin(), q.scales.end());
  if (!q.perTensor()) {
    size_t axis = static_cast<size_t>(q.axis);
    if (axis >= t.shape.size() || static_cast<int64_t>(q.scales.size()) != t.shape[axis])
      op.error(label + ": expected one scale per index of axis " + std::to_string(q.axis) + " but got " + t.str());
    m.inner = innerOf(t.shape, axis);
    m.dim = t.shape[axis];
  }
  return m;
}

// computeRequant with the op named in the error (a ratio >= 2^31 means the scales are unusable).
Requant requantFor(const Op& op, double ratio) {
  try {
    return computeRequant(ratio);
  } catch (const ir::Error& e) {
    op.error(e.what());
  }
}

void checkInputs(const Op& op, const Inputs& in) {
  if (in.size() != op.numOperands())
    op.error("expected " + std::to_string(op.numOperands()) + " input tensor(s) but got " + std::to_string(in.size()));
  for (size_t i = 0; i < in.size(); ++i) {
    const TensorType& want = op.operand(i)->type;
    const TensorType& got = in[i]->type;
    if (got.shape != want.shape || got.elem != want.elem || in[i]->bytes.size() != want.byteSize())
      op.error(operandLabel(i) + ": expected a tensor of type " + want.str() + " but got " + got.str() + " with " +
               std::to_string(in[i]->bytes.size()) + " bytes");
  }
}

}  // namespace intref

using namespace intref;  // NOLINT(google-build-using-namespace): the kernels' own helpers

namespace {

using Kernel = std::vector<Tensor> (*)(const Op& op, const Inputs& in);

// ---- Convolution and dense: exact int64 accumulation, saturated to si32 -------------------------

void checkAccumulatorOp(const Op& op) {
  for (size_t i = 0; i < op.numOperands(); ++i) requireInteger(op, op.operand(i)->type, operandLabel(i));
  requireElem(op, op.result()->type, resultLabel(0), {ElemType::SI32});
}

int64_t biasAt(const Inputs& in, int64_t c) { return in.size() > 2 ? in[2]->getInt(static_cast<size_t>(c)) : 0; }

std::vector<Tensor> conv2d(const Op& op, const Inputs& in) {
  checkAccumulatorOp(op);
  const Tensor &x = *in[0], &w = *in[1];
  const auto &stride = op.getInts("stride"), &pads = op.getInts("padding"), &dil = op.getInts("dilation");
  int64_t groups = op.getInt("groups");
  Tensor out = resultTensor(op);
  const Shape& os = out.type.shape;
  int64_t batch = x.type.shape[0], cin = x.type.shape[1], h = x.type.shape[2], wd = x.type.shape[3];
  int64_t cout = os[1], oh = os[2], ow = os[3], kh = w.type.shape[2], kw = w.type.shape[3];
  int64_t cinG = cin / groups, coutG = cout / groups;
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t oc = 0; oc < cout; ++oc)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          int64_t acc = biasAt(in, oc);
          int64_t g = oc / coutG;
          for (int64_t ic = 0; ic < cinG; ++ic)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                int64_t iy = oy * stride[0] - pads[0] + i * dil[0], ix = ox * stride[1] - pads[1] + j * dil[1];
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;  // zero padding
                acc += x.getInt(static_cast<size_t>(((n * cin + g * cinG + ic) * h + iy) * wd + ix)) *
                       w.getInt(static_cast<size_t>(((oc * cinG + ic) * kh + i) * kw + j));
              }
          store(out, static_cast<size_t>(((n * cout + oc) * oh + oy) * ow + ox), acc);
        }
  return {std::move(out)};
}

// Scatter form: every input pixel adds its weighted kernel into the outputs it reaches.
std::vector<Tensor> convTranspose2d(const Op& op, const Inputs& in) {
  checkAccumulatorOp(op);
  const Tensor &x = *in[0], &w = *in[1];
  const auto &stride = op.getInts("stride"), &pads = op.getInts("padding"), &dil = op.getInts("dilation");
  int64_t groups = op.getInt("groups");
  Tensor out = resultTensor(op);
  const Shape& os = out.type.shape;
  int64_t batch = x.type.shape[0], cin = x.type.shape[1], h = x.type.shape[2], wd = x.type.shape[3];
  int64_t cout = os[1], oh = os[2], ow = os[3], kh = w.type.shape[2], kw = w.type.shape[3];
  int64_t cinG = cin / groups, coutG = cout / groups;
  std::vector<int64_t> acc(static_cast<size_t>(out.numel()), 0);
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t ic = 0; ic < cin; ++ic)
      for (int64_t iy = 0; iy < h; ++iy)
        for (int64_t ix = 0; ix < wd; ++ix) {
          int64_t v = x.getInt(static_cast<size_t>(((n * cin + ic) * h + iy) * wd + ix));
          int64_t g = ic / cinG;
          for (int64_t oc = 0; oc < coutG; ++oc)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                int64_t oy = iy * stride[0] - pads[0] + i * dil[0], ox = ix * stride[1] - pads[1] + j * dil[1];
                if (oy < 0 || oy >= oh || ox < 0 || ox >= ow) continue;
                acc[static_cast<size_t>(((n * cout + g * coutG + oc) * oh + oy) * ow + ox)] +=
                    v * w.getInt(static_cast<size_t>(((ic * coutG + oc) * kh + i) * kw + j));
              }
        }
  for (size_t i = 0; i < acc.size(); ++i)
    store(out, i, acc[i] + biasAt(in, (static_cast<int64_t>(i) / (oh * ow)) % cout));
  return {std::move(out)};
}

std::vector<Tensor> linear(const Op& op, const Inputs& in) {
  checkAccumulatorOp(op);
  const Tensor &x = *in[0], &w = *in[1];
  int64_t n = w.type.shape[0], k = w.type.shape[1], rows = x.numel() / k;
  Tensor out = resultTensor(op);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) {
      int64_t acc = biasAt(in, j);
      for (int64_t i = 0; i < k; ++i)
        acc += x.getInt(static_cast<size_t>(r * k + i)) * w.getInt(static_cast<size_t>(j * k + i));
      store(out, static_cast<size_t>(r * n + j), acc);
    }
  return {std::move(out)};
}

std::vector<Tensor> matmul(const Op& op, const Inputs& in) {
  checkAccumulatorOp(op);
  const Tensor &a = *in[0], &b = *in[1];
  Tensor out = resultTensor(op);
  const Shape& os = out.type.shape;
  const Shape &as = a.type.shape, &bs = b.type.shape;
  int64_t m = os[os.size() - 2], n = os.back(), k = as.back();
  Shape batch(os.begin(), os.end() - 2);
  std::vector<int64_t> aStrides = broadcastStrides(Shape(as.begin(), as.end() - 2), batch);
  std::vector<int64_t> bStrides = broadcastStrides(Shape(bs.begin(), bs.end() - 2), batch);
  forEachIndex(batch, [&](size_t o, const std::vector<int64_t>& c) {
    int64_t aOff = static_cast<int64_t>(dot(c, aStrides)) * m * k;
    int64_t bOff = static_cast<int64_t>(dot(c, bStrides)) * k * n;
    int64_t yOff = static_cast<int64_t>(o) * m * n;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        int64_t acc = 0;
        for (int64_t t = 0; t < k; ++t)
          acc += a.getInt(static_cast<size_t>(aOff + i * k + t)) * b.getInt(static_cast<size_t>(bOff + t * n + j));
        store(out, static_cast<size_t>(yOff + i * n + j), acc);
      }
  });
  return {std::move(out)};
}

// ---- requantize -------------------------------------------------------------------------------

// One Requant per index of an axis (or a single one): chosen by an element's flat index.
struct ChannelRequant {
  std::vector<Requant> params;
  int64_t inner = 1, dim = 1;

  const Requant& at(size_t flat) const {
    return params.size() == 1 ? params[0] : params[static_cast<size_t>((static_cast<int64_t>(flat) / inner) % dim)];
  }
};

ChannelRequant explicitRequant(const Op& op, const Shape& shape) {
  const auto &mult = op.getInts("multiplier"), &shift = op.getInts("shift");
  ChannelRequant cr;
  for (size_t i = 0; i < mult.size(); ++i) cr.params.push_back({mult[i], static_cast<int32_t>(shift[i])});
  if (mult.size() > 1) {
    size_t axis = normAxis(op.getInt("axis"), shape.size());
    cr.inner = innerOf(shape, axis);
    cr.dim = shape[axis];
  }
  return cr;
}

// From the types: ratio s_in[c] / s_out[c] per index of the per-axis side (both sides per-axis
// must share the axis).
ChannelRequant scaleRequant(const Op& op) {
  const TensorType &x = op.operand(0)->type, &y = op.result()->type;
  ScaleMap in = scaleMapOf(op, x, operandLabel(0)), out = scaleMapOf(op, y, resultLabel(0));
  const ir::Quant &qi = *x.quant, &qo = *y.quant;
  if (!qi.perTensor() && !qo.perTensor() && qi.axis != qo.axis)
    op.error("expected the input and result scales on the same axis but got " + x.str() + " and " + y.str());
  ChannelRequant cr;
  size_t channels = std::max(in.scales.size(), out.scales.size());
  for (size_t c = 0; c < channels; ++c)
    cr.params.push_back(
        requantFor(op, in.scales[in.scales.size() == 1 ? 0 : c] / out.scales[out.scales.size() == 1 ? 0 : c]));
  const ScaleMap& axisSide = in.scales.size() > 1 ? in : out;
  cr.inner = axisSide.inner;
  cr.dim = axisSide.dim;
  return cr;
}

std::vector<Tensor> requantize(const Op& op, const Inputs& in) {
  requireInteger(op, op.operand(0)->type, operandLabel(0));
  requireInteger(op, op.result()->type, resultLabel(0));
  ChannelRequant cr =
      op.getInts("multiplier").empty() ? scaleRequant(op) : explicitRequant(op, op.operand(0)->type.shape);
  const Tensor& x = *in[0];
  Tensor out = resultTensor(op);
  for (size_t i = 0; i < static_cast<size_t>(x.numel()); ++i) store(out, i, applyRequant(x.getInt(i), cr.at(i)));
  return {std::move(out)};
}

// ---- Clamps and tables ------------------------------------------------------------------------

template <typename F>
std::vector<Tensor> elementwise(const Op& op, const Inputs& in, F f) {
  requireInteger(op, op.operand(0)->type, operandLabel(0));
  requireInteger(op, op.result()->type, resultLabel(0));
  const Tensor& x = *in[0];
  Tensor out = resultTensor(op);
  for (size_t i = 0; i < static_cast<size_t>(x.numel()); ++i) store(out, i, f(x.getInt(i)));
  return {std::move(out)};
}

std::vector<Tensor> relu(const Op& op, const Inputs& in) {
  return elementwise(op, in, [](int64_t q) { return std::max<int64_t>(q, 0); });
}

// lo/hi of docs/numerics.md §4: the float bounds in input units, clamped into the result type.
std::vector<Tensor> clampBetween(const Op& op, const Inputs& in, double lo, double hi) {
  double s = operandScale(op, 0);
  ElemType t = op.result()->type.elem;
  int64_t qlo = saturateRound(lo / s, t), qhi = saturateRound(hi / s, t);
  return elementwise(op, in, [=](int64_t q) { return std::min(std::max(q, qlo), qhi); });
}
std::vector<Tensor> relu6(const Op& op, const Inputs& in) { return clampBetween(op, in, 0.0, 6.0); }
std::vector<Tensor> clip(const Op& op, const Inputs& in) {
  return clampBetween(op, in, op.getFloat("min"), op.getFloat("max"));
}

std::vector<Tensor> lut(const Op& op, const Inputs& in) {
  ElemType inType = op.operand(0)->type.elem;
  requireElem(op, op.operand(0)->type, operandLabel(0), {ElemType::SI8, ElemType::SI16});
  const Tensor& table = *in[1];
  size_t entries = lutEntries(inType);
  if (static_cast<size_t>(table.numel()) != entries)
    op.error(operandLabel(1) + ": expected " + std::to_string(entries) + " entries for an " + ir::elemTypeName(inType) +
             " input but got " + table.type.str());
  std::vector<int64_t> values(entries);
  for (size_t i = 0; i < entries; ++i) values[i] = table.getInt(i);
  return elementwise(op, {in[0]}, [&](int64_t q) { return applyLut(values, inType, q); });
}

// ---- Binary elementwise -----------------------------------------------------------------------

template <typename F>
std::vector<Tensor> broadcastBinary(const Op& op, const Inputs& in, F f) {
  for (size_t i = 0; i < 2; ++i) requireInteger(op, op.operand(i)->type, operandLabel(i));
  requireInteger(op, op.result()->type, resultLabel(0));
  const Tensor &a = *in[0], &b = *in[1];
  Tensor out = resultTensor(op);
  std::vector<int64_t> as = broadcastStrides(a.type.shape, out.type.shape);
  std::vector<int64_t> bs = broadcastStrides(b.type.shape, out.type.shape);
  forEachIndex(out.type.shape, [&](size_t o, const std::vector<int64_t>& c) {
    store(out, o, f(a.getInt(dot(c, as)), b.getInt(dot(c, bs))));
  });
  return {std::move(out)};
}

std::vector<Tensor> addOrSub(const Op& op, const Inputs& in, int64_t sign) {
  double sy = resultScale(op);
  RequantPair p;
  try {
    p = computeRequantPair(operandScale(op, 0) / sy, operandScale(op, 1) / sy);
  } catch (const ir::Error& e) {
    op.error(e.what());
  }
  int64_t half = p.shift >= 1 ? int64_t{1} << (p.shift - 1) : 0;
  // |a|, |b| < 2^16 and Ma, Mb < 2^31: the sum stays far inside int64.
  return broadcastBinary(
      op, in, [&](int64_t a, int64_t b) { return (a * p.multiplierA + sign * b * p.multiplierB + half) >> p.shift; });
}
std::vector<Tensor> add(const Op& op, const Inputs& in) { return addOrSub(op, in, 1); }
std::vector<Tensor> sub(const Op& op, const Inputs& in) { return addOrSub(op, in, -1); }

std::vector<Tensor> mul(const Op& op, const Inputs& in) {
  Requant r = requantFor(op, operandScale(op, 0) * operandScale(op, 1) / resultScale(op));
  return broadcastBinary(op, in, [&](int64_t a, int64_t b) { return applyRequant(a * b, r); });
}

// ---- layer_norm ------------------------------------------------------------------------------

std::vector<Tensor> layerNorm(const Op& op, const Inputs& in) {
  const Tensor& x = *in[0];
  requireInteger(op, x.type, operandLabel(0));
  const Shape& s = x.type.shape;
  size_t axis = normAxis(op.getInt("axis"), s.size());
  int64_t n = s[axis], inner = innerOf(s, axis), outer = outerOf(s, axis);
  std::vector<float> gamma(static_cast<size_t>(n)), beta(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    gamma[static_cast<size_t>(k)] = in[1]->getFloat(static_cast<size_t>(k));
    beta[static_cast<size_t>(k)] = in[2]->getFloat(static_cast<size_t>(k));
  }
  LayerNormParams p;
  try {
    p = layerNormParams(n, op.getFloat("eps"), operandScale(op, 0), resultScale(op), gamma, beta);
  } catch (const ir::Error& e) {
    op.error(e.what());
  }
  Tensor out = resultTensor(op);
  std::vector<int64_t> row(static_cast<size_t>(n)), z(static_cast<size_t>(n));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t k) { return static_cast<size_t>((o * n + k) * inner + i); };
      for (int64_t k = 0; k < n; ++k) row[static_cast<size_t>(k)] = x.getInt(at(k));
      layerNormRow(row.data(), n, p.epsTerm, z.data());
      for (int64_t k = 0; k < n; ++k) {
        const LayerNormChannel& c = p.channels[static_cast<size_t>(k)];
        store(out, at(k), c.sign * applyRequant(z[static_cast<size_t>(k)], c.requant) + c.bias);
      }
    }
  return {std::move(out)};
}

// ---- softmax ----------------------------------------------------------------------------------

std::vector<Tensor> softmax(const Op& op, const Inputs& in) {
  const Tensor& x = *in[0];
  requireElem(op, x.type, operandLabel(0), {ElemType::SI8, ElemType::SI16});
  requireInteger(op, op.result()->type, resultLabel(0));
  bool wide = x.type.elem == ElemType::SI16;
  // The exp table is the graph constant quantize built (exec::softmaxExpTable); si16 distances
  // are taken in steps of 256 input units.
  if (in.size() < 2) op.error("expected the exp table as operand #1; the quantize pass builds it");
  const Tensor& table = *in[1];
  requireElem(op, table.type, operandLabel(1), {ElemType::SI32});
  if (table.type.numel() != 256)
    op.error(operandLabel(1) + ": expected 256 entries but got " + std::to_string(table.type.numel()));
  std::vector<int64_t> expTable(256);
  for (size_t k = 0; k < expTable.size(); ++k) expTable[k] = table.getInt(k);
  double kReal = 1.0 / resultScale(op);
  if (!(kReal < 2147483648.0)) op.error("expected a result scale above 2^-31 but got " + op.result()->type.str());
  int64_t kMul = roundHalfEven(kReal);
  size_t axis = normAxis(op.getInt("axis"), x.type.shape.size());
  int64_t dim = x.type.shape[axis], inner = innerOf(x.type.shape, axis), outer = outerOf(x.type.shape, axis);
  Tensor out = resultTensor(op);
  std::vector<int64_t> e(static_cast<size_t>(dim));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t d) { return static_cast<size_t>((o * dim + d) * inner + i); };
      int64_t mx = minOf(x.type.elem);
      for (int64_t d = 0; d < dim; ++d) mx = std::max(mx, x.getInt(at(d)));
      int64_t sum = 0;
      for (int64_t d = 0; d < dim; ++d) {
        int64_t dist = mx - x.getInt(at(d));
        if (wide) dist >>= 8;
        sum += e[static_cast<size_t>(d)] = expTable[static_cast<size_t>(std::min<int64_t>(dist, 255))];
      }
      for (int64_t d = 0; d < dim; ++d) store(out, at(d), (e[static_cast<size_t>(d)] * kMul + sum / 2) / sum);
    }
  return {std::move(out)};
}

// ---- Float boundary ---------------------------------------------------------------------------

std::vector<Tensor> quantize(const Op& op, const Inputs& in) {
  requireElem(op, op.operand(0)->type, operandLabel(0), {ElemType::F32});
  ScaleMap s = scaleMapOf(op, op.result()->type, resultLabel(0));
  const Tensor& x = *in[0];
  Tensor out = resultTensor(op);
  for (size_t i = 0; i < static_cast<size_t>(x.numel()); ++i) {
    float q = x.getFloat(i) / static_cast<float>(s.at(i));  // the division in float32
    out.setInt(i, saturateRound(static_cast<double>(q), out.type.elem));
  }
  return {std::move(out)};
}

std::vector<Tensor> dequantize(const Op& op, const Inputs& in) {
  requireInteger(op, op.operand(0)->type, operandLabel(0));
  ScaleMap s = scaleMapOf(op, op.operand(0)->type, operandLabel(0));
  const Tensor& x = *in[0];
  Tensor out = resultTensor(op);
  for (size_t i = 0; i < static_cast<size_t>(x.numel()); ++i)
    out.setFloat(i, static_cast<float>(x.getInt(i)) * static_cast<float>(s.at(i)));
  return {std::move(out)};
}

const std::unordered_map<std::string, Kernel>& kernels() {
  static const std::unordered_map<std::string, Kernel> table = {
      {"conv2d", conv2d},
      {"conv_transpose2d", convTranspose2d},
      {"linear", linear},
      {"matmul", matmul},
      {"requantize", requantize},
      {"relu", relu},
      {"relu6", relu6},
      {"clip", clip},
      {"lut", lut},
      {"add", add},
      {"sub", sub},
      {"mul", mul},
      {"concat", concat},
      {"split", split},
      {"slice", slice},
      {"reshape", reshape},
      {"flatten", reshape},
      {"transpose", transpose},
      {"gather", gather},
      {"point_pillar_scatter", pointPillarScatter},
      {"max_pool2d", maxPool2d},
      {"pad", pad},
      {"avg_pool2d", avgPool2d},
      {"global_avg_pool2d", globalAvgPool2d},
      {"resize2d", resize2d},
      {"grid_sample", gridSample},
      {"softmax", softmax},
      {"layer_norm", layerNorm},
      {"argmax", argmax},
      {"topk", topk},
      {"quantize", quantize},
      {"dequantize", dequantize},
  };
  return table;
}

}  // namespace

bool intKernelExists(std::string_view opName) { return kernels().count(std::string(opName)) > 0; }

bool hasIntKernel(const Op& op) {
  if (kernels().count(op.name()) == 0) return false;
  for (const ir::Value* v : op.operands())
    if (ir::isInteger(v->type.elem)) return true;
  for (const auto& r : op.results)
    if (ir::isInteger(r->type.elem)) return true;
  return false;
}

std::vector<Tensor> evalOpInt(const Op& op, const Inputs& inputs) {
  auto it = kernels().find(op.name());
  if (it == kernels().end() || !hasIntKernel(op)) op.error("has no integer kernel for these types");
  checkInputs(op, inputs);
  return it->second(op, inputs);
}

}  // namespace hbdk::exec
