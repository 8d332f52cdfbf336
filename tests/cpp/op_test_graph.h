// What the op-table tests share: a one-function module built in C++ (Graph), scale and shape
// helpers, and printers for CHECK_EQ.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "ir/ir.h"

using namespace hbdk::ir;  // NOLINT(google-build-using-namespace): test code

// CHECK_EQ prints both sides on failure.
namespace hbdk::ir {
inline std::ostream& operator<<(std::ostream& os, const TensorType& t) { return os << t.str(); }
inline std::ostream& operator<<(std::ostream& os, ElemType e) { return os << elemTypeName(e); }
}  // namespace hbdk::ir

namespace hbdk::ir::testgraph {

using Ints = std::vector<int64_t>;
constexpr ElemType F32 = ElemType::F32;
constexpr ElemType SI8 = ElemType::SI8;
constexpr ElemType SI32 = ElemType::SI32;

// A module with one function; values are function arguments of the given types.
struct Graph {
  Module m;
  Function* fn = m.addFunction("main");

  Value* arg(Shape s, ElemType e = F32, std::optional<Quant> q = std::nullopt) {
    return fn->addArgument(TensorType(std::move(s), e, std::move(q)));
  }
  Op* op(std::string_view name, std::vector<Value*> operands, AttrList attrs = {}, std::vector<TensorType> types = {}) {
    return m.createOp(fn, name, std::move(operands), std::move(attrs), std::move(types));
  }
  // The shape of the first result.
  Shape shape(std::string_view name, std::vector<Value*> operands, AttrList attrs = {}) {
    return op(name, std::move(operands), std::move(attrs))->result(0)->type.shape;
  }
};

inline Quant scale(float s) { return Quant{{s}, -1}; }

inline std::string str(const Shape& s) { return shapeStr(s); }

}  // namespace hbdk::ir::testgraph

using namespace hbdk::ir::testgraph;  // NOLINT(google-build-using-namespace): test code
