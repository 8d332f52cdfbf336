// Name suggestions for error messages ("did you mean 'fold-bn'?"), shared by the parser, the pass
// registry and the march loader so that every "unknown name" error judges typos the same way.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hbdk::ir {

// Levenshtein distance (insertions, deletions, substitutions each cost 1).
size_t editDistance(std::string_view a, std::string_view b);

// The candidate closest to `name` when it is a plausible typo of it: at most max(2, |name| / 3)
// edits away. nullopt otherwise, and for names over 64 characters (not a typo of a known name).
std::optional<std::string> closestMatch(std::string_view name, const std::vector<std::string>& candidates);

}  // namespace hbdk::ir
