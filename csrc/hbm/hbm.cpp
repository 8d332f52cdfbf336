// Writer and verifying loader of the .hbm container, with the CRC-32 and SHA-256 they use. The
// loader checks, in order: magic, version, recorded size, header fields, section table bounds and
// overlaps, each section's CRC, the file checksum, then parses every section and checks that the
// program, I/O descriptions and perf summary agree with the graph. Any failure is one HbmError.
#include "hbm/hbm.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>

#include "ir/text.h"
#include "isa/encoding.h"

namespace hbdk::hbm {

using isa::ByteReader;
using isa::ByteWriter;
using isa::DecodeError;

// ---- checksums --------------------------------------------------------------------------------

uint32_t crc32(const uint8_t* data, size_t size) {
  // CRC-32/ISO-HDLC (zlib's): reflected polynomial 0xEDB88320, initial and final XOR 0xFFFFFFFF.
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) c = table[(c ^ data[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

namespace {

uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

// One 64-byte block of FIPS 180-4 SHA-256.
void sha256Block(std::array<uint32_t, 8>& h, const uint8_t* p) {
  static const uint32_t k[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
      0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
      0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
      0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
      0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
      0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
      0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
  uint32_t w[64];
  for (int i = 0; i < 16; ++i)
    w[i] = uint32_t{p[4 * i]} << 24 | uint32_t{p[4 * i + 1]} << 16 | uint32_t{p[4 * i + 2]} << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
    uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    hh = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

}  // namespace

std::array<uint8_t, 32> sha256(const uint8_t* data, size_t size) {
  std::array<uint32_t, 8> h = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  size_t full = size / 64 * 64;
  for (size_t i = 0; i < full; i += 64) sha256Block(h, data + i);
  // Padding: 0x80, zeros, then the message length in bits as a big-endian u64.
  uint8_t tail[128] = {};
  size_t rest = size - full;
  if (rest) std::copy(data + full, data + size, tail);
  tail[rest] = 0x80;
  size_t tailLen = rest + 1 + 8 <= 64 ? 64 : 128;
  uint64_t bits = static_cast<uint64_t>(size) * 8;
  for (int i = 0; i < 8; ++i) tail[tailLen - 1 - i] = static_cast<uint8_t>(bits >> (8 * i));
  for (size_t i = 0; i < tailLen; i += 64) sha256Block(h, tail + i);
  std::array<uint8_t, 32> out{};
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 4; ++j) out[4 * i + j] = static_cast<uint8_t>(h[i] >> (24 - 8 * j));
  return out;
}

std::string hexString(const uint8_t* data, size_t size) {
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    s += kHex[data[i] >> 4];
    s += kHex[data[i] & 15];
  }
  return s;
}

std::string HbmModel::sourceHashHex() const { return hexString(sourceHash.data(), sourceHash.size()); }

const char* sectionName(SectionType t) {
  switch (t) {
    case SectionType::Graph: return "graph";
    case SectionType::Constants: return "constants";
    case SectionType::Program: return "program";
    case SectionType::Io: return "io";
    case SectionType::Perf: return "perf";
    case SectionType::Metadata: return "metadata";
    case SectionType::SourceHash: return "source_hash";
  }
  return "?";
}

// ---- layout constants -------------------------------------------------------------------------

namespace {

constexpr size_t kFixedHeader = 32;  // magic, version, flags, file size, header size, section count
constexpr size_t kMinHeader = kFixedHeader + 4;
constexpr size_t kEntryBytes = 24;  // type u32, crc32 u32, offset u64, size u64
constexpr size_t kTrailerBytes = 4;
constexpr uint32_t kMaxSections = 64;
constexpr uint32_t kFlagSourceHashOfInput = 1;  // the source hash is of the input text, not the graph
constexpr uint8_t kHashSha256 = 1;
constexpr SectionType kSectionOrder[] = {SectionType::Graph,     SectionType::Constants, SectionType::Program,
                                         SectionType::Io,        SectionType::Perf,      SectionType::Metadata,
                                         SectionType::SourceHash};

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

uint64_t readLe(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

// The text of a module's resource section exactly as the printer writes it; the graph section is
// the printed module without it, and the loader appends it again from the constants section.
std::string resourceText(const std::vector<std::pair<std::string, ir::Blob>>& resources) {
  if (resources.empty()) return "";
  std::string s = "\nresources {\n";
  static const char kHex[] = "0123456789ABCDEF";
  for (const auto& [key, blob] : resources) {
    s += "  " + key + " = \"0x";
    for (uint8_t b : blob) {
      s += kHex[b >> 4];
      s += kHex[b & 15];
    }
    s += "\"\n";
  }
  return s + "}\n";
}

const ir::Function& mainFunction(const ir::Module& m) {
  const ir::Function* fn = m.function("main");
  if (!fn) throw HbmError("error: module @" + m.name + " has no function @main");
  return *fn;
}

IoDesc ioOf(const ir::Value* v, const ir::Value* boundary) {
  IoDesc d;
  d.name = v->name;
  d.dtype = v->type.elem;
  d.shape = v->type.shape;
  const ir::TensorType& q = boundary ? boundary->type : v->type;
  d.quantDtype = q.elem;
  if (q.quant) {
    d.scales = q.quant->scales;
    d.axis = q.quant->axis;
  }
  return d;
}

void writeIo(ByteWriter& w, const IoDesc& d) {
  w.str(d.name);
  w.u8(static_cast<uint8_t>(d.dtype));
  w.i64s(d.shape);
  w.u8(static_cast<uint8_t>(d.quantDtype));
  w.i64(d.axis);
  w.u32(static_cast<uint32_t>(d.scales.size()));
  for (float s : d.scales) w.f32(s);
}

ir::ElemType readElem(ByteReader& r, const char* field) {
  uint8_t v = r.u8();
  if (v > static_cast<uint8_t>(ir::ElemType::Bool)) r.fail(std::string("unknown element type in ") + field);
  return static_cast<ir::ElemType>(v);
}

IoDesc readIo(ByteReader& r) {
  IoDesc d;
  d.name = r.str("name");
  d.dtype = readElem(r, "dtype");
  d.shape = r.i64s("shape");
  d.quantDtype = readElem(r, "quantized dtype");
  d.axis = r.i64();
  uint32_t n = r.count(4, "scale");
  d.scales.resize(n);
  for (float& s : d.scales) s = r.f32();
  return d;
}

std::string ioStr(const IoDesc& d) {
  std::string s = "'" + d.name + "' " + ir::shapeStr(d.shape) + "x" + ir::elemTypeName(d.dtype) + " (" +
                  ir::elemTypeName(d.quantDtype) + ", " + std::to_string(d.scales.size()) + " scales";
  if (d.scales.size() == 1) s += " " + ir::formatFloat(d.scales[0]);
  return s + ")";
}

}  // namespace

std::pair<std::vector<IoDesc>, std::vector<IoDesc>> describeIo(const ir::Module& m) {
  const ir::Function& fn = mainFunction(m);
  std::vector<IoDesc> ins, outs;
  for (const auto& arg : fn.args) {
    const ir::Value* boundary = nullptr;
    if (arg->type.elem == ir::ElemType::F32)
      for (const auto& [user, idx] : fn.uses(arg.get()))
        if (user && user->is("quantize")) {
          boundary = user->result();
          break;
        }
    ins.push_back(ioOf(arg.get(), boundary));
  }
  for (const ir::Value* v : fn.returns()) {
    const ir::Value* boundary = v->owner && v->owner->is("dequantize") ? v->owner->operand(0) : nullptr;
    outs.push_back(ioOf(v, boundary));
  }
  return {ins, outs};
}

// ---- writer -----------------------------------------------------------------------------------

std::vector<uint8_t> writeHbm(const ir::Module& module, const isa::Program& program, const WriteOptions& opts) {
  // Work on the canonical form (parsed back from the printout), so that value names and resource
  // keys are exactly those the loader will see.
  std::string text = ir::printModule(module);
  std::unique_ptr<ir::Module> canon = ir::parseModule(text, "<serialize>");
  const ir::Function& fn = mainFunction(*canon);
  if (program.opCount != fn.ops.size())
    throw HbmError("error: the program was lowered from a @main of " + std::to_string(program.opCount) +
                   " ops but the module's @main has " + std::to_string(fn.ops.size()) + "; run lower again");
  std::string resources = resourceText(canon->resources());
  if (text.size() < resources.size() || text.compare(text.size() - resources.size(), resources.size(), resources) != 0)
    throw HbmError("error: the printed module does not end with its resource section");
  std::string graph = text.substr(0, text.size() - resources.size());

  std::vector<std::vector<uint8_t>> payload(std::size(kSectionOrder));
  payload[0].assign(graph.begin(), graph.end());
  {
    ByteWriter w;
    w.u32(static_cast<uint32_t>(canon->resources().size()));
    for (const auto& [key, blob] : canon->resources()) {
      w.str(key);
      w.u64(blob.size());
      w.bytes(blob.data(), blob.size());
    }
    payload[1] = std::move(w.data());
  }
  payload[2] = isa::encodeProgram(program);
  {
    auto [ins, outs] = describeIo(*canon);
    ByteWriter w;
    w.u32(static_cast<uint32_t>(ins.size()));
    for (const IoDesc& d : ins) writeIo(w, d);
    w.u32(static_cast<uint32_t>(outs.size()));
    for (const IoDesc& d : outs) writeIo(w, d);
    payload[3] = std::move(w.data());
  }
  {
    auto totals = isa::programTotals(program);
    ByteWriter w;
    w.u32(static_cast<uint32_t>(totals.size()));
    for (const auto& [k, v] : totals) {
      w.str(k);
      w.i64(v);
    }
    payload[4] = std::move(w.data());
  }
  {
    std::vector<std::pair<std::string, std::string>> meta = {
        {"compiler", "hbdk-sim " + opts.compilerVersion},
        {"module", canon->name},
        {"function", fn.name},
        {"march", program.march},
        {"source_hash_of", opts.sourceText ? "input" : "graph"},
    };
    if (!opts.sourceName.empty()) meta.push_back({"source_file", opts.sourceName});
    for (const auto& kv : opts.metadata) {
      if (std::any_of(meta.begin(), meta.end(), [&](const auto& e) { return e.first == kv.first; }))
        throw HbmError("error: metadata key '" + kv.first + "' is given twice");
      meta.push_back(kv);
    }
    ByteWriter w;
    w.u32(static_cast<uint32_t>(meta.size()));
    for (const auto& [k, v] : meta) {
      w.str(k);
      w.str(v);
    }
    payload[5] = std::move(w.data());
  }
  {
    const std::string& hashed = opts.sourceText ? *opts.sourceText : graph;
    auto digest = sha256(reinterpret_cast<const uint8_t*>(hashed.data()), hashed.size());
    payload[6].push_back(kHashSha256);
    payload[6].insert(payload[6].end(), digest.begin(), digest.end());
  }

  if (opts.compilerVersion.size() > 0xFFFF || program.march.size() > 0xFFFF)
    throw HbmError("error: compiler version or march name longer than 65535 bytes");
  ByteWriter w;
  w.bytes(reinterpret_cast<const uint8_t*>(kMagic), 8);
  w.u32(kFormatVersion);
  w.u32(opts.sourceText ? kFlagSourceHashOfInput : 0);
  w.u64(0);  // file size, patched below
  size_t headerSize = (kMinHeader + opts.compilerVersion.size() + program.march.size() + 7) / 8 * 8;
  w.u32(static_cast<uint32_t>(headerSize));
  w.u32(static_cast<uint32_t>(payload.size()));
  w.u16(static_cast<uint16_t>(opts.compilerVersion.size()));
  w.bytes(reinterpret_cast<const uint8_t*>(opts.compilerVersion.data()), opts.compilerVersion.size());
  w.u16(static_cast<uint16_t>(program.march.size()));
  w.bytes(reinterpret_cast<const uint8_t*>(program.march.data()), program.march.size());
  w.padTo(8);
  size_t offset = headerSize + payload.size() * kEntryBytes;
  for (size_t i = 0; i < payload.size(); ++i) {
    offset = (offset + 7) / 8 * 8;
    w.u32(static_cast<uint32_t>(kSectionOrder[i]));
    w.u32(crc32(payload[i].data(), payload[i].size()));
    w.u64(offset);
    w.u64(payload[i].size());
    offset += payload[i].size();
  }
  for (const auto& p : payload) {
    w.padTo(8);
    w.bytes(p.data(), p.size());
  }
  std::vector<uint8_t>& out = w.data();
  uint64_t fileSize = out.size() + kTrailerBytes;
  for (int i = 0; i < 8; ++i) out[16 + i] = static_cast<uint8_t>(fileSize >> (8 * i));
  uint32_t sum = crc32(out.data(), out.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(sum >> (8 * i)));
  return std::move(out);
}

// ---- loader -----------------------------------------------------------------------------------

namespace {

struct Section {
  SectionType type;
  uint32_t crc;
  uint64_t offset, size;
};

class Loader {
 public:
  Loader(const uint8_t* data, size_t size, std::string origin) : d_(data), n_(size), origin_(std::move(origin)) {}

  HbmModel load() {
    HbmModel model;
    readHeader(model);
    std::vector<Section> sections = readTable();
    for (const Section& s : sections) {
      uint32_t actual = crc32(d_ + s.offset, s.size);
      if (actual != s.crc)
        fail("section '" + std::string(sectionName(s.type)) + "' is corrupt: its CRC-32 is " + hex32(actual) +
             " but the section table records " + hex32(s.crc));
    }
    uint32_t stored = static_cast<uint32_t>(readLe(d_ + n_ - kTrailerBytes, 4));
    uint32_t actual = crc32(d_, n_ - kTrailerBytes);
    if (stored != actual)
      fail("file checksum mismatch: the bytes hash to CRC-32 " + hex32(actual) + " but the file records " +
           hex32(stored));

    auto at = [&](SectionType t) -> const Section& {
      return *std::find_if(sections.begin(), sections.end(), [&](const Section& s) { return s.type == t; });
    };
    parseGraph(model, at(SectionType::Graph), at(SectionType::Constants));
    parseProgram(model, at(SectionType::Program));
    parseIo(model, at(SectionType::Io));
    parsePerf(model, at(SectionType::Perf));
    parseMetadata(model, at(SectionType::Metadata));
    parseSourceHash(model, at(SectionType::SourceHash));
    return model;
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const { throw HbmError(origin_ + ": error: " + msg); }

  void readHeader(HbmModel& model) {
    if (n_ == 0) fail("empty file (0 bytes); not an .hbm file");
    size_t m = std::min<size_t>(n_, 8);
    if (std::memcmp(d_, kMagic, m) != 0)
      fail("not an .hbm file: the first bytes are not the magic \"HBM1\\r\\n\\x1a\\n\"");
    if (n_ < kMinHeader + kTrailerBytes)
      fail("truncated: the file has " + std::to_string(n_) + " bytes, fewer than the " +
           std::to_string(kMinHeader + kTrailerBytes) + " of an empty header");
    model.formatVersion = static_cast<uint32_t>(readLe(d_ + 8, 4));
    if (model.formatVersion != kFormatVersion)
      fail("unsupported format version " + std::to_string(model.formatVersion) + "; this build reads version " +
           std::to_string(kFormatVersion));
    model.flags = static_cast<uint32_t>(readLe(d_ + 12, 4));
    uint64_t recorded = readLe(d_ + 16, 8);
    if (recorded != n_)
      fail(recorded > n_ ? "truncated: the header records " + std::to_string(recorded) + " bytes but the file has " +
                               std::to_string(n_)
                         : "the file has " + std::to_string(n_) + " bytes but the header records " +
                               std::to_string(recorded) + " (trailing bytes)");
    if (model.flags & ~kFlagSourceHashOfInput) fail("unknown flags " + hex32(model.flags) + " in the header");
    headerSize_ = readLe(d_ + 24, 4);
    sectionCount_ = static_cast<uint32_t>(readLe(d_ + 28, 4));
    if (headerSize_ < kMinHeader || headerSize_ % 8 != 0 || headerSize_ > n_ - kTrailerBytes)
      fail("header size " + std::to_string(headerSize_) + " is out of range");
    ByteReader r(d_ + kFixedHeader, headerSize_ - kFixedHeader, "header");
    try {
      uint16_t len = r.u16();
      model.compilerVersion.assign(reinterpret_cast<const char*>(r.bytes(len, "compiler version")), len);
      len = r.u16();
      model.march.assign(reinterpret_cast<const char*>(r.bytes(len, "march name")), len);
    } catch (const DecodeError& e) {
      fail(e.what());
    }
  }

  std::vector<Section> readTable() {
    if (sectionCount_ == 0 || sectionCount_ > kMaxSections)
      fail("section count " + std::to_string(sectionCount_) + " is out of range (1 to " + std::to_string(kMaxSections) +
           ")");
    uint64_t tableEnd = headerSize_ + uint64_t{sectionCount_} * kEntryBytes;
    uint64_t dataEnd = n_ - kTrailerBytes;
    if (tableEnd > dataEnd)
      fail("truncated: the section table of " + std::to_string(sectionCount_) + " entries ends at byte " +
           std::to_string(tableEnd) + ", past the last data byte " + std::to_string(dataEnd));
    std::vector<Section> sections;
    std::set<uint32_t> seen;
    for (uint32_t i = 0; i < sectionCount_; ++i) {
      const uint8_t* e = d_ + headerSize_ + i * kEntryBytes;
      uint32_t type = static_cast<uint32_t>(readLe(e, 4));
      Section s{static_cast<SectionType>(type), static_cast<uint32_t>(readLe(e + 4, 4)), readLe(e + 8, 8),
                readLe(e + 16, 8)};
      if (type < 1 || type > static_cast<uint32_t>(SectionType::SourceHash))
        fail("section table entry " + std::to_string(i) + " has unknown type " + std::to_string(type));
      std::string name = std::string("section '") + sectionName(s.type) + "'";
      if (!seen.insert(type).second) fail(name + " appears twice in the section table");
      if (s.offset < tableEnd || s.offset > dataEnd || s.size > dataEnd - s.offset)
        fail(name + " (offset " + std::to_string(s.offset) + ", size " + std::to_string(s.size) +
             ") lies outside the data area [" + std::to_string(tableEnd) + ", " + std::to_string(dataEnd) + ")");
      sections.push_back(s);
    }
    for (SectionType t : kSectionOrder)
      if (!seen.count(static_cast<uint32_t>(t))) fail(std::string("missing section '") + sectionName(t) + "'");
    std::vector<Section> byOffset = sections;
    std::sort(byOffset.begin(), byOffset.end(), [](const Section& a, const Section& b) { return a.offset < b.offset; });
    for (size_t i = 1; i < byOffset.size(); ++i)
      if (byOffset[i - 1].offset + byOffset[i - 1].size > byOffset[i].offset)
        fail(std::string("sections '") + sectionName(byOffset[i - 1].type) + "' and '" + sectionName(byOffset[i].type) +
             "' overlap");
    return sections;
  }

  // Runs `body` on a reader over the section; decode errors become "section 'x': ...".
  template <typename F>
  void parse(const Section& s, F body) {
    ByteReader r(d_ + s.offset, s.size, std::string("section '") + sectionName(s.type) + "'");
    try {
      body(r);
      r.expectEnd();
    } catch (const DecodeError& e) {
      fail(e.what());
    }
  }

  void parseGraph(HbmModel& model, const Section& graph, const Section& constants) {
    std::vector<std::pair<std::string, ir::Blob>> resources;
    parse(constants, [&](ByteReader& r) {
      uint32_t n = r.count(12, "constant");
      for (uint32_t i = 0; i < n; ++i) {
        std::string key = r.str("constant key");
        uint64_t size = r.u64();
        if (size > r.remaining())
          r.fail("constant '" + key + "' of " + std::to_string(size) + " bytes overruns the section");
        const uint8_t* p = r.bytes(static_cast<size_t>(size), "constant data");
        resources.emplace_back(std::move(key), ir::Blob(p, p + size));
      }
    });
    std::string text(reinterpret_cast<const char*>(d_ + graph.offset), graph.size);
    text += resourceText(resources);
    try {
      model.module = ir::parseModule(text, origin_ + "[graph]");
    } catch (const ir::Error& e) {
      fail(std::string("graph section does not parse: ") + e.what());
    }
    if (!model.module->function("main")) fail("the graph has no function @main");
    model.graphText = std::move(text);
  }

  void parseProgram(HbmModel& model, const Section& s) {
    try {
      model.program = isa::decodeProgram(d_ + s.offset, s.size);
    } catch (const DecodeError& e) {
      fail(std::string("section 'program': ") + e.what());
    }
    const ir::Function& fn = *model.module->function("main");
    if (model.program.opCount != fn.ops.size())
      fail("the program covers " + std::to_string(model.program.opCount) + " ops but the graph's @main has " +
           std::to_string(fn.ops.size()));
    if (model.program.march != model.march)
      fail("the program was lowered for march '" + model.program.march + "' but the header names '" + model.march +
           "'");
  }

  void parseIo(HbmModel& model, const Section& s) {
    parse(s, [&](ByteReader& r) {
      uint32_t n = r.count(30, "input");
      for (uint32_t i = 0; i < n; ++i) model.inputs.push_back(readIo(r));
      n = r.count(30, "output");
      for (uint32_t i = 0; i < n; ++i) model.outputs.push_back(readIo(r));
    });
    auto [ins, outs] = describeIo(*model.module);
    auto compare = [&](const std::vector<IoDesc>& stored, const std::vector<IoDesc>& graph, const char* what) {
      if (stored.size() != graph.size())
        fail("the I/O section lists " + std::to_string(stored.size()) + " " + what + "s but the graph has " +
             std::to_string(graph.size()));
      for (size_t i = 0; i < stored.size(); ++i)
        if (!(stored[i] == graph[i]))
          fail("the I/O section describes " + std::string(what) + " #" + std::to_string(i) + " as " + ioStr(stored[i]) +
               " but the graph has " + ioStr(graph[i]));
    };
    compare(model.inputs, ins, "input");
    compare(model.outputs, outs, "output");
  }

  void parsePerf(HbmModel& model, const Section& s) {
    parse(s, [&](ByteReader& r) {
      uint32_t n = r.count(12, "perf entry");
      for (uint32_t i = 0; i < n; ++i) {
        std::string key = r.str("perf key");
        model.perfSummary.emplace_back(std::move(key), r.i64());
      }
    });
    auto totals = isa::programTotals(model.program);
    if (model.perfSummary.size() != totals.size())
      fail("the perf summary has " + std::to_string(model.perfSummary.size()) + " entries, expected " +
           std::to_string(totals.size()));
    for (size_t i = 0; i < totals.size(); ++i)
      if (model.perfSummary[i] != totals[i])
        fail("the perf summary records " + model.perfSummary[i].first + " = " +
             std::to_string(model.perfSummary[i].second) + " but the program gives " + totals[i].first + " = " +
             std::to_string(totals[i].second));
  }

  void parseMetadata(HbmModel& model, const Section& s) {
    parse(s, [&](ByteReader& r) {
      uint32_t n = r.count(8, "metadata entry");
      std::set<std::string> keys;
      for (uint32_t i = 0; i < n; ++i) {
        std::string key = r.str("metadata key");
        if (!keys.insert(key).second) r.fail("metadata key '" + key + "' appears twice");
        model.metadata.emplace_back(std::move(key), r.str("metadata value"));
      }
    });
  }

  void parseSourceHash(HbmModel& model, const Section& s) {
    parse(s, [&](ByteReader& r) {
      uint8_t algo = r.u8();
      if (algo != kHashSha256) r.fail("unknown hash algorithm " + std::to_string(algo) + " (1 = SHA-256)");
      const uint8_t* p = r.bytes(32, "SHA-256 digest");
      std::copy(p, p + 32, model.sourceHash.begin());
    });
  }

  const uint8_t* d_;
  size_t n_;
  std::string origin_;
  uint64_t headerSize_ = 0;
  uint32_t sectionCount_ = 0;
};

}  // namespace

HbmModel readHbm(const uint8_t* data, size_t size, const std::string& origin) {
  return Loader(data, size, origin).load();
}

HbmModel loadHbmFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw HbmError(path + ": error: cannot open the file for reading");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw HbmError(path + ": error: reading the file failed");
  return readHbm(bytes.data(), bytes.size(), path);
}

}  // namespace hbdk::hbm
