// Little-endian byte encoding shared by the instruction stream and the .hbm container. The reader
// checks every length against the bytes that remain before it reads or allocates, so hostile input
// ends in a DecodeError, never in a crash or an unbounded allocation.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "ir/diagnostics.h"
#include "ir/lexer.h"

namespace hbdk::isa {

// What is wrong with a byte string; the .hbm loader prefixes it with the file and section.
class DecodeError : public ir::Error {
 public:
  using ir::Error::Error;
};

class ByteWriter {
 public:
  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) { le(v, 2); }
  void u32(uint32_t v) { le(v, 4); }
  void u64(uint64_t v) { le(v, 8); }
  void i64(int64_t v) { le(static_cast<uint64_t>(v), 8); }
  void f32(float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    u32(bits);
  }
  void bytes(const uint8_t* p, size_t n) { out_.insert(out_.end(), p, p + n); }
  // u32 length, then the bytes.
  void str(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    bytes(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  void i64s(const std::vector<int64_t>& v) {
    u32(static_cast<uint32_t>(v.size()));
    for (int64_t x : v) i64(x);
  }
  void padTo(size_t alignment) {
    while (out_.size() % alignment) out_.push_back(0);
  }

  size_t size() const { return out_.size(); }
  std::vector<uint8_t>& data() { return out_; }

 private:
  void le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> out_;
};

class ByteReader {
 public:
  // `what` names the byte string in messages ("instruction stream").
  ByteReader(const uint8_t* data, size_t size, std::string what) : p_(data), size_(size), what_(std::move(what)) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  bool atEnd() const { return pos_ == size_; }

  uint8_t u8() { return static_cast<uint8_t>(le(1)); }
  uint16_t u16() { return static_cast<uint16_t>(le(2)); }
  uint32_t u32() { return static_cast<uint32_t>(le(4)); }
  uint64_t u64() { return le(8); }
  int64_t i64() { return static_cast<int64_t>(le(8)); }
  float f32() {
    uint32_t bits = u32();
    float v;
    std::memcpy(&v, &bits, 4);
    return v;
  }
  const uint8_t* bytes(size_t n, const char* field) {
    need(n, field);
    const uint8_t* p = p_ + pos_;
    pos_ += n;
    return p;
  }
  // A length-prefixed UTF-8 string: names and metadata reach Python as str, so bytes that are
  // not UTF-8 are a DecodeError here rather than a UnicodeDecodeError there.
  std::string str(const char* field) {
    uint32_t n = u32();
    size_t start = pos_;
    const uint8_t* p = bytes(n, field);
    std::string_view s(reinterpret_cast<const char*>(p), n);
    for (size_t i = 0; i < s.size();) {
      size_t len = ir::utf8SequenceLength(s, i);
      if (len == 0 || i + len > s.size()) {
        pos_ = start + 4 + i;  // point at the bad byte
        static const char* kHex = "0123456789ABCDEF";
        auto c = static_cast<unsigned char>(s[i]);
        fail(std::string(field) + " is not UTF-8 (byte 0x" + kHex[c >> 4] + kHex[c & 15] + ")");
      }
      i += len;
    }
    return std::string(s);
  }
  // A count of items, each at least `minItemBytes` long: rejected before anything is allocated
  // when the remaining bytes cannot hold that many.
  uint32_t count(size_t minItemBytes, const char* field) {
    uint32_t n = u32();
    if (minItemBytes > 0 && n > remaining() / minItemBytes)
      fail(std::string(field) + " count " + std::to_string(n) + " exceeds the " + std::to_string(remaining()) +
           " bytes that remain");
    return n;
  }
  std::vector<int64_t> i64s(const char* field) {
    uint32_t n = count(8, field);
    std::vector<int64_t> v(n);
    for (int64_t& x : v) x = i64();
    return v;
  }
  void expectEnd() {
    if (!atEnd()) fail(std::to_string(remaining()) + " unexpected trailing bytes");
  }

  [[noreturn]] void fail(const std::string& msg) const {
    throw DecodeError(what_ + " at byte " + std::to_string(pos_) + ": " + msg);
  }

 private:
  void need(size_t n, const char* field) const {
    if (n > remaining())
      fail(std::string("truncated ") + field + ": needs " + std::to_string(n) + " bytes, " +
           std::to_string(remaining()) + " remain");
  }
  uint64_t le(int n) {
    need(static_cast<size_t>(n), "integer");
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(p_[pos_ + i]) << (8 * i);
    pos_ += static_cast<size_t>(n);
    return v;
  }

  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
  std::string what_;
};

}  // namespace hbdk::isa
