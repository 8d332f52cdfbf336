#include "ir/strings.h"

#include <algorithm>

namespace hbdk::ir {

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::optional<std::string> closestMatch(std::string_view name, const std::vector<std::string>& candidates) {
  if (name.size() > 64) return std::nullopt;
  const std::string* best = nullptr;
  size_t bestDist = 0;
  for (const std::string& c : candidates) {
    size_t d = editDistance(name, c);
    if (!best || d < bestDist) best = &c, bestDist = d;
  }
  if (best && bestDist <= std::max<size_t>(2, name.size() / 3)) return *best;
  return std::nullopt;
}

}  // namespace hbdk::ir
