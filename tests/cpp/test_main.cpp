// Runs every registered C++ test, or those whose name contains argv[1]. Exit 1 on any failure.
#include <cstring>
#include <exception>

#include "testing.h"

namespace hbdk::testing {

std::vector<TestCase>& registry() {
  static std::vector<TestCase> tests;
  return tests;
}

static int gFailures = 0;

void recordFailure(const char* file, int line, const std::string& msg) {
  ++gFailures;
  std::cerr << file << ":" << line << ": FAILED: " << msg << "\n";
}

}  // namespace hbdk::testing

int main(int argc, char** argv) {
  using namespace hbdk::testing;
  int passed = 0, failed = 0;
  for (const auto& t : registry()) {
    if (argc > 1 && std::strstr(t.name, argv[1]) == nullptr) continue;
    int before = gFailures;
    try {
      t.fn();
    } catch (const std::exception& e) {
      recordFailure(t.name, 0, std::string("uncaught exception: ") + e.what());
    }
    if (gFailures == before) {
      ++passed;
    } else {
      ++failed;
      std::cerr << "[FAIL] " << t.name << "\n";
    }
  }
  std::cout << passed << " passed, " << failed << " failed\n";
  return failed ? 1 : 0;
}
