// The .hbm container (byte layout in docs/hbm.md): header, section table, and the graph,
// constants, instruction stream, I/O, perf summary, metadata and source-hash sections, closed by a
// whole-file CRC-32. The loader verifies every byte before anything is trusted.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ir/ir.h"
#include "isa/program.h"

namespace hbdk::hbm {

// A corrupt, truncated or inconsistent .hbm file; the message names the file and what is wrong.
class HbmError : public ir::Error {
 public:
  using ir::Error::Error;
};

constexpr uint32_t kFormatVersion = 1;
constexpr char kMagic[8] = {'H', 'B', 'M', '1', '\r', '\n', '\x1a', '\n'};

enum class SectionType : uint32_t {
  Graph = 1,
  Constants = 2,
  Program = 3,
  Io = 4,
  Perf = 5,
  Metadata = 6,
  SourceHash = 7,
};
const char* sectionName(SectionType t);  // "graph", "constants", ...

// A graph input or output: the tensor the caller passes or receives, and the quantization at the
// boundary (the scale of the `quantize` reading an input, of the `dequantize` producing an output,
// or the value's own scale when it is an integer tensor).
struct IoDesc {
  std::string name;
  ir::ElemType dtype = ir::ElemType::F32;
  ir::Shape shape;
  ir::ElemType quantDtype = ir::ElemType::SI8;
  std::vector<float> scales;
  int64_t axis = -1;
  bool operator==(const IoDesc& o) const {
    return name == o.name && dtype == o.dtype && shape == o.shape && quantDtype == o.quantDtype && scales == o.scales &&
           axis == o.axis;
  }
};

// I/O descriptions of @main as the loader checks them against the graph.
std::pair<std::vector<IoDesc>, std::vector<IoDesc>> describeIo(const ir::Module& m);

struct HbmModel {
  uint32_t formatVersion = kFormatVersion;
  uint32_t flags = 0;
  std::string compilerVersion;
  std::string march;
  std::unique_ptr<ir::Module> module;  // the graph the executor runs, constants included
  std::string graphText;               // canonical text of `module` (with its resource section)
  isa::Program program;
  std::vector<IoDesc> inputs, outputs;
  std::vector<std::pair<std::string, int64_t>> perfSummary;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::array<uint8_t, 32> sourceHash{};  // SHA-256
  std::string sourceHashHex() const;
};

struct WriteOptions {
  std::string compilerVersion = HBDK_VERSION;
  const std::string* sourceText = nullptr;  // hashed; the graph text when null
  std::string sourceName;
  std::vector<std::pair<std::string, std::string>> metadata;  // extra keys, after the standard ones
};

// Serializes a lowered module. Throws HbmError when the program does not belong to the module.
std::vector<uint8_t> writeHbm(const ir::Module& m, const isa::Program& program, const WriteOptions& opts = {});
// Verifies and loads. `origin` names the file in messages. Throws HbmError only.
HbmModel readHbm(const uint8_t* data, size_t size, const std::string& origin);
HbmModel loadHbmFile(const std::string& path);

// Checksums and hashes, implemented here (docs/hbm.md gives the parameters).
uint32_t crc32(const uint8_t* data, size_t size);
std::array<uint8_t, 32> sha256(const uint8_t* data, size_t size);
std::string hexString(const uint8_t* data, size_t size);

}  // namespace hbdk::hbm
