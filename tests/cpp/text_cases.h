// The several-cases-per-file form of the text tests (as mlir-opt's --split-input-file): cases are
// separated by lines that hold only "// -----"; a case states the error it must give on a line
// "// expected-error: LINE:COL: error: MESSAGE", its lines counted from the case's first line.
// The CLI reads the same form (python/hbdk_sim/text_cases.py); both must agree on it.
#pragma once

#include <string>
#include <vector>

namespace hbdk::testing {

struct TextCase {
  int firstLine = 1;  // line of the file where the case starts
  std::string text;   // the case's own lines
};

inline std::vector<TextCase> splitCases(const std::string& file) {
  const std::string marker = "// -----";
  std::vector<TextCase> cases(1);
  size_t pos = 0;
  int line = 1;
  while (pos <= file.size()) {
    size_t end = file.find('\n', pos);
    bool last = end == std::string::npos;
    std::string text = file.substr(pos, last ? std::string::npos : end - pos);
    std::string bare = !text.empty() && text.back() == '\r' ? text.substr(0, text.size() - 1) : text;
    if (bare == marker) {
      cases.push_back({line + 1, ""});
    } else {
      cases.back().text += text;
      if (!last) cases.back().text += '\n';
    }
    if (last) break;
    pos = end + 1;
    ++line;
  }
  return cases;
}

// The expected errors a case states, in order.
inline std::vector<std::string> expectedErrors(const std::string& text) {
  const std::string marker = "// expected-error: ";
  std::vector<std::string> out;
  for (size_t at = text.find(marker); at != std::string::npos; at = text.find(marker, at + 1)) {
    size_t start = at + marker.size(), end = text.find('\n', start);
    std::string e = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    while (!e.empty() && (e.back() == '\r' || e.back() == ' ')) e.pop_back();
    out.push_back(e);
  }
  return out;
}

}  // namespace hbdk::testing
