// canonicalize: local simplifications that never change a value, only how it is computed.
//
// Algorithm, per function:
//   1. Forward identity ops: an op that provably returns its input unchanged (reshape/flatten to
//      the same shape, identity transpose, a slice keeping every element, a one-input concat, a
//      one-piece split, an all-zero pad, a resize to the same size, an f32 relu/relu6/clip whose
//      input already lies in its range: relu(relu6(x)), clip(relu6(x), -1, 8)) has its result's
//      uses redirected to its input. Only when the types are equal, quantization included.
//   2. Merge identical constants (same type, same bytes): uses move to the first one.
//   3. Erase dead ops. Ops have no side effects, and the function is in topological order, so a
//      single sweep from the last op to the first erases every op whose results end up unused.
// Then, for the module:
//   4. Drop resources that no op references any more.
#include <limits>
#include <optional>
#include <unordered_map>

#include "passes/pass.h"

namespace hbdk::passes {

namespace {

bool allZero(const std::vector<int64_t>& v) {
  for (int64_t x : v)
    if (x != 0) return false;
  return true;
}

// The interval an f32 relu / relu6 / clip clamps to, which is also the range of its result.
std::optional<std::pair<double, double>> clampRange(const ir::Op* op) {
  if (!op || !(op->is("relu") || op->is("relu6") || op->is("clip"))) return std::nullopt;
  if (op->result()->type.elem != ir::ElemType::F32) return std::nullopt;
  if (op->is("relu")) return std::make_pair(0.0, std::numeric_limits<double>::infinity());
  if (op->is("relu6")) return std::make_pair(0.0, 6.0);
  if (op->is("clip")) return std::make_pair(op->getFloat("min"), op->getFloat("max"));
  return std::nullopt;
}

// Whether `op` returns operand 0 unchanged as its (only) result.
bool isIdentity(const ir::Op& op) {
  if (op.numOperands() == 0 || op.numResults() != 1) return false;
  if (op.result()->type != op.operand(0)->type) return false;
  if (op.is("reshape") || op.is("flatten")) return true;
  if (op.is("transpose")) {
    const auto& perm = op.getInts("perm");
    for (size_t i = 0; i < perm.size(); ++i)
      if (perm[i] != static_cast<int64_t>(i)) return false;
    return true;
  }
  // With steps >= 1, keeping as many elements as the axis has means keeping all of them in order.
  if (op.is("slice")) return true;
  if (op.is("concat")) return op.numOperands() == 1;
  if (op.is("split")) return true;  // one result of the input's type: a single piece
  if (op.is("pad")) return allZero(op.getInts("pads"));
  // Same size: every coordinate mode maps output pixel i to input pixel i exactly (scale 1), so
  // nearest and bilinear both copy.
  if (op.is("resize2d")) return true;
  // Clamping to [lo, hi] values already known to lie in [lo, hi] (f32 only: with quantized types
  // the bounds are rounded to each tensor's scale, so containment is not exact).
  if (auto outer = clampRange(&op)) {
    auto inner = clampRange(op.operand(0)->owner);
    return inner && outer->first <= inner->first && inner->second <= outer->second;
  }
  return false;
}

uint64_t fnv1a(const ir::Blob& b) {
  uint64_t h = 1469598103934665603ull;
  for (uint8_t byte : b) h = (h ^ byte) * 1099511628211ull;
  return h;
}

class CanonicalizePass : public Pass {
 public:
  const char* name() const override { return "canonicalize"; }
  const char* summary() const override {
    return "forward identity ops, merge identical constants, erase dead ops and unused resources";
  }

  PassStatistics run(ir::Module& m, PassContext&) override {
    PassStatistics stats{
        {"forwarded-identities", 0}, {"merged-constants", 0}, {"erased-dead-ops", 0}, {"dropped-resources", 0}};
    for (auto& fn : m.functions) {
      for (auto& op : fn->ops)
        if (isIdentity(*op) && op->result()->hasUses()) {
          op->result()->replaceAllUsesWith(op->operand(0));
          ++stats["forwarded-identities"];
        }
      stats["merged-constants"] += mergeConstants(m, *fn);
      std::vector<ir::Op*> order;
      order.reserve(fn->ops.size());
      for (auto& op : fn->ops) order.push_back(op.get());
      for (auto it = order.rbegin(); it != order.rend(); ++it) {
        ir::Op* op = *it;
        bool used = false;
        for (const auto& r : op->results) used = used || r->hasUses();
        if (used) continue;
        fn->erase(op);
        ++stats["erased-dead-ops"];
      }
    }
    std::vector<std::string> unused;
    for (const auto& [key, blob] : m.resources())
      if (m.resourceRefs(key) == 0) unused.push_back(key);
    for (const std::string& key : unused) m.eraseResource(key);
    stats["dropped-resources"] = static_cast<int64_t>(unused.size());
    return stats;
  }

 private:
  static int64_t mergeConstants(const ir::Module& m, ir::Function& fn) {
    // Bucketed by type and content hash; bytes are compared only within a bucket.
    std::unordered_map<std::string, std::vector<ir::Value*>> buckets;
    int64_t merged = 0;
    for (auto& op : fn.ops) {
      if (!op->is("constant")) continue;
      const ir::Blob& bytes = m.resource(op->attr("value").asResource().key);
      std::string key = op->result()->type.str() + "#" + std::to_string(fnv1a(bytes));
      ir::Value* same = nullptr;
      for (ir::Value* v : buckets[key])
        if (m.resource(v->owner->attr("value").asResource().key) == bytes) same = v;
      if (!same) {
        buckets[key].push_back(op->result());
      } else if (op->result()->hasUses()) {
        op->result()->replaceAllUsesWith(same);
        ++merged;
      }
    }
    return merged;
  }
};

}  // namespace

std::unique_ptr<Pass> createCanonicalizePass() { return std::make_unique<CanonicalizePass>(); }

}  // namespace hbdk::passes
