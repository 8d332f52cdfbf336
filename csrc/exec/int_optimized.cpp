// The optimized si8 kernels: every one reduces to int32 dot products of int16 rows over a
// contiguous K (weights packed once as [rows][Kp], activations gathered per tile), the form GCC
// vectorizes into pmaddwd at -O3 with no -march flag; bias and saturation follow in int64.
#include "exec/int_optimized.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace hbdk::exec {
namespace {

using ir::ElemType;

constexpr int64_t kMR = 2;  // weight rows per micro-kernel
constexpr int64_t kNR = 4;  // activation rows per micro-kernel
// Activation tiles aim at this many bytes so that a tile stays in L2 while every weight row
// streams past it.
constexpr int64_t kTileBytes = 96 * 1024;

int64_t roundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// MR x NR int32 dot products of rows a[i*lda], b[j*ldb] over k < K. The k loop is a set of
// reductions of widened int16 products, which GCC turns into pmaddwd; int32 is exact because
// callers keep K <= kMaxExactInt8Reduction and the values in si8 range.
template <int64_t MR, int64_t NR>
inline void dotBlock(const int16_t* __restrict a, int64_t lda, const int16_t* __restrict b, int64_t ldb, int64_t K,
                     int32_t* __restrict acc) {
  int32_t c[MR][NR] = {};
  for (int64_t k = 0; k < K; ++k)
    for (int64_t i = 0; i < MR; ++i)
      for (int64_t j = 0; j < NR; ++j) c[i][j] += int32_t{a[i * lda + k]} * int32_t{b[j * ldb + k]};
  for (int64_t i = 0; i < MR; ++i)
    for (int64_t j = 0; j < NR; ++j) acc[i * NR + j] = c[i][j];
}

// sat32(int64(sum) + bias) without int64: the wrapped int32 sum overflowed exactly when both
// addends share a sign the result lacks. Branch-free so that the loops over it vectorize.
inline int32_t addSaturate(int32_t a, int32_t b) {
  const int32_t r = static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
  const int32_t overflow = ((a ^ r) & (b ^ r)) >> 31;                     // all ones on overflow
  const int32_t limit = (a >> 31) ^ std::numeric_limits<int32_t>::max();  // INT32_MIN when a < 0
  return (r & ~overflow) | (limit & overflow);
}

inline int32_t addBiasSaturate(int32_t sum, const int32_t* bias, int64_t i) {
  return bias ? addSaturate(sum, bias[i]) : sum;
}

// int16 rows of length `ld` (K rounded up to 8, zero tail), row count rounded up to kMR with zero
// rows, so the micro-kernel never needs a weight-side tail.
struct PackedRows {
  std::vector<int16_t> data;
  int64_t rows = 0;  // real rows
  int64_t ld = 0;
  const int16_t* row(int64_t i) const { return data.data() + i * ld; }
};

// out[i * strideI + j * strideJ] = sat32(bias[i] + A[i] . B[j]) for i in [i0, i1) (i0 a multiple of
// kMR) and j in [0, nb), B rows at b + j * ldb zero-padded to A.ld.
void gemmBlock(const PackedRows& A, int64_t i0, int64_t i1, const int16_t* b, int64_t ldb, int64_t nb,
               const int32_t* bias, int32_t* out, int64_t strideI, int64_t strideJ) {
  const int64_t K = A.ld;
  int64_t j = 0;
  for (; j + kNR <= nb; j += kNR) {
    for (int64_t i = i0; i < i1; i += kMR) {
      int32_t acc[kMR * kNR];
      dotBlock<kMR, kNR>(A.row(i), K, b + j * ldb, ldb, K, acc);
      for (int64_t ii = 0; ii < kMR && i + ii < i1; ++ii)
        for (int64_t jj = 0; jj < kNR; ++jj)
          out[(i + ii) * strideI + (j + jj) * strideJ] = addBiasSaturate(acc[ii * kNR + jj], bias, i + ii);
    }
  }
  for (; j < nb; ++j) {
    for (int64_t i = i0; i < i1; i += kMR) {
      int32_t acc[kMR];
      dotBlock<kMR, 1>(A.row(i), K, b + j * ldb, ldb, K, acc);
      for (int64_t ii = 0; ii < kMR && i + ii < i1; ++ii)
        out[(i + ii) * strideI + j * strideJ] = addBiasSaturate(acc[ii], bias, i + ii);
    }
  }
}

// Splits `rows` weight rows into chunks (multiples of kMR) so that `tasks` x chunks gives every
// thread a few tasks; large activation-side task counts keep one chunk (no repeated gathering).
int64_t weightChunkRows(int64_t rows, int64_t tasks, int threads) {
  int64_t want = 4 * int64_t{threads};
  if (tasks >= want || rows <= kMR) return roundUp(rows, kMR);
  int64_t chunks = std::min(ceilDiv(want, tasks), ceilDiv(rows, kMR * 4));
  return roundUp(ceilDiv(rows, std::max<int64_t>(chunks, 1)), kMR);
}

// Activation rows per tile for row length `ld`.
int64_t tileRows(int64_t ld, int64_t total) {
  int64_t rows = std::max<int64_t>(kNR, kTileBytes / (2 * ld) / kNR * kNR);
  return std::min(rows, std::max<int64_t>(total, 1));
}

// Scratch buffers per thread, reused across tasks and runs so that steady-state runs allocate
// nothing: one for a task's tile, one for a whole run's transposed input (the calling thread's).
int16_t* scratch(size_t n) {
  thread_local std::vector<int16_t> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}
int16_t* runScratch(size_t n) {
  thread_local std::vector<int16_t> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

bool isType(const ir::Value* v, ElemType e) { return v->type.elem == e; }

// Weight rows [rows][K] of si8 -> PackedRows; `at(r, k)` gives the element.
template <typename At>
PackedRows packRows(int64_t rows, int64_t K, At at) {
  PackedRows p;
  p.rows = rows;
  p.ld = roundUp(std::max<int64_t>(K, 1), 8);
  p.data.assign(static_cast<size_t>(roundUp(rows, kMR) * p.ld), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < K; ++k) p.data[static_cast<size_t>(r * p.ld + k)] = at(r, k);
  return p;
}

// si8 rows of length K at src (row stride K) -> int16 rows of length ld with a zero tail.
void widenRows(const int8_t* src, int64_t rows, int64_t K, int16_t* dst, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* s = src + r * K;
    int16_t* d = dst + r * ld;
    for (int64_t k = 0; k < K; ++k) d[k] = s[k];
    for (int64_t k = K; k < ld; ++k) d[k] = 0;
  }
}

// ---- conv2d ---------------------------------------------------------------------------------

struct ConvGeometry {
  int64_t n, cin, h, w, cout, kh, kw, oh, ow;
  int64_t sh, sw, padT, padL, padB, padR, dh, dw, groups;
  int64_t cinG() const { return cin / groups; }
  int64_t coutG() const { return cout / groups; }
  int64_t hp() const { return h + padT + padB; }
  int64_t wp() const { return w + padL + padR; }
};

ConvGeometry convGeometry(const ir::Op& op) {
  const auto& x = op.operand(0)->type.shape;
  const auto& wt = op.operand(1)->type.shape;
  const auto& y = op.result()->type.shape;
  const auto& s = op.getInts("stride");
  const auto& p = op.getInts("padding");
  const auto& d = op.getInts("dilation");
  return ConvGeometry{x[0], x[1], x[2], x[3], wt[0], wt[2], wt[3], y[2], y[3],
                      s[0], s[1], p[0], p[1], p[2],  p[3],  d[0],  d[1], op.getInt("groups")};
}

std::vector<int32_t> biasValues(const Tensor* bias) {
  if (!bias) return {};
  const int32_t* b = bias->data<int32_t>();
  return std::vector<int32_t>(b, b + bias->numel());
}

// Grouped conv (including groups = 1) as implicit GEMM: the input is transposed once per run
// into a zero-padded NHWC int16 buffer, so an output pixel's K = KH*KW*Cin/groups values are
// KH*KW (or KH, when dilation_w = 1 and groups = 1) contiguous runs copied into the tile; a 1x1,
// stride-1, groups-1 conv reads the NHWC rows in place.
class ConvGemmKernel : public OptimizedKernel {
 public:
  ConvGemmKernel(const ir::Op& op, const Tensor* weight, const Tensor* bias)
      : g_(convGeometry(op)), outType_(op.result()->type), hasBias_(op.numOperands() > 2) {
    k_ = g_.kh * g_.kw * g_.cinG();
    direct_ = g_.kh == 1 && g_.kw == 1 && g_.groups == 1 && g_.sh == 1 && g_.sw == 1 && g_.padT == 0 && g_.padL == 0 &&
              g_.padB == 0 && g_.padR == 0;
    if (weight) packed_ = pack(*weight);
    if (bias) bias_ = biasValues(bias);
  }

  std::vector<Tensor> run(const std::vector<const Tensor*>& in, ThreadPool& pool) const override {
    std::vector<PackedRows> packedNow;
    const std::vector<PackedRows>& packed = packed_.empty() ? (packedNow = pack(*in[1])) : packed_;
    std::vector<int32_t> biasNow;
    const std::vector<int32_t>& bias = (hasBias_ && bias_.empty()) ? (biasNow = biasValues(in[2])) : bias_;

    const ConvGeometry& g = g_;
    const int64_t ld = packed[0].ld;
    // NHWC channel stride: padded to the K row length in the direct case so rows are B rows.
    const int64_t cs = direct_ ? ld : g.cin;
    const int64_t hp = g.hp(), wp = g.wp();
    const size_t nhwcSize = static_cast<size_t>(g.n * hp * wp * cs);
    int16_t* nhwc = runScratch(nhwcSize);
    std::fill(nhwc, nhwc + nhwcSize, int16_t{0});
    const int8_t* x = in[0]->data<int8_t>();
    pool.parallelFor(g.n * g.h, [&](int64_t t) {
      int64_t n = t / g.h, iy = t % g.h;
      int16_t* dst = nhwc + ((n * hp + iy + g.padT) * wp + g.padL) * cs;
      const int8_t* src = x + (n * g.cin * g.h + iy) * g.w;
      for (int64_t c = 0; c < g.cin; ++c)
        for (int64_t ix = 0; ix < g.w; ++ix) dst[ix * cs + c] = src[c * g.h * g.w + ix];
    });

    Tensor out(outType_);
    int32_t* y = out.data<int32_t>();
    const int64_t pixels = g.oh * g.ow;
    const int64_t tile = tileRows(ld, pixels);
    const int64_t tiles = ceilDiv(pixels, tile);
    const int64_t chunk = weightChunkRows(g.coutG(), g.n * g.groups * tiles, pool.size());
    const int64_t chunks = ceilDiv(g.coutG(), chunk);
    const bool merge = g.groups == 1 && g.dw == 1;
    pool.parallelFor(g.n * g.groups * tiles * chunks, [&](int64_t t) {
      int64_t c = t % chunks;
      t /= chunks;
      int64_t tl = t % tiles;
      t /= tiles;
      int64_t grp = t % g.groups, n = t / g.groups;
      int64_t p0 = tl * tile, nb = std::min(tile, pixels - p0);
      const int16_t* plane = nhwc + n * hp * wp * cs;
      const int16_t* b;
      if (direct_) {
        b = plane + p0 * cs;
      } else {
        int16_t* buf = scratch(static_cast<size_t>(tile * ld));
        for (int64_t p = 0; p < nb; ++p) {
          int64_t oy = (p0 + p) / g.ow, ox = (p0 + p) % g.ow;
          int16_t* d = buf + p * ld;
          for (int64_t ky = 0; ky < g.kh; ++ky) {
            const int16_t* row = plane + (oy * g.sh + ky * g.dh) * wp * cs + grp * g.cinG();
            if (merge) {
              std::memcpy(d, row + ox * g.sw * cs, static_cast<size_t>(g.kw * g.cin) * sizeof(int16_t));
              d += g.kw * g.cin;
            } else {
              for (int64_t kx = 0; kx < g.kw; ++kx) {
                std::memcpy(d, row + (ox * g.sw + kx * g.dw) * cs, static_cast<size_t>(g.cinG()) * sizeof(int16_t));
                d += g.cinG();
              }
            }
          }
          std::fill(buf + p * ld + k_, buf + (p + 1) * ld, int16_t{0});
        }
        b = buf;
      }
      int64_t i0 = c * chunk, i1 = std::min(g.coutG(), i0 + chunk);
      int64_t co0 = grp * g.coutG();
      gemmBlock(packed[static_cast<size_t>(grp)], i0, i1, b, direct_ ? cs : ld, nb,
                bias.empty() ? nullptr : bias.data() + co0, y + ((n * g.cout + co0) * pixels + p0), pixels, 1);
    });
    std::vector<Tensor> results;
    results.push_back(std::move(out));
    return results;
  }

 private:
  // Per group: [cout/groups][KH][KW][cin/groups] widened to int16, matching the tile's K order.
  std::vector<PackedRows> pack(const Tensor& weight) const {
    const int8_t* w = weight.data<int8_t>();
    const ConvGeometry& g = g_;
    std::vector<PackedRows> out;
    for (int64_t grp = 0; grp < g.groups; ++grp)
      out.push_back(packRows(g.coutG(), k_, [&](int64_t r, int64_t k) {
        int64_t ci = k % g.cinG(), kx = (k / g.cinG()) % g.kw, ky = k / (g.cinG() * g.kw);
        return int16_t{w[(((grp * g.coutG() + r) * g.cinG() + ci) * g.kh + ky) * g.kw + kx]};
      }));
    return out;
  }

  ConvGeometry g_;
  ir::TensorType outType_;
  bool hasBias_;
  int64_t k_ = 0;
  bool direct_ = false;
  std::vector<PackedRows> packed_;  // empty when the weight is not a constant
  std::vector<int32_t> bias_;       // empty when absent or not a constant
};

// Depthwise conv (one input channel per group). The zero-padded input plane is split into
// stride_h x stride_w phase planes of row width P; then output (oy, ox) of tap (ky, kx) reads
// its phase plane at (oy * P + ox) + a constant offset, so each tap is one long contiguous
// multiply-accumulate over a "wide" OH x P output grid whose extra columns are dropped at the end.
class DepthwiseKernel : public OptimizedKernel {
 public:
  DepthwiseKernel(const ir::Op& op, const Tensor* weight, const Tensor* bias)
      : g_(convGeometry(op)), outType_(op.result()->type), hasBias_(op.numOperands() > 2) {
    if (weight) weights_ = widen(*weight);
    if (bias) bias_ = biasValues(bias);
    pw_ = ceilDiv(g_.wp(), g_.sw);
    // Rows any tap reads, plus one: the wide grid's last row runs past its plane row.
    hq_ = g_.oh + (g_.kh - 1) * g_.dh / g_.sh + 1;
  }

  std::vector<Tensor> run(const std::vector<const Tensor*>& in, ThreadPool& pool) const override {
    std::vector<int16_t> weightsNow;
    const std::vector<int16_t>& wts = weights_.empty() ? (weightsNow = widen(*in[1])) : weights_;
    std::vector<int32_t> biasNow;
    const std::vector<int32_t>& bias = (hasBias_ && bias_.empty()) ? (biasNow = biasValues(in[2])) : bias_;

    const ConvGeometry& g = g_;
    const int64_t pw = pw_, hq = hq_, phaseSize = hq * pw, wide = g.oh * pw;
    const int8_t* x = in[0]->data<int8_t>();
    Tensor out(outType_);
    int32_t* y = out.data<int32_t>();
    pool.parallelFor(g.n * g.cout, [&](int64_t t) {
      int64_t n = t / g.cout, co = t % g.cout, ci = co / g.coutG();
      int16_t* planes = scratch(static_cast<size_t>(g.sh * g.sw * phaseSize));
      int32_t* acc = scratchAcc(static_cast<size_t>(wide));
      std::fill(planes, planes + g.sh * g.sw * phaseSize, int16_t{0});
      const int8_t* src = x + (n * g.cin + ci) * g.h * g.w;
      for (int64_t iy = 0; iy < g.h; ++iy) {
        int64_t r = iy + g.padT, ri = r / g.sh;
        if (ri >= hq) break;
        int16_t* rowPlanes = planes + (r % g.sh) * g.sw * phaseSize + ri * pw;
        const int8_t* s = src + iy * g.w;
        if (g.sw == 1) {
          for (int64_t ix = 0; ix < g.w; ++ix) rowPlanes[g.padL + ix] = s[ix];
          continue;
        }
        // Padded column c = ix + padL lands in column phase c % sw at index c / sw.
        for (int64_t phase = 0; phase < g.sw; ++phase) {
          int64_t first = ((phase - g.padL) % g.sw + g.sw) % g.sw;
          int16_t* d = rowPlanes + phase * phaseSize + (first + g.padL) / g.sw;
          for (int64_t ix = first, i = 0; ix < g.w; ix += g.sw, ++i) d[i] = s[ix];
        }
      }
      std::fill(acc, acc + wide, 0);
      const int16_t* w = wts.data() + co * g.kh * g.kw;
      for (int64_t ky = 0; ky < g.kh; ++ky)
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          int64_t offY = ky * g.dh, offX = kx * g.dw;
          const int16_t* p =
              planes + ((offY % g.sh) * g.sw + offX % g.sw) * phaseSize + (offY / g.sh) * pw + offX / g.sw;
          // |w * x| <= 2^14: the product is exact in int16 (pmullw), then widened into the sum.
          const int16_t wv = w[ky * g.kw + kx];
          for (int64_t o = 0; o < wide; ++o) acc[o] += static_cast<int16_t>(wv * p[o]);
        }
      const int32_t b = bias.empty() ? 0 : bias[static_cast<size_t>(co)];
      int32_t* dst = y + (n * g.cout + co) * g.oh * g.ow;
      for (int64_t oy = 0; oy < g.oh; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox) dst[oy * g.ow + ox] = addSaturate(acc[oy * pw + ox], b);
    });
    std::vector<Tensor> results;
    results.push_back(std::move(out));
    return results;
  }

 private:
  static int32_t* scratchAcc(size_t n) {
    thread_local std::vector<int32_t> buf;
    if (buf.size() < n) buf.resize(n);
    return buf.data();
  }
  static std::vector<int16_t> widen(const Tensor& w) {
    const int8_t* p = w.data<int8_t>();
    return std::vector<int16_t>(p, p + w.numel());
  }

  ConvGeometry g_;
  ir::TensorType outType_;
  bool hasBias_;
  std::vector<int16_t> weights_;  // [cout][KH][KW]; empty when the weight is not a constant
  std::vector<int32_t> bias_;
  int64_t pw_ = 0, hq_ = 0;  // phase plane width and rows
};

// ---- linear and matmul ----------------------------------------------------------------------

// Activation rows [rows][K] (si8) times packed weight rows: out[r * n + i] = sat32(bias[i] + x[r] . A[i]).
void rowsTimesPacked(const int8_t* x, int64_t rows, int64_t K, const PackedRows& A, const int32_t* bias, int32_t* out,
                     ThreadPool& pool) {
  const int64_t tile = tileRows(A.ld, rows);
  const int64_t tiles = ceilDiv(rows, tile);
  const int64_t chunk = weightChunkRows(A.rows, tiles, pool.size());
  const int64_t chunks = ceilDiv(A.rows, chunk);
  pool.parallelFor(tiles * chunks, [&](int64_t t) {
    int64_t c = t % chunks, tl = t / chunks;
    int64_t r0 = tl * tile, nb = std::min(tile, rows - r0);
    int16_t* buf = scratch(static_cast<size_t>(tile * A.ld));
    widenRows(x + r0 * K, nb, K, buf, A.ld);
    int64_t i0 = c * chunk, i1 = std::min(A.rows, i0 + chunk);
    gemmBlock(A, i0, i1, buf, A.ld, nb, bias, out + r0 * A.rows, 1, A.rows);
  });
}

class LinearKernel : public OptimizedKernel {
 public:
  LinearKernel(const ir::Op& op, const Tensor* weight, const Tensor* bias)
      : outType_(op.result()->type), hasBias_(op.numOperands() > 2) {
    const auto& w = op.operand(1)->type.shape;
    n_ = w[0];
    k_ = w[1];
    if (weight) packed_ = pack(*weight);
    if (bias) bias_ = biasValues(bias);
  }

  std::vector<Tensor> run(const std::vector<const Tensor*>& in, ThreadPool& pool) const override {
    PackedRows packedNow;
    const PackedRows& A = packed_.ld == 0 ? (packedNow = pack(*in[1])) : packed_;
    std::vector<int32_t> biasNow;
    const std::vector<int32_t>& bias = (hasBias_ && bias_.empty()) ? (biasNow = biasValues(in[2])) : bias_;
    Tensor out(outType_);
    int64_t rows = n_ == 0 ? 0 : out.numel() / n_;
    rowsTimesPacked(in[0]->data<int8_t>(), rows, k_, A, bias.empty() ? nullptr : bias.data(), out.data<int32_t>(),
                    pool);
    std::vector<Tensor> results;
    results.push_back(std::move(out));
    return results;
  }

 private:
  PackedRows pack(const Tensor& weight) const {
    const int8_t* w = weight.data<int8_t>();
    return packRows(n_, k_, [&](int64_t r, int64_t k) { return int16_t{w[r * k_ + k]}; });
  }

  ir::TensorType outType_;
  bool hasBias_;
  int64_t n_ = 0, k_ = 0;
  PackedRows packed_;
  std::vector<int32_t> bias_;
};

// numpy matmul: the rhs of every batch is packed transposed ([N][K]); the lhs rows are the
// activation side. Batch dims broadcast by strides (0 where a dim is broadcast).
class MatmulKernel : public OptimizedKernel {
 public:
  MatmulKernel(const ir::Op& op, const Tensor* rhs) : outType_(op.result()->type) {
    lhsShape_ = op.operand(0)->type.shape;
    rhsShape_ = op.operand(1)->type.shape;
    m_ = lhsShape_[lhsShape_.size() - 2];
    k_ = lhsShape_.back();
    n_ = rhsShape_.back();
    if (rhs) packed_ = pack(*rhs);
  }

  std::vector<Tensor> run(const std::vector<const Tensor*>& in, ThreadPool& pool) const override {
    std::vector<PackedRows> packedNow;
    const std::vector<PackedRows>& packed = packed_.empty() ? (packedNow = pack(*in[1])) : packed_;
    Tensor out(outType_);
    const ir::Shape& y = outType_.shape;
    const size_t batchRank = y.size() - 2;
    const int64_t batches = ir::numElements(ir::Shape(y.begin(), y.begin() + static_cast<std::ptrdiff_t>(batchRank)));
    const int8_t* lhs = in[0]->data<int8_t>();
    int32_t* dst = out.data<int32_t>();
    for (int64_t b = 0; b < batches; ++b) {
      int64_t lb = batchIndex(b, y, lhsShape_), rb = batchIndex(b, y, rhsShape_);
      rowsTimesPacked(lhs + lb * m_ * k_, m_, k_, packed[static_cast<size_t>(rb)], nullptr, dst + b * m_ * n_, pool);
    }
    std::vector<Tensor> results;
    results.push_back(std::move(out));
    return results;
  }

 private:
  // The flat batch index into an operand of shape `s` for output batch `b` of the output shape `y`.
  static int64_t batchIndex(int64_t b, const ir::Shape& y, const ir::Shape& s) {
    const size_t yr = y.size() - 2, sr = s.size() - 2;
    int64_t index = 0, stride = 1;
    for (size_t d = 0; d < yr; ++d) {
      size_t yd = yr - 1 - d;
      int64_t coord = b % y[yd];
      b /= y[yd];
      if (d < sr) {
        int64_t dim = s[sr - 1 - d];
        if (dim != 1) index += coord * stride;
        stride *= dim;
      }
    }
    return index;
  }

  std::vector<PackedRows> pack(const Tensor& rhs) const {
    const int8_t* r = rhs.data<int8_t>();
    int64_t batches = rhs.numel() / std::max<int64_t>(k_ * n_, 1);
    std::vector<PackedRows> out;
    for (int64_t b = 0; b < batches; ++b) {
      const int8_t* base = r + b * k_ * n_;
      out.push_back(packRows(n_, k_, [&](int64_t row, int64_t k) { return int16_t{base[k * n_ + row]}; }));
    }
    return out;
  }

  ir::TensorType outType_;
  ir::Shape lhsShape_, rhsShape_;
  int64_t m_ = 0, k_ = 0, n_ = 0;
  std::vector<PackedRows> packed_;
};

// ---- requantize -----------------------------------------------------------------------------

// requantize with explicit `multiplier`/`shift`: y = sat((x * M + 2^(S-1)) >> S). The input has
// at most 32 bits and M < 2^31, so the product plus the rounding term stays below 2^63 and
// int64 is exact (docs/numerics.md §2 forms it in 128 bits for the general case).
class RequantizeKernel : public OptimizedKernel {
 public:
  explicit RequantizeKernel(const ir::Op& op) : outType_(op.result()->type), in_(op.operand(0)->type.elem) {
    mult_ = op.getInts("multiplier");
    for (int64_t s : op.getInts("shift")) shift_.push_back(static_cast<int>(s));
    const ir::Shape& shape = op.operand(0)->type.shape;
    channels_ = 1;
    inner_ = ir::numElements(shape);
    if (mult_.size() > 1) {
      int64_t axis = op.getInt("axis");
      if (axis < 0) axis += static_cast<int64_t>(shape.size());
      channels_ = shape[static_cast<size_t>(axis)];
      inner_ = 1;
      for (size_t d = static_cast<size_t>(axis) + 1; d < shape.size(); ++d) inner_ *= shape[d];
    }
  }

  std::vector<Tensor> run(const std::vector<const Tensor*>& in, ThreadPool& pool) const override {
    Tensor out(outType_);
    const int64_t rows = inner_ == 0 ? 0 : out.numel() / inner_;
    const int64_t rowsPerTask = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(inner_, 1));
    pool.parallelFor(ceilDiv(rows, rowsPerTask), [&](int64_t t) {
      for (int64_t r = t * rowsPerTask; r < std::min(rows, (t + 1) * rowsPerTask); ++r) {
        size_t c = static_cast<size_t>(r % channels_);
        switch (in_) {
          case ElemType::SI8: rowFrom(in[0]->data<int8_t>(), r, c, out); break;
          case ElemType::SI16: rowFrom(in[0]->data<int16_t>(), r, c, out); break;
          default: rowFrom(in[0]->data<int32_t>(), r, c, out); break;
        }
      }
    });
    std::vector<Tensor> results;
    results.push_back(std::move(out));
    return results;
  }

 private:
  template <typename In>
  void rowFrom(const In* x, int64_t r, size_t c, Tensor& out) const {
    switch (outType_.elem) {
      case ElemType::SI8: row(x + r * inner_, c, out.data<int8_t>() + r * inner_); break;
      case ElemType::SI16: row(x + r * inner_, c, out.data<int16_t>() + r * inner_); break;
      default: row(x + r * inner_, c, out.data<int32_t>() + r * inner_); break;
    }
  }

  template <typename In, typename Out>
  void row(const In* x, size_t c, Out* y) const {
    const int64_t m = mult_.size() > 1 ? mult_[c] : mult_[0];
    const int shift = shift_.size() > 1 ? shift_[c] : shift_[0];
    const int64_t round = shift > 0 ? int64_t{1} << (shift - 1) : 0;
    constexpr int64_t lo = std::numeric_limits<Out>::min(), hi = std::numeric_limits<Out>::max();
    for (int64_t i = 0; i < inner_; ++i) {
      int64_t v = (int64_t{x[i]} * m + round) >> shift;
      y[i] = static_cast<Out>(v < lo ? lo : v > hi ? hi : v);
    }
  }

  ir::TensorType outType_;
  ElemType in_;
  std::vector<int64_t> mult_;
  std::vector<int> shift_;
  int64_t channels_ = 1, inner_ = 1;
};

bool allPositive(const ir::Shape& s) {
  return std::all_of(s.begin(), s.end(), [](int64_t d) { return d > 0; });
}

}  // namespace

const std::vector<const char*>& optimizedKernelOps() {
  static const std::vector<const char*> ops = {"conv2d", "linear", "matmul", "requantize"};
  return ops;
}

std::unique_ptr<OptimizedKernel> makeOptimizedKernel(const ir::Op& op, const std::vector<const Tensor*>& constants) {
  auto isSmallInt = [](const ir::Value* v) {
    return isType(v, ElemType::SI8) || isType(v, ElemType::SI16) || isType(v, ElemType::SI32);
  };
  if (op.is("requantize") && !op.getInts("multiplier").empty() && isSmallInt(op.operand(0)) && isSmallInt(op.result()))
    return std::make_unique<RequantizeKernel>(op);
  if (op.numResults() != 1 || !isType(op.result(), ElemType::SI32) || op.numOperands() < 2) return nullptr;
  if (!isType(op.operand(0), ElemType::SI8) || !isType(op.operand(1), ElemType::SI8)) return nullptr;
  for (const ir::Value* v : op.operands())
    if (!allPositive(v->type.shape)) return nullptr;
  if (!allPositive(op.result()->type.shape)) return nullptr;
  const Tensor* bias = constants.size() > 2 ? constants[2] : nullptr;
  if (op.numOperands() > 2 && !isType(op.operand(2), ElemType::SI32)) return nullptr;

  if (op.is("conv2d")) {
    ConvGeometry g = convGeometry(op);
    if (g.kh * g.kw * g.cinG() > kMaxExactInt8Reduction) return nullptr;
    if (g.cinG() == 1) return std::make_unique<DepthwiseKernel>(op, constants[1], bias);
    return std::make_unique<ConvGemmKernel>(op, constants[1], bias);
  }
  if (op.is("linear")) {
    if (op.operand(1)->type.shape[1] > kMaxExactInt8Reduction) return nullptr;
    return std::make_unique<LinearKernel>(op, constants[1], bias);
  }
  if (op.is("matmul")) {
    if (op.operand(0)->type.shape.back() > kMaxExactInt8Reduction) return nullptr;
    return std::make_unique<MatmulKernel>(op, constants[1]);
  }
  return nullptr;
}

}  // namespace hbdk::exec
