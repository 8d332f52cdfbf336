// March descriptions: what a BPU target has (clock, MAC array, vector unit, SRAM, DDR, DMA) and
// which ops and shapes it runs. Loaded from JSON data files shipped in python/hbdk_sim/marches/
// (or a user's own file); every field is validated with an error naming its JSON path.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ir/diagnostics.h"
#include "ir/types.h"

namespace hbdk::march {

enum class Dataflow : uint8_t { OutputStationary, WeightStationary, InputStationary };
const char* dataflowName(Dataflow d);  // "output_stationary", ...

struct MacArray {
  int64_t rows = 0;
  int64_t cols = 0;
  Dataflow dataflow = Dataflow::OutputStationary;
  // MACs per cycle for each operand precision, e.g. {"int8": rows*cols, "int16": rows*cols/4}.
  std::map<std::string, int64_t> macsPerCycle;
  // The depthwise datapath beside the array (per-channel window MACs, groups = channels convs):
  // MACs per cycle for the same precisions as macsPerCycle.
  std::map<std::string, int64_t> depthwiseMacsPerCycle;
};

struct VectorUnit {
  int64_t lanes = 0;                                  // int8 elements per cycle for elementwise ops
  std::map<std::string, int64_t> opsPerCyclePerLane;  // optional per-op cost overrides ("lut": 1, ...)
};

struct Sram {
  int64_t sizeBytes = 0;
  int64_t banks = 0;
  int64_t bytesPerCycle = 0;  // read+write bandwidth to the compute units
};

struct Ddr {
  double bandwidthGBps = 0;  // GB/s (1e9 bytes)
  int64_t latencyCycles = 0;
};

struct Dma {
  int64_t engines = 0;
  int64_t bytesPerCycle = 0;  // per engine
};

// Operator constraints for one op kind. Absent limits are unlimited; absent lists allow anything.
struct OpConstraints {
  std::vector<std::string> dtypes;   // accepted activation element types ("si8", "si16")
  std::optional<int64_t> kernelMax;  // max kernel height and width
  std::vector<int64_t> strides;      // allowed stride values
  std::optional<int64_t> dilationMax;
  std::optional<int64_t> channelsMax;  // input and output channels
  std::string groupsMode;              // "any", "depthwise_or_1" or "1" ("" = any)
  std::vector<int64_t> resizeFactors;  // allowed integer up/down-scale factors
  std::vector<std::string> modes;      // allowed `mode` attribute values (resize2d, pad)
  std::optional<int64_t> kMax;         // topk k, linear/matmul reduction size
};

struct FuseRules {
  bool convActivation = false;  // conv/linear + relu/relu6/clip in one instruction
  bool convAdd = false;         // conv + residual add (+ activation)
};

struct March {
  std::string name;
  std::string description;
  std::string sourcePath;  // where it was loaded from (for messages)
  double clockMHz = 0;
  MacArray macArray;
  VectorUnit vectorUnit;
  Sram sram;
  Ddr ddr;
  Dma dma;
  int64_t maxRank = 4;
  int64_t maxDim = 0;                        // any single dimension
  std::map<std::string, OpConstraints> ops;  // op name -> constraints; absent op = unsupported
  FuseRules fuse;

  // Peak int8 tera-operations per second (2 ops per MAC). Throws MarchError for a precision the
  // march has no throughput for.
  double peakTops(const std::string& precision = "int8") const;
  // The constraints of an op kind, or nullptr when the march does not run it.
  const OpConstraints* opConstraints(const std::string& opName) const;
};

class MarchError : public ir::Error {
 public:
  using ir::Error::Error;
};

// Parses and validates a march JSON text. `origin` names the file in messages. Throws
// ir::ParseError (JSON syntax, with line:col) or MarchError (a field is missing, of the wrong
// type or out of range; the message names the JSON path, e.g. "mac_array.rows").
March parseMarch(const std::string& json, const std::string& origin);
March loadMarchFile(const std::string& path);

// One field of the march JSON schema, for docs/marches.md; the loader reads the same table.
// `path` uses "<op>" for the op-name keys of `ops`.
struct SchemaField {
  std::string path;  // "mac_array.rows"
  std::string type;  // "positive integer"
  bool required;
  std::string doc;
};
std::vector<SchemaField> marchSchema();

}  // namespace hbdk::march
