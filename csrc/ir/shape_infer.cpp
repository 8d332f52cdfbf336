// Checking helpers shared by the op table's shape inference and verifiers. They own the wording
// of shape errors, so that every op reports problems the same way.
#include "ir/shape_infer.h"

#include <algorithm>
#include <cstdlib>
#include <limits>

namespace hbdk::ir::shape_infer {

// ---- Operands and results ---------------------------------------------------------------------

std::string operandLabel(const Op& op, size_t i) {
  const auto& defs = op.def().operands;
  const char* n = "?";
  if (i < defs.size())
    n = defs[i].name;
  else if (!defs.empty() && defs.back().arity == Arity::Variadic)
    n = defs.back().name;
  return "operand #" + std::to_string(i) + " (" + n + ")";
}

std::string resultLabel(const Op& op, size_t i) {
  const auto& defs = op.def().results;
  const char* n = "?";
  if (i < defs.size())
    n = defs[i].name;
  else if (!defs.empty() && defs.back().arity == Arity::Variadic)
    n = defs.back().name;
  return "result #" + std::to_string(i) + " (" + n + ")";
}

const TensorType& operandType(const Op& op, size_t i) { return op.operand(i)->type; }

bool hasOperand(const Op& op, size_t i) { return i < op.numOperands(); }

void operandError(const Op& op, size_t i, const std::string& expected) {
  op.error(operandLabel(op, i) + ": expected " + expected + " but got " + operandType(op, i).str());
}

const TensorType& checkRank(const Op& op, size_t i, int64_t rank) {
  const TensorType& t = operandType(op, i);
  if (t.rank() != rank) operandError(op, i, "rank " + std::to_string(rank));
  return t;
}

const TensorType& checkMinRank(const Op& op, size_t i, int64_t minRank) {
  const TensorType& t = operandType(op, i);
  if (t.rank() < minRank) operandError(op, i, "rank >= " + std::to_string(minRank));
  return t;
}

void checkDim(const Op& op, size_t i, size_t axis, int64_t expected, const std::string& why) {
  const TensorType& t = operandType(op, i);
  if (axis >= t.shape.size() || t.shape[axis] != expected)
    operandError(op, i, "dim " + std::to_string(axis) + " = " + std::to_string(expected) + " (" + why + ")");
}

void checkSameFloatness(const Op& op, size_t i, size_t ref) {
  const TensorType& r = operandType(op, ref);
  if (isFloat(operandType(op, i).elem) != isFloat(r.elem))
    operandError(op, i,
                 std::string(isFloat(r.elem) ? "element type f32" : "an integer element type") + " like " +
                     operandLabel(op, ref));
}

// ---- Attributes -------------------------------------------------------------------------------

void attrError(const Op& op, const char* name, const std::string& expected) {
  op.error(std::string("attribute '") + name + "': expected " + expected + " but got " + op.attr(name).str());
}

static Ints intList(const Op& op, const char* name, size_t n, int64_t lo, const char* what) {
  const Ints& v = op.getInts(name);
  std::string expected = std::to_string(n) + " " + what + " values";
  if (v.size() != n) attrError(op, name, expected);
  for (int64_t x : v) {
    if (x < lo) attrError(op, name, expected);
    if (x > kMaxAttrInt) attrError(op, name, expected + " of at most " + std::to_string(kMaxAttrInt));
  }
  return v;
}

Ints positiveInts(const Op& op, const char* name, size_t n) { return intList(op, name, n, 1, "positive"); }

Ints nonNegativeInts(const Op& op, const char* name, size_t n) { return intList(op, name, n, 0, "non-negative"); }

int64_t positiveInt(const Op& op, const char* name) {
  int64_t v = op.getInt(name);
  if (v < 1 || v > kMaxAttrInt) attrError(op, name, "a value in [1, " + std::to_string(kMaxAttrInt) + "]");
  return v;
}

int64_t normalizeAxis(const Op& op, const char* name, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank)
    op.error(std::string("attribute '") + name + "': expected an axis in [" + std::to_string(-rank) + ", " +
             std::to_string(rank - 1) + "] but got " + std::to_string(axis));
  return axis < 0 ? axis + rank : axis;
}

const std::string& enumAttr(const Op& op, const char* name, std::initializer_list<const char*> allowed) {
  const std::string& v = op.getString(name);
  std::string list;
  for (const char* a : allowed) {
    if (v == a) return v;
    list += std::string(list.empty() ? "" : ", ") + '"' + a + '"';
  }
  attrError(op, name, "one of " + list);
}

// ---- Arithmetic -------------------------------------------------------------------------------

int64_t mulChecked(const Op& op, int64_t a, int64_t b) {
  constexpr int64_t kLimit = int64_t{1} << 60;
  if (a != 0 && (b > kLimit / std::abs(a) || b < -kLimit / std::abs(a)))
    op.error("expected shape arithmetic within 2^60 but got " + std::to_string(a) + " * " + std::to_string(b));
  return a * b;
}

int64_t product(const Op& op, Shape::const_iterator begin, Shape::const_iterator end) {
  int64_t n = 1;
  for (auto it = begin; it != end; ++it) n = mulChecked(op, n, *it);
  return n;
}

int64_t macProduct(std::initializer_list<int64_t> factors) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t n = 1;
  for (int64_t f : factors) {
    if (f <= 0) return 0;
    if (n > kMax / f) return kMax;
    n *= f;
  }
  return n;
}

const char* shapeProblem(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 1) return "expected positive dims";
    if (d > kMaxElements / n) return "expected at most 2^40 elements";
    n *= d;
  }
  return nullptr;
}

Shape broadcastShapes(const Op& op, const Shape& a, const Shape& b, size_t i, size_t j) {
  size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t k = 0; k < r; ++k) {
    int64_t da = k < r - a.size() ? 1 : a[k - (r - a.size())];
    int64_t db = k < r - b.size() ? 1 : b[k - (r - b.size())];
    if (da != db && da != 1 && db != 1)
      op.error(operandLabel(op, i) + " and " + operandLabel(op, j) + ": expected broadcastable shapes but got " +
               operandType(op, i).str() + " and " + operandType(op, j).str());
    out[k] = da == 1 ? db : da;
  }
  return out;
}

int64_t windowOutput(const Op& op, const char* axisName, int64_t in, int64_t kernel, int64_t stride, int64_t padBegin,
                     int64_t padEnd, int64_t dilation, bool ceilMode) {
  int64_t effective = mulChecked(op, dilation, kernel - 1) + 1;
  int64_t padded = in + padBegin + padEnd;
  if (padded < effective)
    op.error(std::string("expected the dilated kernel ") + axisName + " (" + std::to_string(effective) +
             ") to fit the padded input " + axisName + " but got " + std::to_string(padded));
  int64_t span = padded - effective;
  int64_t out = (ceilMode ? (span + stride - 1) / stride : span / stride) + 1;
  if (ceilMode && mulChecked(op, out - 1, stride) >= in + padBegin) --out;
  return out;
}

// ---- Element types ----------------------------------------------------------------------------

// The labels and type strings are built only for the message: this runs on every op verified.
void checkOperandShapes(const Op& op) {
  for (size_t i = 0; i < op.numOperands(); ++i)
    if (const char* problem = shapeProblem(operandType(op, i).shape))
      op.error(operandLabel(op, i) + ": " + problem + " but got " + operandType(op, i).str());
}

void checkResultShapes(const Op& op, const Results& rs) {
  for (size_t i = 0; i < rs.size(); ++i)
    if (rs[i].shape)
      if (const char* problem = shapeProblem(*rs[i].shape))
        op.error(resultLabel(op, i) + ": " + problem + " but got shape " +
                 (rs[i].shape->empty() ? "()" : shapeStr(*rs[i].shape)));
}

void checkIndexOperand(const Op& op, size_t i) {
  if (operandType(op, i).elem != ElemType::SI32) operandError(op, i, "element type si32");
}

void checkIndexResult(const Op& op, size_t i) {
  if (i < op.numResults() && op.result(i)->type.quant)
    op.error(resultLabel(op, i) + ": expected si32 without a scale but got " + op.result(i)->type.str());
}

}  // namespace hbdk::ir::shape_infer
