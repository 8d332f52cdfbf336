// A minimal unit-test harness for the C++ core: TEST cases register themselves, CHECK macros
// record failures with file:line, and test_main.cpp runs them (optionally filtered by name).
#pragma once

#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace hbdk::testing {

struct TestCase {
  const char* name;
  std::function<void()> fn;
};

std::vector<TestCase>& registry();
void recordFailure(const char* file, int line, const std::string& msg);

struct Registrar {
  Registrar(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

}  // namespace hbdk::testing

#define HBDK_CAT2(a, b) a##b
#define HBDK_CAT(a, b) HBDK_CAT2(a, b)
#define TEST(name)                                                                            \
  static void HBDK_CAT(test_, name)();                                                        \
  static ::hbdk::testing::Registrar HBDK_CAT(registrar_, name)(#name, HBDK_CAT(test_, name)); \
  static void HBDK_CAT(test_, name)()

#define CHECK(cond)                                                                      \
  do {                                                                                   \
    if (!(cond)) ::hbdk::testing::recordFailure(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)

#define CHECK_EQ(a, b)                                                          \
  do {                                                                          \
    const auto& hbdk_a_ = (a);                                                  \
    const auto& hbdk_b_ = (b);                                                  \
    if (!(hbdk_a_ == hbdk_b_)) {                                                \
      std::ostringstream hbdk_os_;                                              \
      hbdk_os_ << "CHECK_EQ(" #a ", " #b "): " << hbdk_a_ << " != " << hbdk_b_; \
      ::hbdk::testing::recordFailure(__FILE__, __LINE__, hbdk_os_.str());       \
    }                                                                           \
  } while (0)

// Runs `stmt` and expects it to throw `Exc` whose what() contains `substr`.
#define CHECK_THROWS(Exc, stmt, substr)                                                                     \
  do {                                                                                                      \
    bool hbdk_thrown_ = false;                                                                              \
    try {                                                                                                   \
      stmt;                                                                                                 \
    } catch (const Exc& e) {                                                                                \
      hbdk_thrown_ = true;                                                                                  \
      if (std::string(e.what()).find(substr) == std::string::npos)                                          \
        ::hbdk::testing::recordFailure(__FILE__, __LINE__,                                                  \
                                       std::string("message lacks '") + (substr) + "': " + e.what());       \
    }                                                                                                       \
    if (!hbdk_thrown_) ::hbdk::testing::recordFailure(__FILE__, __LINE__, "expected " #Exc " from " #stmt); \
  } while (0)
