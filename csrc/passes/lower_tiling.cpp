// lower, step 3a: output tiling. A group's output is seen as outer x rows x cols (batch, output
// rows, channels; or GEMM rows and columns) with what each operand costs per tile; the plan with
// the fewest tiles whose double-buffered inputs, weights and outputs fit the free SRAM wins.
#include <algorithm>

#include "passes/lower_internal.h"

namespace hbdk::passes::lowering {

namespace {

int64_t windowRows(const TileSpace& s, int64_t th) {
  int64_t r = 0;
  switch (s.rowMap) {
    case TileSpace::RowMap::Conv: r = (th - 1) * s.stride + s.dilation * (s.kernel - 1) + 1; break;
    case TileSpace::RowMap::ConvTranspose: r = ceilDiv(th - 1 + s.dilation * (s.kernel - 1), s.stride) + 1; break;
    case TileSpace::RowMap::Resize: r = ceilDiv(th * s.inH, std::max<int64_t>(1, s.outH)) + 1; break;
  }
  return std::max<int64_t>(1, std::min(r, s.inH));
}

int64_t windowBytes(const TileSpace& s, int64_t th, int64_t tc) {
  int64_t ch = s.channelwise ? ceilDiv(tc * s.inC, s.cols) : s.inC;
  return ch * windowRows(s, th) * s.inW * s.inElemBytes;
}

}  // namespace

int64_t operandTileBytes(const TileSpace& s, const Operand& o, int64_t th, int64_t tc) {
  switch (o.feed) {
    case Feed::Window: return windowBytes(s, th, tc);
    case Feed::Rows: return ceilDiv(o.bytes * th, s.rows);
    case Feed::Proportional: return ceilDiv(ceilDiv(o.bytes * th, s.rows) * tc, s.cols);
    case Feed::WholeByCols: return ceilDiv(o.bytes * tc, s.cols);
    case Feed::Whole: return o.bytes;
  }
  return o.bytes;
}

TilePlan planFor(const TileSpace& s, int64_t th, int64_t tc) {
  TilePlan p;
  p.th = th;
  p.tc = tc;
  p.rowTiles = ceilDiv(s.rows, th);
  p.colTiles = ceilDiv(s.cols, tc);
  p.tiles = s.outer * p.rowTiles * p.colTiles;
  for (const Operand& o : s.operands) {
    if (o.resident) continue;
    int64_t b = operandTileBytes(s, o, th, tc);
    (o.feed == Feed::WholeByCols || o.feed == Feed::Whole ? p.weightBytes : p.inBytes) += b;
  }
  for (size_t i = 0; i < s.outputs.size(); ++i)
    if (!s.outputResident[i]) p.outBytes += ceilDiv(ceilDiv(bytesOf(s.outputs[i]) / s.outer * th, s.rows) * tc, s.cols);
  p.inCount = p.outCount = p.tiles > 1 ? 2 : 1;
  p.weightCount = p.colTiles > 1 ? 2 : 1;
  return p;
}

// The plan with the fewest tiles whose buffers fit `budget`: for each channel split (halving), the
// most rows per tile that fit (the need grows with the rows).
std::optional<TilePlan> chooseTiles(const TileSpace& s, int64_t budget) {
  std::optional<TilePlan> best;
  for (int64_t tc = s.cols;; tc = ceilDiv(tc, 2)) {
    if (planFor(s, 1, tc).need() <= budget) {
      int64_t lo = 1, hi = s.rows;
      while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (planFor(s, mid, tc).need() <= budget)
          lo = mid;
        else
          hi = mid - 1;
      }
      TilePlan p = planFor(s, lo, tc);
      if (!best || p.tiles < best->tiles) best = p;
    }
    if (tc == 1) break;
  }
  return best;
}

int64_t product(const ir::Shape& s, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to && i < s.size(); ++i) p *= s[i];
  return p;
}

namespace {

bool isWindow(ir::TileClass c) {
  return c == ir::TileClass::ConvWindow || c == ir::TileClass::DeconvWindow || c == ir::TileClass::PoolWindow ||
         c == ir::TileClass::ResizeWindow;
}

// Output rows, columns and the spatial input window of the group's anchor, by its tile class.
void shapeTiles(TileSpace& s, const ir::Op& a) {
  const ir::Shape& out = a.result()->type.shape;
  const ir::Value* primary = a.numOperands() ? a.operand(0) : nullptr;
  ir::TileClass tile = a.def().traits.tile;
  if (isWindow(tile)) {
    const ir::Shape& in = primary->type.shape;
    s.spatial = true;
    s.outer = out[0];
    s.cols = out[1];
    s.rows = out[2];
    s.width = out[3];
    s.inC = in[1];
    s.inH = in[2];
    s.inW = in[3];
    s.outH = out[2];
    s.inElemBytes = static_cast<int64_t>(ir::elemTypeBytes(primary->type.elem));
  }
  switch (tile) {
    case ir::TileClass::ConvWindow:
    case ir::TileClass::DeconvWindow:
      s.kernel = a.operand(1)->type.shape[2];
      s.stride = a.getInts("stride")[0];
      s.dilation = a.getInts("dilation")[0];
      s.channelwise = a.getInt("groups") > 1;
      s.rowMap = tile == ir::TileClass::ConvWindow ? TileSpace::RowMap::Conv : TileSpace::RowMap::ConvTranspose;
      return;
    case ir::TileClass::ResizeWindow:
      s.rowMap = TileSpace::RowMap::Resize;
      s.channelwise = true;
      return;
    case ir::TileClass::PoolWindow:
      s.kernel = a.getInts("kernel")[0];
      s.stride = a.getInts("stride")[0];
      s.dilation = a.def().findAttr("dilation") ? a.getInts("dilation")[0] : 1;
      s.channelwise = true;
      return;
    case ir::TileClass::Gemm:
      s.cols = out.back();
      s.rows = std::max<int64_t>(1, product(out, 0, out.size() - 1));
      return;
    case ir::TileClass::BatchedGemm:
      s.cols = out.back();
      s.rows = out[out.size() - 2];
      s.outer = product(out, 0, out.size() - 2);
      return;
    case ir::TileClass::AxisReduce: {
      const ir::Shape& in = primary->type.shape;
      int64_t axis = a.getInt("axis");
      if (axis < 0) axis += static_cast<int64_t>(in.size());
      s.rows = std::max<int64_t>(1, ir::numElements(in) / std::max<int64_t>(1, in[static_cast<size_t>(axis)]));
      return;
    }
    case ir::TileClass::PlaneReduce: s.rows = out[0] * out[1]; return;
    case ir::TileClass::Elementwise:
    case ir::TileClass::Join:
    case ir::TileClass::Indexed:
    case ir::TileClass::Scatter: s.rows = out.size() >= 2 ? product(out, 0, out.size() - 1) : 1; return;
    case ir::TileClass::None: break;
  }
  fail(a, "has no tiling rule (tile class none in the op table)");
}

}  // namespace

TileSpace tileSpaceOf(const Group& g) {
  TileSpace s;
  const ir::Op& a = *g.anchor;
  const ir::Shape& out = a.result()->type.shape;
  const ir::Value* primary = a.numOperands() ? a.operand(0) : nullptr;
  ir::TileClass tile = a.def().traits.tile;
  bool spatialOp = isWindow(tile);
  bool gemm = tile == ir::TileClass::Gemm || tile == ir::TileClass::BatchedGemm;
  shapeTiles(s, a);
  s.outer = std::max<int64_t>(1, s.outer);
  s.rows = std::max<int64_t>(1, s.rows);
  s.cols = std::max<int64_t>(1, s.cols);
  if (!spatialOp) s.rowElems = std::max<int64_t>(1, ir::numElements(out) / (s.outer * s.rows * s.cols));

  int64_t outElems = std::max<int64_t>(1, ir::numElements(out));
  for (const ir::Op* c : g.constants) {
    const ir::Value* v = c->result();
    bool anchorWeight = false;
    for (size_t i = 1; i < a.numOperands(); ++i) anchorWeight |= a.operand(i) == v;
    Feed feed = isMacOp(a) && anchorWeight                                      ? Feed::WholeByCols
                : v->type.numel() == outElems && tile != ir::TileClass::Indexed ? Feed::Proportional
                                                                                : Feed::Whole;
    if (feed == Feed::Proportional)
      s.operands.push_back({v, feed, true, false, bytesOf(v) / s.outer});
    else
      s.operands.push_back({v, feed, true, false, bytesOf(v)});
  }
  for (const ir::Value* v : g.inputs) {
    Feed feed;
    int64_t bytes = bytesOf(v);
    auto batch = [&](const ir::Value* x) {
      return tile == ir::TileClass::BatchedGemm ? std::max<int64_t>(1, product(x->type.shape, 0, x->type.rank() - 2))
                                                : 1;
    };
    if (spatialOp && v == primary) {
      feed = Feed::Window;
    } else if (gemm && v == primary) {
      feed = Feed::Rows;
      bytes = bytesOf(v) / batch(v);
    } else if (tile == ir::TileClass::BatchedGemm && v == a.operand(1)) {
      feed = Feed::WholeByCols;
      bytes = bytesOf(v) / batch(v);
    } else if ((tile == ir::TileClass::Indexed && v == primary) || tile == ir::TileClass::Scatter) {
      feed = Feed::Whole;
    } else if (v->type.numel() < outElems && tile != ir::TileClass::Join &&
               !(v == primary && !isMacOp(a) && !spatialOp)) {
      feed = Feed::Whole;  // a broadcast operand of add/sub/mul
    } else {
      feed = Feed::Proportional;
      bytes = bytesOf(v) / s.outer;
    }
    s.operands.push_back({v, feed, false, false, bytes});
  }
  s.outputs = g.outputs;
  s.outputResident.assign(g.outputs.size(), false);
  return s;
}

}  // namespace hbdk::passes::lowering
