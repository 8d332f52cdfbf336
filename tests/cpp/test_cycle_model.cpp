// Tests for the cycle model: exact cycles of hand-built programs (the arithmetic is written out next
// to each number, from docs/perf_model.md), tiling against the untiled layer, and the properties on
// lowered test graphs: roofline bounds, determinism, more bandwidth or SRAM never slower.
#include <algorithm>
#include <string>

#include "ir/text.h"
#include "isa/program.h"
#include "lower_test_graphs.h"
#include "march/march.h"
#include "passes/pass.h"
#include "perf/cycle_model.h"
#include "testing.h"

using namespace hbdk;
using isa::BufferRole;
using isa::Instruction;
using isa::Opcode;
using isa::Unit;

namespace {

using testgraphs::lower;
using testgraphs::shippedMarch;

Instruction dma(Opcode op, uint32_t opIndex, int64_t bytes, BufferRole role, int64_t offset, int64_t bufBytes,
                int64_t count, int64_t tiles) {
  Instruction in;
  in.unit = Unit::Dma;
  in.opcode = op;
  in.opIndex = opIndex;
  in.tileCount = tiles;
  in.bytesIn = in.bytesOut = bytes;
  (op == Opcode::StoreActivation ? in.ddrWriteBytes : in.ddrReadBytes) = bytes;
  in.sram.push_back({role, offset, bufBytes, count});
  return in;
}

Instruction gemm(int64_t m, int64_t n, int64_t k, int64_t tileRows) {
  Instruction in;
  in.unit = Unit::MacArray;
  in.opcode = Opcode::Gemm;
  in.layer = "fc";
  in.outputShape = {m, n};
  in.tileShape = {tileRows, n};
  in.tileCount = (m + tileRows - 1) / tileRows;
  in.gemmBatch = 1;
  in.gemmM = m;
  in.gemmN = n;
  in.gemmK = k;
  in.macs = m * n * k;
  in.elements = m * n;
  return in;
}

isa::Program programOf(std::vector<Instruction> ins, uint32_t opCount) {
  isa::Program p;
  p.march = "bpu";
  p.opCount = opCount;
  p.instructions = std::move(ins);
  return p;
}

// The properties every estimate must have.
void checkBounds(const perf::PerfResult& r) {
  CHECK(r.totalCycles >= r.rooflineCycles);
  CHECK(r.totalCycles >= r.computeCycles);
  CHECK(r.totalCycles >= r.memoryCycles);
  for (const perf::LayerPerf& l : r.layers) {
    CHECK(l.totalCycles >= l.rooflineCycles);
    CHECK(l.totalCycles >= l.computeCycles);
    CHECK(l.stallCycles >= 0);
    CHECK(l.utilization >= 0 && l.utilization <= 1.0);
  }
  for (const perf::TimelineEvent& e : r.timeline) CHECK(e.start >= 0 && e.end >= e.start && e.end <= r.totalCycles);
}

}  // namespace

// bpu: DMA moves min(25.6 GB/s / 1 GHz, 4 x 32) = 25.6 B/cycle after 250 cycles of latency.
TEST(CycleModelPinnedConvLayer) {
  Instruction conv;
  conv.unit = Unit::MacArray;
  conv.opcode = Opcode::Conv2d;
  conv.opIndex = 2;
  conv.ops = {2, 3, 4};
  conv.layer = "conv1";
  conv.postOps = {Opcode::Requantize, Opcode::Clamp};
  conv.outputShape = {1, 32, 8, 8};
  conv.tileShape = {1, 32, 8, 8};
  conv.gemmBatch = 1, conv.gemmM = 64, conv.gemmN = 32, conv.gemmK = 72;
  conv.macs = 64 * 32 * 72;
  conv.elements = 2048;
  conv.sram = {
      {BufferRole::Input, 0, 1024, 1}, {BufferRole::Weights, 1024, 2048, 1}, {BufferRole::Output, 3072, 2048, 1}};
  auto prog = programOf({dma(Opcode::LoadActivation, 2, 1024, BufferRole::Input, 0, 1024, 1, 1),
                         dma(Opcode::LoadWeights, 2, 2048, BufferRole::Weights, 1024, 2048, 1, 1), conv,
                         dma(Opcode::StoreActivation, 4, 2048, BufferRole::Output, 3072, 2048, 1, 1)},
                        5);
  auto r = perf::estimate(prog, shippedMarch("bpu"));
  // load x: 250 + ceil(1024 / 25.6) = 290 -> [0, 290); weights: 250 + 80 = 330 -> [290, 620).
  CHECK_EQ(r.timeline[0].end, 290);
  CHECK_EQ(r.timeline[1].start, 290);
  CHECK_EQ(r.timeline[1].end, 620);
  // MAC (output stationary 64x128): 1 fold x (k 72 + 64 + 128 - 2) - 1 = 261; epilogue: requantize
  // ceil(2048 x 4 / 128) = 64 + clamp ceil(2048 / 128) = 16 -> 80; one tile: 261 + 80 = 341.
  CHECK_EQ(r.layers.size(), size_t{1});
  const perf::LayerPerf& l = r.layers[0];
  CHECK_EQ(l.computeCycles, 341);
  CHECK_EQ(r.timeline[2].start, 620);
  CHECK_EQ(r.timeline[2].end, 961);
  // store: 250 + 80 = 330 after the compute -> [961, 1291).
  CHECK_EQ(r.timeline[3].start, 961);
  CHECK_EQ(r.totalCycles, 1291);
  CHECK_EQ(l.memoryCycles, 290 + 330 + 330);
  CHECK_EQ(l.stallCycles, 620);
  CHECK_EQ(l.totalCycles, 1291);
  CHECK(l.memoryBound);
  CHECK_EQ(l.ddrReadBytes, 3072);
  CHECK_EQ(l.ddrWriteBytes, 2048);
  // max(ceil(147456 / 8192) = 18, ceil(5120 / 25.6) = 200)
  CHECK_EQ(l.rooflineCycles, 200);
  CHECK_EQ(r.rooflineCycles, 200);
  CHECK_EQ(r.latencyMs, 1291.0 / 1e6);
  CHECK(l.utilization > 0.0527 && l.utilization < 0.0528);  // 147456 / (341 x 8192)
  checkBounds(r);
}

TEST(CycleModelPinnedStreamedGemm) {
  Instruction fc = gemm(100, 256, 64, 50);  // two row tiles of 50
  fc.postOps = {Opcode::Requantize};
  fc.ops = {0, 1};
  fc.sram = {
      {BufferRole::Input, 4096, 3200, 2}, {BufferRole::Weights, 0, 2048, 2}, {BufferRole::Output, 10496, 12800, 2}};
  auto prog = programOf({dma(Opcode::LoadWeights, 0, 4096, BufferRole::Weights, 0, 2048, 2, 2),
                         dma(Opcode::LoadActivation, 0, 6400, BufferRole::Input, 4096, 3200, 2, 2), fc,
                         dma(Opcode::StoreActivation, 1, 25600, BufferRole::Output, 10496, 12800, 2, 2)},
                        2);
  auto r = perf::estimate(prog, shippedMarch("bpu"));
  // weights 250 + 160 = 410 -> [0, 410); activations 250 + 250 = 500 -> [410, 910).
  CHECK_EQ(r.timeline[1].end, 910);
  // MAC per tile: ceil(50/64) x ceil(256/128) = 2 folds x (64 + 190) = 508; two tiles, one pass:
  // 2 x 508 - 1 = 1015. Epilogue ceil(25600 x 4 / 128) = 800, overlapped: 1015 + ceil(800 / 2) = 1415.
  CHECK_EQ(r.layers[0].computeCycles, 1415);
  // A chunk is 25.6 x 250 = 6400 bytes: both loads are one chunk, so the compute starts when the
  // activations end, 910 (the stall), and ends 910 + 1415 = 2325.
  CHECK_EQ(r.timeline[2].start, 910);
  CHECK_EQ(r.timeline[2].end, 2325);
  // Store 250 + 1000 = 1250 in 4 chunks: its last chunk (250 + 250 cycles) leaves after the
  // compute, so it ends no earlier than 2325 + 500 and starts at 2825 - 1250 = 1575.
  CHECK_EQ(r.timeline[3].start, 1575);
  CHECK_EQ(r.totalCycles, 2825);
  CHECK_EQ(r.layers[0].stallCycles, 910);
  checkBounds(r);
}

// A depthwise 3x3 conv of 32 channels on 16x16 (groups = 32): 32 x 256 x 9 = 73728 MACs on the
// depthwise datapath, not 32 single-filter passes through the systolic array.
TEST(CycleModelPinnedDepthwise) {
  Instruction dw;
  dw.unit = Unit::MacArray;
  dw.opcode = Opcode::Conv2d;
  dw.ops = {0, 1, 2};
  dw.layer = "dw";
  dw.postOps = {Opcode::Requantize, Opcode::Clamp};
  dw.outputShape = {1, 32, 16, 16};
  dw.tileShape = {1, 32, 16, 16};
  dw.gemmBatch = 32, dw.gemmM = 256, dw.gemmN = 1, dw.gemmK = 9;
  dw.macs = 32 * 256 * 9;
  dw.elements = 32 * 256;
  auto march = shippedMarch("bpu");
  auto r = perf::estimate(programOf({dw}, 3), march);
  // MAC: ceil(73728 / 1152) = 64. Epilogue: requantize ceil(8192 x 4 / 128) = 256 + clamp
  // ceil(8192 / 128) = 64 -> 320. One tile: 320 + 64 = 384.
  CHECK_EQ(r.layers[0].computeCycles, 384);
  CHECK_EQ(r.totalCycles, 384);
  // The roofline and the utilization use the depthwise datapath's peak.
  CHECK_EQ(r.layers[0].rooflineCycles, 64);
  CHECK_EQ(r.rooflineCycles, 64);
  CHECK(r.layers[0].utilization > 0.1666 && r.layers[0].utilization < 0.1667);  // 73728 / (384 x 1152)
  checkBounds(r);
  // Four tiles: the epilogue runs throughout, the MAC work adds its last tile: 320 + ceil(64 / 4).
  Instruction tiled = dw;
  tiled.tileShape = {1, 32, 4, 16};
  tiled.tileCount = 4;
  CHECK_EQ(perf::estimate(programOf({tiled}, 3), march).computeCycles, 336);
  // int16: ceil(73728 / 288) = 256 MAC; requantize 256 + clamp ceil(8192 x 2 / 128) = 128 -> 384;
  // 384 + 256 = 640.
  Instruction wide = dw;
  wide.inputElem = ir::ElemType::SI16;
  CHECK_EQ(perf::estimate(programOf({wide}, 3), march).computeCycles, 640);
  // Two input channels per output channel (groups = 16 of 32) is a grouped conv: the array runs it,
  // 16 groups of (256 x 1) . (1 x 18) = 16 x (4 folds x (18 + 190) - 1) = 13296 before the epilogue.
  Instruction grouped = dw;
  grouped.postOps.clear();
  grouped.ops = {0};
  grouped.gemmBatch = 16, grouped.gemmN = 2, grouped.gemmK = 18;
  CHECK_EQ(perf::estimate(programOf({grouped}, 1), march).computeCycles, 16 * (4 * (18 + 190) - 1));
}

// A depthwise conv through the lower pass: the graph names it (groups = input = output channels),
// and the estimate without the graph agrees.
TEST(CycleModelDepthwiseLowered) {
  const std::string text =
      "module @dw {\n"
      "  func @main(%x: tensor<1x8x8x8xf32>) -> (tensor<1x8x8x8xf32>) {\n"
      "    %q = quantize(%x) : tensor<1x8x8x8xsi8, scale=0.05>\n"
      "    %w = constant {value = dense_resource<w>} : tensor<8x1x3x3xsi8, scale=" +
      testgraphs::scaleList(8, "0.01") +
      ", axis=0>\n"
      "    %acc = conv2d(%q, %w) {stride = [1, 1], padding = [1, 1, 1, 1], dilation = [1, 1], groups = 8, "
      "bpu.group = 0, bpu.group_role = \"anchor\"} : tensor<1x8x8x8xsi32, scale=" +
      testgraphs::scaleList(8, "0.0005") +
      ", axis=1> loc(\"dw\")\n"
      "    %r = requantize(%acc) {multiplier = [1073741824], shift = [35], axis = 1, bpu.group = 0, "
      "bpu.group_role = \"requant\"} : tensor<1x8x8x8xsi8, scale=0.1>\n"
      "    %y = relu(%r) {bpu.group = 0, bpu.group_role = \"activation\"} : tensor<1x8x8x8xsi8, scale=0.1>\n"
      "    %o = dequantize(%y) : tensor<1x8x8x8xf32>\n"
      "    return %o\n"
      "  }\n"
      "}\n\n"
      "resources {\n"
      "  w = " +
      testgraphs::hexFill(72, 3) +
      "\n"
      "}\n";
  for (const char* name : {"bpu_nano", "bpu", "bpu_max"}) {
    auto march = shippedMarch(name);
    auto m = ir::parseModule(text);
    auto prog = lower(*m, march);
    auto r = perf::estimate(prog, march, m->functions[0].get());
    checkBounds(r);
    auto conv =
        std::find_if(r.layers.begin(), r.layers.end(), [](const perf::LayerPerf& l) { return l.layer == "dw"; });
    CHECK(conv != r.layers.end());
    const Instruction& in = prog.instructions[conv->instruction];
    int64_t dwPeak = march.macArray.depthwiseMacsPerCycle.at("int8"), lanes = march.vectorUnit.lanes;
    int64_t mac = (4608 + dwPeak - 1) / dwPeak;                                    // 8 x 64 x 9 MACs
    int64_t epilogue = (512 * 4 + lanes - 1) / lanes + (512 + lanes - 1) / lanes;  // requantize, relu
    int64_t tiles = std::max<int64_t>(1, in.tileCount);
    CHECK_EQ(conv->macs, int64_t{4608});
    CHECK_EQ(conv->computeCycles, std::max(mac, epilogue) + (std::min(mac, epilogue) + tiles - 1) / tiles);
    CHECK_EQ(perf::estimate(prog, march).layers[static_cast<size_t>(conv - r.layers.begin())].computeCycles,
             conv->computeCycles);
  }
}

TEST(CycleModelTilingOnlyAtFoldBoundaries) {
  auto march = shippedMarch("bpu");
  auto cycles = [&](int64_t m, int64_t tileRows) {
    return perf::estimate(programOf({gemm(m, 256, 64, tileRows)}, 1), march).computeCycles;
  };
  // 64-row tiles on a 64-row array: the same folds, the same cycles.
  CHECK_EQ(cycles(256, 256), 4 * 2 * 254 - 1);
  CHECK_EQ(cycles(256, 64), cycles(256, 256));
  // 50-row tiles of 100 rows: still 2 folds along m. 40-row tiles (40, 40, 20): a third.
  CHECK_EQ(cycles(100, 50), cycles(100, 100));
  CHECK_EQ(cycles(100, 40), 3 * 2 * 254 - 1);
}

TEST(CycleModelInt16RunsAtItsRate) {
  auto march = shippedMarch("bpu");
  Instruction a = gemm(64, 128, 64, 64), b = a;
  b.inputElem = ir::ElemType::SI16;
  int64_t c8 = perf::estimate(programOf({a}, 1), march).computeCycles;
  int64_t c16 = perf::estimate(programOf({b}, 1), march).computeCycles;
  CHECK_EQ(c8, 64 + 190 - 1);
  CHECK_EQ(c16, c8 * 4);  // 8192 / 2048
}

TEST(CycleModelVectorOps) {
  auto march = shippedMarch("bpu");
  Instruction pool;
  pool.unit = Unit::Vector;
  pool.opcode = Opcode::MaxPool;
  pool.elements = 4096;
  pool.bytesIn = 16384;  // without the graph: 4 operand elements per output
  auto r = perf::estimate(programOf({pool}, 1), march);
  CHECK_EQ(r.computeCycles, 4096 * 4 / 128);
  march.vectorUnit.opsPerCyclePerLane["max_pool"] = 2;
  CHECK_EQ(perf::estimate(programOf({pool}, 1), march).computeCycles, 4096 * 4 / 256);
  Instruction view = pool;
  view.opcode = Opcode::Reshape;
  CHECK_EQ(perf::estimate(programOf({view}, 1), march).computeCycles, 0);
}

TEST(CycleModelRejectsOtherMarch) {
  auto prog = programOf({gemm(4, 4, 4, 4)}, 1);
  CHECK_THROWS(ir::Error, perf::estimate(prog, shippedMarch("bpu_nano")), "lowered for march 'bpu_nano'");
}

TEST(CycleModelPropertiesOnLoweredGraphs) {
  const std::string graphs[] = {testgraphs::tinyConvPool(), testgraphs::residualHead(),
                                testgraphs::bigConvChain(64, 56), testgraphs::bigConvChain(128, 40)};
  for (const char* name : {"bpu_nano", "bpu", "bpu_max"}) {
    auto march = shippedMarch(name);
    for (const std::string& text : graphs) {
      auto m = ir::parseModule(text);
      auto prog = lower(*m, march);
      const ir::Function* fn = m->functions[0].get();
      auto r = perf::estimate(prog, march, fn);
      checkBounds(r);
      CHECK(r.totalCycles > 0);
      // Deterministic.
      auto again = perf::estimate(prog, march, fn);
      CHECK_EQ(again.totalCycles, r.totalCycles);
      for (size_t i = 0; i < r.timeline.size(); ++i) CHECK_EQ(again.timeline[i].end, r.timeline[i].end);
      // More DDR bandwidth, or cheaper DMA latency, never slower.
      for (double f : {1.5, 2.0, 8.0}) {
        march::March faster = march;
        faster.ddr.bandwidthGBps *= f;
        faster.dma.engines *= 8;
        CHECK(perf::estimate(prog, faster, fn).totalCycles <= r.totalCycles);
      }
      // A larger SRAM, re-lowered, never slower.
      for (int64_t f : {2, 4}) {
        march::March bigger = march;
        bigger.sram.sizeBytes *= f;
        auto m2 = ir::parseModule(text);
        auto prog2 = lower(*m2, bigger);
        auto r2 = perf::estimate(prog2, bigger, m2->functions[0].get());
        if (r2.totalCycles > r.totalCycles)
          std::cerr << name << " sram x" << f << ": " << r2.totalCycles << " > " << r.totalCycles << "\n";
        CHECK(r2.totalCycles <= r.totalCycles);
      }
    }
  }
}
