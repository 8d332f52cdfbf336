// What the op-family files (ops_*.cpp) share: the vocabulary of a table row and the function each
// family exports to add its rows. Internal to the op table; everything else reads op_def.h.
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "ir/op_def.h"

namespace hbdk::ir {

inline const OperandDef kInput{"input", Arity::One, "the input tensor"};
inline const ResultDef kOutput{"output", Arity::One, "the result tensor"};

inline AttrDef required(const char* name, AttrKind kind, const char* doc) { return {name, kind, std::nullopt, doc}; }
inline AttrDef withDefault(const char* name, AttrKind kind, Attribute def, const char* doc) {
  return {name, kind, std::move(def), doc};
}
inline AttrDef intsAttr(const char* name, std::vector<int64_t> def, const char* doc) {
  return {name, AttrKind::IntList, Attribute(std::move(def)), doc};
}

// Each appends its family's rows, in the order docs/ops.md lists them.
void addComputeOps(std::vector<OpDef>& t);       // ops_compute.cpp
void addElementwiseOps(std::vector<OpDef>& t);   // ops_elementwise.cpp
void addDataMovementOps(std::vector<OpDef>& t);  // ops_data_movement.cpp
void addSpatialOps(std::vector<OpDef>& t);       // ops_spatial.cpp (pooling, resize, scatter, reductions)
void addQuantOps(std::vector<OpDef>& t);         // ops_quant.cpp

}  // namespace hbdk::ir
