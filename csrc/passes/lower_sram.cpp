// lower, step 3b: SRAM addresses. First fit over 64-byte lines: the tile buffers of each group and
// the values that stay on chip between groups share one address space of the march's capacity.
#include <algorithm>

#include "passes/lower_internal.h"

namespace hbdk::passes::lowering {

std::optional<int64_t> SramAllocator::allocate(int64_t bytes) {
  bytes = alignUp(std::max<int64_t>(bytes, 1));
  int64_t at = 0;
  for (const auto& [off, size] : used_) {
    if (off - at >= bytes) break;
    at = off + size;
  }
  if (at + bytes > capacity_) return std::nullopt;
  used_[at] = bytes;
  return at;
}

int64_t SramAllocator::largestFree() const {
  int64_t best = 0, at = 0;
  for (const auto& [off, size] : used_) {
    best = std::max(best, off - at);
    at = off + size;
  }
  return std::max(best, capacity_ - at);
}

int64_t SramAllocator::usedBytes() const {
  int64_t n = 0;
  for (const auto& [off, size] : used_) n += size;
  return n;
}

}  // namespace hbdk::passes::lowering
