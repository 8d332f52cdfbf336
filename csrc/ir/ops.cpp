// The HBIR op table: the families of ops_*.cpp in one list, in the order docs/ops.md shows, and
// the names of the trait values.
#include <map>

#include "ir/ir.h"
#include "ir/op_def.h"
#include "ir/op_families.h"

namespace hbdk::ir {

const char* quantRuleName(QuantRule r) {
  switch (r) {
    case QuantRule::Constant: return "constant";
    case QuantRule::Weighted: return "weighted";
    case QuantRule::Accumulate: return "accumulate";
    case QuantRule::Clamp: return "clamp";
    case QuantRule::Lut: return "lut";
    case QuantRule::Rescale: return "rescale";
    case QuantRule::RescaleLut: return "rescale_lut";
    case QuantRule::KeepsScale: return "keeps_scale";
    case QuantRule::IndexOnly: return "index_only";
    case QuantRule::FoldFirst: return "fold_first";
    case QuantRule::Normalize: return "normalize";
    case QuantRule::Integer: return "integer";
  }
  return "?";
}

const char* tileClassName(TileClass c) {
  switch (c) {
    case TileClass::None: return "none";
    case TileClass::ConvWindow: return "conv_window";
    case TileClass::DeconvWindow: return "deconv_window";
    case TileClass::PoolWindow: return "pool_window";
    case TileClass::ResizeWindow: return "resize_window";
    case TileClass::Gemm: return "gemm";
    case TileClass::BatchedGemm: return "batched_gemm";
    case TileClass::AxisReduce: return "axis_reduce";
    case TileClass::PlaneReduce: return "plane_reduce";
    case TileClass::Elementwise: return "elementwise";
    case TileClass::Join: return "join";
    case TileClass::Indexed: return "indexed";
    case TileClass::Scatter: return "scatter";
  }
  return "?";
}

const char* fusionName(Fusion f) {
  switch (f) {
    case Fusion::None: return "none";
    case Fusion::Anchor: return "anchor";
    case Fusion::Epilogue: return "epilogue";
    case Fusion::Residual: return "residual";
  }
  return "?";
}

QuantRule quantRule(const Op& op) {
  const OpTraits& t = op.def().traits;
  return t.quantOf ? t.quantOf(op) : t.quant;
}

namespace {

std::vector<OpDef> buildTable() {
  std::vector<OpDef> t;
  addComputeOps(t);
  addElementwiseOps(t);
  addDataMovementOps(t);
  addSpatialOps(t);
  addQuantOps(t);
  return t;
}

}  // namespace

const std::vector<OpDef>& opTable() {
  static const std::vector<OpDef> table = buildTable();
  return table;
}

const OpDef* lookupOp(std::string_view name) {
  static const std::map<std::string_view, const OpDef*> index = [] {
    std::map<std::string_view, const OpDef*> m;
    for (const OpDef& d : opTable()) m.emplace(d.name, &d);
    return m;
  }();
  auto it = index.find(name);
  return it == index.end() ? nullptr : it->second;
}

}  // namespace hbdk::ir
