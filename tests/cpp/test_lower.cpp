// Tests for the lower pass: instruction counts for a small known graph, tiles that fit SRAM on the
// three shipped marches, on-chip intermediates, and the rejection of every illegal leftover.
#include <algorithm>
#include <string>

#include "ir/text.h"
#include "isa/program.h"
#include "lower_test_graphs.h"
#include "march/march.h"
#include "passes/pass.h"
#include "testing.h"

using namespace hbdk;
using isa::Opcode;
using isa::Unit;

namespace {

using testgraphs::lower;
using testgraphs::shippedMarch;

isa::Program lowerText(const std::string& text, const march::March& march) {
  auto m = ir::parseModule(text);
  return lower(*m, march);
}

int64_t count(const isa::Program& p, Opcode op) {
  return std::count_if(p.instructions.begin(), p.instructions.end(),
                       [&](const isa::Instruction& in) { return in.opcode == op; });
}

// Every buffer of every instruction lies inside SRAM, the buffers of one instruction do not
// overlap each other, and none overlaps a value resident during that instruction.
void checkFitsSram(const isa::Program& p) {
  int64_t cap = p.sram.capacityBytes;
  CHECK(p.sram.peakBytes <= cap);
  for (size_t i = 0; i < p.instructions.size(); ++i) {
    const isa::Instruction& in = p.instructions[i];
    std::vector<std::pair<int64_t, int64_t>> ranges;
    int64_t total = 0;
    for (const isa::SramBuffer& b : in.sram) {
      CHECK(b.offset >= 0 && b.offset + b.bytes * b.count <= cap);
      if (in.unit != Unit::Dma) {
        ranges.push_back({b.offset, b.offset + b.bytes * b.count});
        total += b.bytes * b.count;
      }
    }
    CHECK(total <= cap);
    std::sort(ranges.begin(), ranges.end());
    for (size_t k = 1; k < ranges.size(); ++k) CHECK(ranges[k - 1].second <= ranges[k].first);
    if (in.unit == Unit::Dma) continue;
    for (const isa::SramRegion& r : p.sram.resident) {
      if (i <= r.firstInstruction || i > r.lastInstruction) continue;  // produced here or dead
      bool readHere = false;
      for (const isa::SramBuffer& b : in.sram) readHere |= b.offset == r.offset;
      for (const auto& [lo, hi] : ranges)
        if (lo != r.offset) CHECK(hi <= r.offset || lo >= r.offset + r.bytes);
      (void)readHere;
    }
  }
}

}  // namespace

TEST(LowerSmallGraphInstructionCounts) {
  auto prog = lowerText(testgraphs::tinyConvPool(), shippedMarch("bpu_nano"));
  // quantize: load x, compute; conv group: load weights, compute (requant + relu fused);
  // max_pool; dequantize; store the output. q, y and p stay in SRAM.
  CHECK_EQ(prog.instructions.size(), size_t{7});
  CHECK_EQ(count(prog, Opcode::LoadActivation), 1);
  CHECK_EQ(count(prog, Opcode::LoadWeights), 1);
  CHECK_EQ(count(prog, Opcode::StoreActivation), 1);
  CHECK_EQ(count(prog, Opcode::Quantize), 1);
  CHECK_EQ(count(prog, Opcode::Conv2d), 1);
  CHECK_EQ(count(prog, Opcode::MaxPool), 1);
  CHECK_EQ(count(prog, Opcode::Dequantize), 1);
  CHECK_EQ(prog.opCount, uint32_t{8});
  CHECK_EQ(prog.march, std::string("bpu_nano"));

  const isa::Instruction& conv = prog.instructions[3];
  CHECK(conv.unit == Unit::MacArray);
  CHECK(conv.opcode == Opcode::Conv2d);
  CHECK(conv.postOps == (std::vector<Opcode>{Opcode::Requantize, Opcode::Clamp}));
  CHECK_EQ(conv.group, int64_t{0});
  CHECK_EQ(conv.layer, std::string("conv1"));
  CHECK_EQ(conv.macs, int64_t{1 * 4 * 8 * 8 * 3 * 3 * 3});
  CHECK_EQ(conv.gemmBatch * conv.gemmM * conv.gemmN * conv.gemmK, conv.macs);
  CHECK_EQ(conv.gemmM, int64_t{64});
  CHECK_EQ(conv.gemmN, int64_t{4});
  CHECK_EQ(conv.gemmK, int64_t{27});
  CHECK_EQ(conv.tileCount, int64_t{1});
  CHECK_EQ(conv.ddrReadBytes + conv.ddrWriteBytes, int64_t{0});
  CHECK_EQ(conv.bytesOut, int64_t{4 * 8 * 8});
  CHECK_EQ(conv.ops.size(), size_t{3});

  const isa::Instruction& w = prog.instructions[2];
  CHECK(w.opcode == Opcode::LoadWeights);
  CHECK_EQ(w.ddrReadBytes, int64_t{108 + 16});
  CHECK_EQ(w.ops.size(), size_t{2});
  // DDR traffic: the f32 input, the weights and the f32 output; nothing else leaves the chip.
  CHECK_EQ(prog.instructions[0].ddrReadBytes, int64_t{3 * 8 * 8 * 4});
  CHECK_EQ(prog.instructions.back().ddrWriteBytes, int64_t{4 * 4 * 4 * 4});
  CHECK_EQ(prog.sram.resident.size(), size_t{3});
  CHECK_EQ(prog.sram.onChipBytes, int64_t{3 * 64 + 4 * 64 + 4 * 16});
  CHECK_EQ(prog.sram.spilledBytes, int64_t{0});
  checkFitsSram(prog);

  auto totals = isa::programTotals(prog);
  CHECK(totals[0] == (std::pair<std::string, int64_t>{"macs", 6912}));
}

TEST(LowerTilesFitSramOnEveryShippedMarch) {
  // A 128x128 feature map with 64 channels (1 MiB of si8 per activation) cannot sit in any of
  // the marches' SRAM whole on the smaller ones: the conv must tile, and every tile must fit.
  std::string text = testgraphs::bigConvChain(128, 256);
  int64_t previousTiles = -1;
  for (const char* name : {"bpu_nano", "bpu", "bpu_max"}) {
    march::March march = shippedMarch(name);
    auto prog = lowerText(text, march);
    CHECK_EQ(prog.sram.capacityBytes, march.sram.sizeBytes);
    checkFitsSram(prog);
    int64_t convTiles = 0;
    for (const auto& in : prog.instructions)
      if (in.unit == Unit::MacArray) {
        convTiles += in.tileCount;
        CHECK_EQ(in.gemmBatch * in.gemmM * in.gemmN * in.gemmK, in.macs);
      }
    CHECK(convTiles >= 2);
    // A larger SRAM never needs more tiles.
    if (previousTiles >= 0) CHECK(convTiles <= previousTiles);
    previousTiles = convTiles;
  }
  march::March nano = shippedMarch("bpu_nano");
  auto prog = lowerText(text, nano);
  // On the nano march the 1 MiB intermediates go to DDR and come back.
  CHECK(prog.sram.spilledBytes > 0);
  CHECK(count(prog, Opcode::StoreActivation) >= 2);
}

TEST(LowerSmallSramStillFitsByTilingChannels) {
  // A test-local march with 16 KiB of SRAM: the 64x64x3x3 weights (36 KiB) alone do not fit, so
  // the output channels must be split as well as the rows.
  march::March m = shippedMarch("bpu_nano");
  m.name = "tiny_sram";
  m.sram.sizeBytes = 16 * 1024;
  auto prog = lowerText(testgraphs::bigConvChain(64, 32), m);
  checkFitsSram(prog);
  bool splitChannels = false;
  for (const auto& in : prog.instructions)
    if (in.unit == Unit::MacArray) splitChannels |= in.tileShape.size() == 4 && in.tileShape[1] < 64;
  CHECK(splitChannels);
  // Weights loaded per channel tile are double-buffered.
  for (const auto& in : prog.instructions)
    if (in.opcode == Opcode::LoadWeights) CHECK(in.tileCount > 1);
}

TEST(LowerRejectsWhatDoesNotFit) {
  march::March m = shippedMarch("bpu_nano");
  m.sram.sizeBytes = 256;
  CHECK_THROWS(ir::PassError, lowerText(testgraphs::bigConvChain(64, 32), m), "does not fit the SRAM");
}

TEST(LowerRejectsIllegalLeftovers) {
  march::March march = shippedMarch("bpu");
  // An f32 op between quantize and dequantize: unquantized compute.
  CHECK_THROWS(ir::PassError, lowerText(testgraphs::withFloatRelu(), march), "'relu' op");
  CHECK_THROWS(ir::PassError, lowerText(testgraphs::withFloatRelu(), march), "expected an integer");
  // batch_norm and sigmoid have no BPU instruction.
  CHECK_THROWS(ir::PassError, lowerText(testgraphs::withBatchNorm(), march), "'batch_norm' op");
  CHECK_THROWS(ir::PassError, lowerText(testgraphs::withBatchNorm(), march), "fold-bn");
  CHECK_THROWS(ir::PassError, lowerText(testgraphs::withIntSigmoid(), march), "rewrites it into lut");
  // An integer value without a scale.
  CHECK_THROWS(ir::PassError, lowerText(testgraphs::withUnscaledValue(), march), "has no scale");
  // quantize in the middle of the graph, and two MAC ops in one group.
  CHECK_THROWS(ir::PassError, lowerText(testgraphs::withInnerQuantize(), march), "only legal on a graph input");
  CHECK_THROWS(ir::PassError, lowerText(testgraphs::withTwoMacsInGroup(), march), "another MAC-array op");
}

TEST(LowerNeedsMarchAndProgram) {
  auto m = ir::parseModule(testgraphs::tinyConvPool());
  passes::PassContext ctx;
  CHECK_THROWS(ir::PassError, passes::createPass("lower")->run(*m, ctx), "needs a march");
  march::March march = shippedMarch("bpu");
  ctx.march = &march;
  CHECK_THROWS(ir::PassError, passes::createPass("lower")->run(*m, ctx), "needs a program");
}

TEST(LowerLeavesModuleUnchanged) {
  auto m = ir::parseModule(testgraphs::tinyConvPool());
  std::string before = ir::printModule(*m);
  lower(*m, shippedMarch("bpu"));
  CHECK_EQ(ir::printModule(*m), before);
}

TEST(LowerResidualAndVectorOps) {
  // conv + requantize + residual add + relu in one group, then global pool, linear, softmax.
  march::March march = shippedMarch("bpu");
  auto prog = lowerText(testgraphs::residualHead(), march);
  checkFitsSram(prog);
  CHECK_EQ(count(prog, Opcode::Conv2d), 1);
  CHECK_EQ(count(prog, Opcode::Gemm), 1);
  CHECK_EQ(count(prog, Opcode::GlobalAvgPool), 1);
  CHECK_EQ(count(prog, Opcode::Softmax), 1);
  for (const auto& in : prog.instructions)
    if (in.opcode == Opcode::Conv2d)
      CHECK(in.postOps == (std::vector<Opcode>{Opcode::Requantize, Opcode::Add, Opcode::Clamp}));
  // Round trip of the encoding.
  CHECK(isa::decodeProgram(isa::encodeProgram(prog).data(), isa::encodeProgram(prog).size()) == prog);
}
