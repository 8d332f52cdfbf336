// Names, equality, binary encoding and totals of the BPU program. The decoder trusts nothing: it
// is the first reader of an instruction stream coming from a file.
#include "isa/program.h"

#include <sstream>

#include "isa/encoding.h"

namespace hbdk::isa {

namespace {

struct OpcodeInfo {
  const char* name;
  Unit unit;
  VectorWork work;
};

using W = VectorWork;

// Indexed by Opcode.
const OpcodeInfo kOpcodes[kOpcodeCount] = {
    {"conv2d", Unit::MacArray, W::NotVector},
    {"conv_transpose2d", Unit::MacArray, W::NotVector},
    {"gemm", Unit::MacArray, W::NotVector},
    {"quantize", Unit::Vector, W::PerElement},
    {"dequantize", Unit::Vector, W::PerElement},
    {"requantize", Unit::Vector, W::PerElement},
    {"clamp", Unit::Vector, W::PerElement},
    {"add", Unit::Vector, W::PerElement},
    {"sub", Unit::Vector, W::PerElement},
    {"mul", Unit::Vector, W::PerElement},
    {"lut", Unit::Vector, W::PerElement},
    {"max_pool", Unit::Vector, W::Window},
    {"avg_pool", Unit::Vector, W::Window},
    {"global_avg_pool", Unit::Vector, W::Plane},
    {"resize", Unit::Vector, W::Interpolate},
    {"softmax", Unit::Vector, W::Softmax},
    {"concat", Unit::Vector, W::PerElement},
    {"split", Unit::Vector, W::PerElement},
    {"slice", Unit::Vector, W::PerElement},
    {"reshape", Unit::Vector, W::View},
    {"transpose", Unit::Vector, W::PerElement},
    {"pad", Unit::Vector, W::PerElement},
    {"gather", Unit::Vector, W::PerElement},
    {"scatter", Unit::Vector, W::PerElement},
    {"argmax", Unit::Vector, W::Axis},
    {"topk", Unit::Vector, W::SortNetwork},
    {"load_weights", Unit::Dma, W::NotVector},
    {"load_activation", Unit::Dma, W::NotVector},
    {"store_activation", Unit::Dma, W::NotVector},
    {"layer_norm", Unit::Vector, W::Normalize},
    {"grid_sample", Unit::Vector, W::Interpolate},
};

constexpr uint32_t kMaxRank = 16;

}  // namespace

const char* unitName(Unit u) {
  switch (u) {
    case Unit::MacArray: return "mac_array";
    case Unit::Vector: return "vector";
    case Unit::Dma: return "dma";
  }
  return "?";
}

const char* opcodeName(Opcode op) { return kOpcodes[static_cast<int>(op)].name; }
std::optional<Opcode> parseOpcode(std::string_view name) {
  for (int i = 0; i < kOpcodeCount; ++i)
    if (name == kOpcodes[i].name) return static_cast<Opcode>(i);
  return std::nullopt;
}
Unit unitOf(Opcode op) { return kOpcodes[static_cast<int>(op)].unit; }
VectorWork vectorWorkOf(Opcode op) { return kOpcodes[static_cast<int>(op)].work; }

const char* vectorWorkName(VectorWork w) {
  switch (w) {
    case VectorWork::View: return "view";
    case VectorWork::PerElement: return "per_element";
    case VectorWork::Softmax: return "softmax";
    case VectorWork::Window: return "window";
    case VectorWork::Plane: return "plane";
    case VectorWork::Axis: return "axis";
    case VectorWork::SortNetwork: return "sort_network";
    case VectorWork::Interpolate: return "interpolate";
    case VectorWork::Normalize: return "normalize";
    case VectorWork::NotVector: return "not_vector";
  }
  return "?";
}

const char* bufferRoleName(BufferRole r) {
  switch (r) {
    case BufferRole::Input: return "input";
    case BufferRole::Weights: return "weights";
    case BufferRole::Output: return "output";
  }
  return "?";
}

bool operator==(const SramBuffer& a, const SramBuffer& b) {
  return a.role == b.role && a.offset == b.offset && a.bytes == b.bytes && a.count == b.count;
}

bool operator==(const Instruction& a, const Instruction& b) {
  return a.unit == b.unit && a.opcode == b.opcode && a.opIndex == b.opIndex && a.ops == b.ops && a.group == b.group &&
         a.layer == b.layer && a.postOps == b.postOps && a.inputElem == b.inputElem && a.outputShape == b.outputShape &&
         a.tileShape == b.tileShape && a.tileCount == b.tileCount && a.gemmBatch == b.gemmBatch && a.gemmM == b.gemmM &&
         a.gemmN == b.gemmN && a.gemmK == b.gemmK && a.macs == b.macs && a.elements == b.elements &&
         a.bytesIn == b.bytesIn && a.bytesOut == b.bytesOut && a.ddrReadBytes == b.ddrReadBytes &&
         a.ddrWriteBytes == b.ddrWriteBytes && a.sram == b.sram;
}

bool operator==(const SramRegion& a, const SramRegion& b) {
  return a.value == b.value && a.offset == b.offset && a.bytes == b.bytes && a.firstInstruction == b.firstInstruction &&
         a.lastInstruction == b.lastInstruction;
}

bool operator==(const SramPlan& a, const SramPlan& b) {
  return a.capacityBytes == b.capacityBytes && a.peakBytes == b.peakBytes && a.onChipBytes == b.onChipBytes &&
         a.spilledBytes == b.spilledBytes && a.resident == b.resident;
}

bool operator==(const Program& a, const Program& b) {
  return a.march == b.march && a.function == b.function && a.opCount == b.opCount && a.instructions == b.instructions &&
         a.sram == b.sram;
}

// ---- encoding ---------------------------------------------------------------------------------

std::vector<uint8_t> encodeProgram(const Program& p) {
  ByteWriter w;
  w.str(p.march);
  w.str(p.function);
  w.u32(p.opCount);
  w.u32(static_cast<uint32_t>(p.instructions.size()));
  for (const Instruction& in : p.instructions) {
    w.u8(static_cast<uint8_t>(in.unit));
    w.u8(static_cast<uint8_t>(in.opcode));
    w.u8(static_cast<uint8_t>(in.inputElem));
    w.u32(in.opIndex);
    w.u32(static_cast<uint32_t>(in.ops.size()));
    for (uint32_t o : in.ops) w.u32(o);
    w.i64(in.group);
    w.str(in.layer);
    w.u32(static_cast<uint32_t>(in.postOps.size()));
    for (Opcode o : in.postOps) w.u8(static_cast<uint8_t>(o));
    w.i64s(in.outputShape);
    w.i64s(in.tileShape);
    for (int64_t v : {in.tileCount, in.gemmBatch, in.gemmM, in.gemmN, in.gemmK, in.macs, in.elements, in.bytesIn,
                      in.bytesOut, in.ddrReadBytes, in.ddrWriteBytes})
      w.i64(v);
    w.u32(static_cast<uint32_t>(in.sram.size()));
    for (const SramBuffer& b : in.sram) {
      w.u8(static_cast<uint8_t>(b.role));
      w.i64(b.offset);
      w.i64(b.bytes);
      w.i64(b.count);
    }
  }
  const SramPlan& s = p.sram;
  for (int64_t v : {s.capacityBytes, s.peakBytes, s.onChipBytes, s.spilledBytes}) w.i64(v);
  w.u32(static_cast<uint32_t>(s.resident.size()));
  for (const SramRegion& r : s.resident) {
    w.str(r.value);
    w.i64(r.offset);
    w.i64(r.bytes);
    w.u32(r.firstInstruction);
    w.u32(r.lastInstruction);
  }
  return std::move(w.data());
}

namespace {

int64_t nonNegative(ByteReader& r, const char* field) {
  int64_t v = r.i64();
  if (v < 0) r.fail(std::string(field) + " is negative (" + std::to_string(v) + ")");
  return v;
}

std::vector<int64_t> shape(ByteReader& r, const char* field) {
  std::vector<int64_t> s = r.i64s(field);
  if (s.size() > kMaxRank) r.fail(std::string(field) + " has rank " + std::to_string(s.size()));
  for (int64_t d : s)
    if (d < 0) r.fail(std::string(field) + " has a negative dimension");
  return s;
}

Opcode opcode(ByteReader& r) {
  uint8_t v = r.u8();
  if (v >= kOpcodeCount) r.fail("unknown opcode " + std::to_string(v));
  return static_cast<Opcode>(v);
}

}  // namespace

Program decodeProgram(const uint8_t* data, size_t size) {
  ByteReader r(data, size, "instruction stream");
  Program p;
  p.march = r.str("march name");
  p.function = r.str("function name");
  p.opCount = r.u32();
  // An instruction takes at least 100 bytes; the count check bounds the allocation.
  uint32_t n = r.count(100, "instruction");
  p.instructions.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    Instruction& in = p.instructions[i];
    uint8_t unit = r.u8();
    if (unit > static_cast<uint8_t>(Unit::Dma))
      r.fail("instruction " + std::to_string(i) + ": unknown unit " + std::to_string(unit));
    in.unit = static_cast<Unit>(unit);
    in.opcode = opcode(r);
    if (unitOf(in.opcode) != in.unit)
      r.fail("instruction " + std::to_string(i) + ": opcode " + opcodeName(in.opcode) + " does not run on unit " +
             unitName(in.unit));
    uint8_t elem = r.u8();
    if (elem > static_cast<uint8_t>(ir::ElemType::Bool))
      r.fail("instruction " + std::to_string(i) + ": unknown element type");
    in.inputElem = static_cast<ir::ElemType>(elem);
    in.opIndex = r.u32();
    uint32_t nOps = r.count(4, "op index");
    in.ops.resize(nOps);
    for (uint32_t& o : in.ops) o = r.u32();
    for (uint32_t o : in.ops)
      if (o >= p.opCount)
        r.fail("instruction " + std::to_string(i) + ": op index " + std::to_string(o) + " out of range");
    if (in.opIndex >= p.opCount) r.fail("instruction " + std::to_string(i) + ": op index out of range");
    in.group = r.i64();
    in.layer = r.str("layer name");
    uint32_t nPost = r.count(1, "post-op");
    in.postOps.resize(nPost);
    for (Opcode& o : in.postOps) o = opcode(r);
    in.outputShape = shape(r, "output shape");
    in.tileShape = shape(r, "tile shape");
    in.tileCount = nonNegative(r, "tile count");
    if (in.tileCount < 1) r.fail("instruction " + std::to_string(i) + ": tile count is 0");
    in.gemmBatch = nonNegative(r, "gemm batch");
    in.gemmM = nonNegative(r, "gemm M");
    in.gemmN = nonNegative(r, "gemm N");
    in.gemmK = nonNegative(r, "gemm K");
    in.macs = nonNegative(r, "MACs");
    in.elements = nonNegative(r, "elements");
    in.bytesIn = nonNegative(r, "bytes in");
    in.bytesOut = nonNegative(r, "bytes out");
    in.ddrReadBytes = nonNegative(r, "DDR read bytes");
    in.ddrWriteBytes = nonNegative(r, "DDR write bytes");
    uint32_t nBuf = r.count(25, "SRAM buffer");
    in.sram.resize(nBuf);
    for (SramBuffer& b : in.sram) {
      uint8_t role = r.u8();
      if (role > static_cast<uint8_t>(BufferRole::Output)) r.fail("unknown SRAM buffer role " + std::to_string(role));
      b.role = static_cast<BufferRole>(role);
      b.offset = nonNegative(r, "SRAM offset");
      b.bytes = nonNegative(r, "SRAM buffer size");
      b.count = nonNegative(r, "SRAM buffer count");
      if (b.count < 1 || b.count > 2) r.fail("SRAM buffer count " + std::to_string(b.count) + " is not 1 or 2");
    }
  }
  SramPlan& s = p.sram;
  s.capacityBytes = nonNegative(r, "SRAM capacity");
  s.peakBytes = nonNegative(r, "SRAM peak");
  s.onChipBytes = nonNegative(r, "on-chip bytes");
  s.spilledBytes = nonNegative(r, "spilled bytes");
  uint32_t nRes = r.count(28, "resident region");
  s.resident.resize(nRes);
  for (SramRegion& reg : s.resident) {
    reg.value = r.str("value name");
    reg.offset = nonNegative(r, "SRAM offset");
    reg.bytes = nonNegative(r, "SRAM region size");
    reg.firstInstruction = r.u32();
    reg.lastInstruction = r.u32();
    if (reg.firstInstruction > reg.lastInstruction || reg.lastInstruction >= n)
      r.fail("resident region '" + reg.value + "' has an invalid instruction range");
  }
  r.expectEnd();

  // Every SRAM address must lie inside the capacity; the sizes are bounded so the sums cannot overflow.
  constexpr int64_t kMaxSram = int64_t{1} << 48;
  if (s.capacityBytes > kMaxSram)
    throw DecodeError("instruction stream: SRAM capacity " + std::to_string(s.capacityBytes) + " is implausible");
  auto inside = [&](int64_t offset, int64_t bytes) {
    return offset <= s.capacityBytes && bytes <= s.capacityBytes && offset + bytes <= s.capacityBytes;
  };
  for (uint32_t i = 0; i < n; ++i)
    for (const SramBuffer& b : p.instructions[i].sram)
      if (!inside(b.offset, b.bytes) || !inside(b.offset, b.bytes * b.count))
        throw DecodeError("instruction stream: instruction " + std::to_string(i) + " has an SRAM " +
                          bufferRoleName(b.role) + " buffer outside the " + std::to_string(s.capacityBytes) +
                          "-byte SRAM");
  for (const SramRegion& reg : s.resident)
    if (!inside(reg.offset, reg.bytes))
      throw DecodeError("instruction stream: resident region '" + reg.value + "' lies outside the SRAM");
  if (s.peakBytes > s.capacityBytes) throw DecodeError("instruction stream: SRAM peak exceeds the capacity");
  return p;
}

// ---- totals and printing ----------------------------------------------------------------------

std::vector<std::pair<std::string, int64_t>> programTotals(const Program& p) {
  int64_t macs = 0, mac = 0, vec = 0, dma = 0, tiles = 0, rd = 0, wr = 0, weights = 0, elements = 0;
  for (const Instruction& in : p.instructions) {
    macs += in.macs;
    tiles += in.tileCount;
    rd += in.ddrReadBytes;
    wr += in.ddrWriteBytes;
    if (in.opcode == Opcode::LoadWeights) weights += in.ddrReadBytes;
    if (in.unit != Unit::Dma) elements += in.elements;
    (in.unit == Unit::MacArray ? mac : in.unit == Unit::Vector ? vec : dma) += 1;
  }
  return {
      {"macs", macs},
      {"instructions", static_cast<int64_t>(p.instructions.size())},
      {"mac_array_instructions", mac},
      {"vector_instructions", vec},
      {"dma_instructions", dma},
      {"tiles", tiles},
      {"compute_elements", elements},
      {"ddr_read_bytes", rd},
      {"ddr_write_bytes", wr},
      {"weight_bytes", weights},
      {"sram_capacity_bytes", p.sram.capacityBytes},
      {"sram_peak_bytes", p.sram.peakBytes},
      {"onchip_bytes", p.sram.onChipBytes},
      {"spilled_bytes", p.sram.spilledBytes},
  };
}

std::string printProgram(const Program& p) {
  std::ostringstream os;
  os << "program @" << p.function << " for " << p.march << ": " << p.instructions.size() << " instructions\n";
  for (size_t i = 0; i < p.instructions.size(); ++i) {
    const Instruction& in = p.instructions[i];
    os << "  " << i << ": " << unitName(in.unit) << "." << opcodeName(in.opcode);
    for (Opcode o : in.postOps) os << "+" << opcodeName(o);
    os << " op=" << in.opIndex;
    if (!in.layer.empty()) os << " layer=\"" << in.layer << "\"";
    os << " out=" << ir::shapeStr(in.outputShape) << " tile=" << ir::shapeStr(in.tileShape) << " x" << in.tileCount;
    if (in.macs) os << " macs=" << in.macs;
    os << " elems=" << in.elements << " in=" << in.bytesIn << "B out=" << in.bytesOut << "B";
    if (in.ddrReadBytes || in.ddrWriteBytes)
      os << " ddr_r=" << in.ddrReadBytes << "B ddr_w=" << in.ddrWriteBytes << "B";
    os << "\n";
  }
  os << "sram: capacity=" << p.sram.capacityBytes << "B peak=" << p.sram.peakBytes << "B on_chip=" << p.sram.onChipBytes
     << "B spilled=" << p.sram.spilledBytes << "B resident=" << p.sram.resident.size() << "\n";
  return os.str();
}

}  // namespace hbdk::isa
