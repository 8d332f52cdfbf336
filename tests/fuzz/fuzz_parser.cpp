// libFuzzer target for the .hbir parser. Any input must end in a module or in exactly one
// hbdk::ir::Error; any other exception, a crash, a hang or a sanitizer report is a bug. A module
// that parses must print canonically: its printout parses again and prints identically.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ir/text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::unique_ptr<hbdk::ir::Module> m;
  try {
    m = hbdk::ir::parseModule(text, "fuzz.hbir");
  } catch (const hbdk::ir::Error& e) {
    // One line, and it says where.
    std::string_view msg = e.what();
    if (msg.find('\n') != std::string_view::npos || msg.rfind("fuzz.hbir:", 0) != 0) {
      std::fprintf(stderr, "malformed error message: %s\n", e.what());
      std::abort();
    }
    return 0;
  }
  std::string printed = hbdk::ir::printModule(*m);
  std::string reprinted;
  try {
    reprinted = hbdk::ir::printModule(*hbdk::ir::parseModule(printed, "printed.hbir"));
  } catch (const hbdk::ir::Error& e) {
    std::fprintf(stderr, "printed module does not parse: %s\n--- printed ---\n%s", e.what(), printed.c_str());
    std::abort();
  }
  if (reprinted != printed) {
    std::fprintf(stderr, "print is not stable\n--- first ---\n%s--- second ---\n%s", printed.c_str(),
                 reprinted.c_str());
    std::abort();
  }
  return 0;
}
