// Tests for the op table (csrc/ir/ops.cpp): the table's own invariants, inferred shapes and
// element types of every op, MAC counts, op verifiers, and the wording of shape errors.
#include <cstdint>
#include <iterator>
#include <limits>
#include <map>
#include <set>
#include <string>

#include "ir/ir.h"
#include "ir/text.h"
#include "op_test_graph.h"
#include "testing.h"

// ---- The table itself ---------------------------------------------------------------------------

TEST(ops_table_is_well_formed) {
  std::set<std::string> names;
  for (const OpDef& d : opTable()) {
    CHECK(names.insert(d.name).second);
    CHECK(lookupOp(d.name) == &d);
    CHECK(d.summary && std::string(d.summary).size() > 10);
    CHECK(d.infer != nullptr);
    std::string example = d.example;
    CHECK(!example.empty() && example[0] == '%');
    CHECK(example.find(" = " + std::string(d.name) + (d.operands.empty() ? " " : "(")) != std::string::npos);
    CHECK(example.find(" : tensor<") != std::string::npos);
    std::set<std::string> attrNames;
    for (const AttrDef& a : d.attrs) {
      CHECK(attrNames.insert(a.name).second);
      CHECK(a.doc && *a.doc);
      if (a.defaultValue) CHECK(a.defaultValue->kind() == a.kind);
      // The example prints every attribute, in table order.
      CHECK(example.find(std::string(a.name) + " = ") != std::string::npos);
    }
    // Optional operands only at the end; a variadic one only last and alone.
    bool sawOptional = false;
    for (size_t i = 0; i < d.operands.size(); ++i) {
      const OperandDef& o = d.operands[i];
      CHECK(o.doc && *o.doc);
      if (o.arity == Arity::One) CHECK(!sawOptional);
      sawOptional = sawOptional || o.arity != Arity::One;
      if (o.arity == Arity::Variadic) CHECK(i + 1 == d.operands.size());
    }
    for (size_t i = 0; i < d.results.size(); ++i) {
      CHECK(d.results[i].arity != Arity::Optional);
      if (d.results[i].arity == Arity::Variadic) CHECK(i + 1 == d.results.size());
    }
  }
  CHECK(lookupOp("no_such_op") == nullptr);
  CHECK(names.size() >= 36);
}

TEST(ops_every_spec_op_is_declared) {
  for (const char* n : {"constant",
                        "conv2d",
                        "conv_transpose2d",
                        "linear",
                        "matmul",
                        "batch_norm",
                        "relu",
                        "relu6",
                        "sigmoid",
                        "tanh",
                        "exp",
                        "clip",
                        "leaky_relu",
                        "softmax",
                        "add",
                        "sub",
                        "mul",
                        "concat",
                        "split",
                        "slice",
                        "reshape",
                        "transpose",
                        "flatten",
                        "max_pool2d",
                        "avg_pool2d",
                        "global_avg_pool2d",
                        "resize2d",
                        "grid_sample",
                        "pad",
                        "quantize",
                        "dequantize",
                        "requantize",
                        "lut",
                        "point_pillar_scatter",
                        "gather",
                        "argmax",
                        "topk"})
    CHECK(lookupOp(n) != nullptr);
  CHECK(lookupOp("conv2d")->findAttr("groups")->defaultValue == Attribute(1));
  CHECK(lookupOp("batch_norm")->findAttr("eps")->defaultValue == Attribute(1e-05));
  CHECK(lookupOp("slice")->findAttr("steps")->defaultValue == Attribute(Ints{}));
  CHECK(!lookupOp("clip")->findAttr("min")->defaultValue);
}

// ---- Constants ----------------------------------------------------------------------------------

TEST(ops_constant_takes_declared_type) {
  Graph g;
  Op* c = g.m.createConstant(g.fn, "w", TensorType({2, 2}, SI8), Blob(4, 0));
  CHECK_EQ(c->result(0)->type, TensorType({2, 2}, SI8));
  CHECK_THROWS(VerifyError, g.op("constant", {}, {{"value", ResourceRef{"w"}}}), "cannot be inferred");
}

// ---- Convolution and dense ----------------------------------------------------------------------

TEST(ops_conv2d_shapes) {
  Graph g;
  Value* x = g.arg({1, 3, 32, 32});
  Value* w = g.arg({16, 3, 3, 3});
  Value* b = g.arg({16});
  CHECK_EQ(str(g.shape("conv2d", {x, w, b}, {{"padding", Ints{1, 1, 1, 1}}})), "1x16x32x32");
  CHECK_EQ(str(g.shape("conv2d", {x, w})), "1x16x30x30");
  // Stride 2, dilation 2 (effective kernel 5): (32 + 2 - 5) / 2 + 1 = 15.
  CHECK_EQ(
      str(g.shape("conv2d", {x, w}, {{"stride", Ints{2, 2}}, {"padding", Ints{1, 1, 1, 1}}, {"dilation", Ints{2, 2}}})),
      "1x16x15x15");
  // Asymmetric padding [top, left, bottom, right] and per-axis stride.
  Value* x10 = g.arg({2, 3, 10, 10});
  CHECK_EQ(str(g.shape("conv2d", {x10, w}, {{"padding", Ints{0, 1, 2, 3}}, {"stride", Ints{1, 2}}})), "2x16x10x6");
  // Depthwise: groups = channels.
  Value* dx = g.arg({1, 8, 8, 8});
  Value* dw = g.arg({8, 1, 3, 3});
  CHECK_EQ(str(g.shape("conv2d", {dx, dw}, {{"groups", 8}})), "1x8x6x6");
  Value* gw = g.arg({4, 4, 1, 1});
  CHECK_EQ(str(g.shape("conv2d", {dx, gw}, {{"groups", 2}})), "1x4x8x8");
}

TEST(ops_conv2d_macs_and_elem) {
  Graph g;
  Op* c = g.op("conv2d", {g.arg({1, 3, 32, 32}), g.arg({16, 3, 3, 3})}, {{"padding", Ints{1, 1, 1, 1}}});
  CHECK_EQ(c->def().macs(*c), int64_t{1} * 16 * 32 * 32 * 3 * 3 * 3);
  Op* dw = g.op("conv2d", {g.arg({1, 8, 8, 8}), g.arg({8, 1, 3, 3})}, {{"groups", 8}});
  CHECK_EQ(dw->def().macs(*dw), int64_t{8} * 6 * 6 * 9);
  // Quantized conv: the integer output type comes only from the declaration.
  Value* qx = g.arg({1, 3, 8, 8}, SI8, scale(0.1f));
  Value* qw = g.arg({4, 3, 1, 1}, SI8, scale(0.1f));
  CHECK_THROWS(VerifyError, g.op("conv2d", {qx, qw}), "element type cannot be inferred");
  Op* q = g.op("conv2d", {qx, qw}, {}, {TensorType({1, 4, 8, 8}, ElemType::SI32, scale(0.01f))});
  CHECK_EQ(q->result(0)->type.elem, ElemType::SI32);
}

TEST(ops_conv_transpose2d_shapes_and_macs) {
  Graph g;
  Value* x = g.arg({1, 16, 8, 8});
  Value* w = g.arg({16, 8, 3, 3});
  // (8 - 1) * 2 - 1 - 1 + 1 * (3 - 1) + 1 + 1 = 16.
  Op* up = g.op("conv_transpose2d", {x, w, g.arg({8})},
                {{"stride", Ints{2, 2}}, {"padding", Ints{1, 1, 1, 1}}, {"output_padding", Ints{1, 1}}});
  CHECK_EQ(str(up->result(0)->type.shape), "1x8x16x16");
  CHECK_EQ(up->def().macs(*up), int64_t{1} * 16 * 8 * 8 * 8 * 3 * 3);
  CHECK_EQ(str(g.shape("conv_transpose2d", {x, w})), "1x8x10x10");
  // Groups multiply the weight's output channels; dilation widens the kernel.
  CHECK_EQ(str(g.shape("conv_transpose2d", {x, g.arg({16, 4, 3, 3})}, {{"groups", 2}, {"dilation", Ints{2, 1}}})),
           "1x8x12x10");
}

TEST(ops_linear_and_matmul) {
  Graph g;
  Op* fc = g.op("linear", {g.arg({2, 5, 64}), g.arg({10, 64}), g.arg({10})});
  CHECK_EQ(str(fc->result(0)->type.shape), "2x5x10");
  CHECK_EQ(fc->def().macs(*fc), int64_t{2} * 5 * 10 * 64);
  CHECK_EQ(str(g.shape("linear", {g.arg({64}), g.arg({10, 64})})), "10");

  Op* mm = g.op("matmul", {g.arg({2, 1, 4, 8}), g.arg({3, 8, 5})});
  CHECK_EQ(str(mm->result(0)->type.shape), "2x3x4x5");
  CHECK_EQ(mm->def().macs(*mm), int64_t{2} * 3 * 4 * 5 * 8);
  CHECK_EQ(str(g.shape("matmul", {g.arg({4, 8}), g.arg({8, 2})})), "4x2");
  CHECK_THROWS(VerifyError, g.op("matmul", {g.arg({4, 8}), g.arg({7, 2})}),
               "operand #1 (rhs): expected dim 0 = 8 (lhs last dim) but got tensor<7x2xf32>");
  CHECK_THROWS(VerifyError, g.op("matmul", {g.arg({8}), g.arg({8, 2})}), "operand #0 (lhs): expected rank >= 2");
  CHECK_THROWS(VerifyError, g.op("matmul", {g.arg({2, 4, 8}), g.arg({3, 8, 2})}), "expected broadcastable shapes");
  CHECK_THROWS(VerifyError, g.op("linear", {g.arg({2, 64}), g.arg({10, 64}), g.arg({5})}),
               "operand #2 (bias): expected dim 0 = 10 (weight dim 0)");
}

// ---- Normalization and elementwise --------------------------------------------------------------

TEST(ops_batch_norm) {
  Graph g;
  Value* c = g.arg({8});
  CHECK_EQ(str(g.shape("batch_norm", {g.arg({1, 8, 4, 4}), c, c, c, c})), "1x8x4x4");
  CHECK_THROWS(VerifyError, g.op("batch_norm", {g.arg({1, 4, 4, 4}), c, c, c, c}),
               "operand #1 (mean): expected dim 0 = 4");
  CHECK_THROWS(VerifyError, g.op("batch_norm", {g.arg({1, 8, 4, 4}), c, c, c, c}, {{"eps", -1.0}}),
               "attribute 'eps': expected a finite non-negative value but got -1.0");
}

TEST(ops_unary_keep_shape) {
  Graph g;
  Value* x = g.arg({1, 8, 4, 4});
  for (const char* n : {"relu", "relu6", "sigmoid", "tanh", "exp", "sin", "cos", "leaky_relu", "softmax"}) {
    Op* op = g.op(n, {x});
    CHECK_EQ(op->result(0)->type, TensorType({1, 8, 4, 4}, F32));
  }
  CHECK_EQ(str(g.shape("clip", {x}, {{"min", 0.0}, {"max", 6}})), "1x8x4x4");
  CHECK_EQ(str(g.shape("softmax", {x}, {{"axis", 1}})), "1x8x4x4");
  // Integer inputs leave the result element type to the declaration.
  Value* q = g.arg({4}, SI8, scale(0.5f));
  CHECK_THROWS(VerifyError, g.op("relu", {q}), "element type cannot be inferred");
  CHECK_EQ(g.op("relu", {q}, {}, {TensorType({4}, SI8, scale(0.5f))})->result(0)->type.elem, SI8);
}

TEST(ops_binary_broadcast) {
  Graph g;
  CHECK_EQ(str(g.shape("add", {g.arg({1, 8, 4, 4}), g.arg({8, 1, 1})})), "1x8x4x4");
  CHECK_EQ(str(g.shape("sub", {g.arg({4, 1}), g.arg({1, 5})})), "4x5");
  CHECK_EQ(str(g.shape("mul", {g.arg({}), g.arg({2, 3})})), "2x3");
  CHECK_THROWS(VerifyError, g.op("add", {g.arg({1, 8, 4, 4}), g.arg({3, 1, 1})}),
               "operand #0 (lhs) and operand #1 (rhs): expected broadcastable shapes but got tensor<1x8x4x4xf32> "
               "and tensor<3x1x1xf32>");
  CHECK_THROWS(VerifyError, g.op("add", {g.arg({4}), g.arg({4}, SI8, scale(1.0f))}),
               "operand #1 (rhs): expected element type f32 like operand #0 (lhs)");
}

// ---- Data movement ------------------------------------------------------------------------------

TEST(ops_concat_and_split) {
  Graph g;
  Value* a = g.arg({1, 3, 4, 4});
  Value* b = g.arg({1, 5, 4, 4});
  CHECK_EQ(str(g.shape("concat", {a, b})), "1x8x4x4");
  CHECK_EQ(str(g.shape("concat", {a, a, a}, {{"axis", -1}})), "1x3x4x12");
  CHECK_EQ(str(g.shape("concat", {a})), "1x3x4x4");
  CHECK_THROWS(VerifyError, g.op("concat", {a, b}, {{"axis", 2}}), "operand #1 (inputs): expected dim 1 = 3");
  CHECK_THROWS(VerifyError, g.op("concat", {}), "expected at least 1 input but got 0");

  Op* s = g.op("split", {g.arg({1, 16, 4, 4})}, {{"sizes", Ints{4, 12}}});
  CHECK_EQ(s->numResults(), size_t{2});
  CHECK_EQ(str(s->result(0)->type.shape), "1x4x4x4");
  CHECK_EQ(str(s->result(1)->type.shape), "1x12x4x4");
  Op* s3 = g.op("split", {g.arg({6, 2}, SI8, scale(0.5f))}, {{"axis", -2}, {"sizes", Ints{1, 2, 3}}});
  CHECK_EQ(s3->numResults(), size_t{3});
  CHECK_EQ(s3->result(2)->type.elem, SI8);
  CHECK_THROWS(VerifyError, g.op("split", {g.arg({1, 16})}, {{"sizes", Ints{4, 4}}}),
               "attribute 'sizes': expected positive sizes summing to dim 1 (16) of tensor<1x16xf32> but got [4, 4]");
}

TEST(ops_slice) {
  Graph g;
  Value* x = g.arg({1, 8, 10, 10});
  const int64_t kEnd = std::numeric_limits<int64_t>::max();
  // H: [-3, end) -> [7, 10); W: [0, -1) step 2 -> 0, 2, 4, 6, 8.
  CHECK_EQ(
      str(g.shape("slice", {x},
                  {{"axes", Ints{2, 3}}, {"starts", Ints{-3, 0}}, {"ends", Ints{kEnd, -1}}, {"steps", Ints{1, 2}}})),
      "1x8x3x5");
  // Out-of-range positions clamp; negative axes normalize; steps default to 1.
  CHECK_EQ(str(g.shape("slice", {x}, {{"axes", Ints{-3}}, {"starts", Ints{-100}}, {"ends", Ints{100}}})), "1x8x10x10");
  CHECK_EQ(str(g.shape("slice", {x}, {{"axes", Ints{1}}, {"starts", Ints{1}}, {"ends", Ints{8}}, {"steps", Ints{3}}})),
           "1x3x10x10");
  CHECK_THROWS(VerifyError, g.op("slice", {x}, {{"axes", Ints{1}}, {"starts", Ints{5}}, {"ends", Ints{3}}}),
               "expected a non-empty slice of axis 1 (dim 8) but got start 5, end 3");
  CHECK_THROWS(VerifyError,
               g.op("slice", {x}, {{"axes", Ints{1}}, {"starts", Ints{0}}, {"ends", Ints{3}}, {"steps", Ints{0}}}),
               "attribute 'steps': expected values >= 1 but got [0]");
  CHECK_THROWS(VerifyError, g.op("slice", {x}, {{"axes", Ints{1, 2}}, {"starts", Ints{0}}, {"ends", Ints{3, 3}}}),
               "attribute 'starts': expected 2 values (one per entry of 'axes') but got [0]");
  CHECK_THROWS(VerifyError, g.op("slice", {x}, {{"axes", Ints{1, -3}}, {"starts", Ints{0, 0}}, {"ends", Ints{3, 3}}}),
               "attribute 'axes': expected distinct axes");
}

TEST(ops_reshape_transpose_flatten) {
  Graph g;
  Value* x = g.arg({2, 3, 4, 5}, SI8, scale(0.25f));
  Op* r = g.op("reshape", {x}, {{"shape", Ints{6, -1}}});
  CHECK_EQ(str(r->result(0)->type.shape), "6x20");
  CHECK_EQ(r->result(0)->type.elem, SI8);  // data movement keeps the element type
  CHECK_EQ(str(g.shape("reshape", {x}, {{"shape", Ints{120}}})), "120");
  CHECK_THROWS(VerifyError, g.op("reshape", {x}, {{"shape", Ints{7, -1}}}),
               "attribute 'shape': expected dims dividing the 120 elements");
  CHECK_THROWS(VerifyError, g.op("reshape", {x}, {{"shape", Ints{-1, -1}}}),
               "attribute 'shape': expected positive dims and at most one -1 but got [-1, -1]");
  CHECK_THROWS(VerifyError, g.op("reshape", {x}, {{"shape", Ints{2, 3}}}), "expected dims multiplying to the 120");

  CHECK_EQ(str(g.shape("transpose", {x}, {{"perm", Ints{0, 2, 3, 1}}})), "2x4x5x3");
  CHECK_EQ(str(g.shape("transpose", {x}, {{"perm", Ints{-1, 0, 1, 2}}})), "5x2x3x4");
  CHECK_THROWS(VerifyError, g.op("transpose", {x}, {{"perm", Ints{0, 1, 1, 2}}}),
               "attribute 'perm': expected a permutation");
  CHECK_THROWS(VerifyError, g.op("transpose", {x}, {{"perm", Ints{0, 1}}}), "attribute 'perm': expected a permutation");

  CHECK_EQ(str(g.shape("flatten", {x})), "2x60");
  CHECK_EQ(str(g.shape("flatten", {x}, {{"start_dim", 0}, {"end_dim", 1}})), "6x4x5");
  CHECK_EQ(str(g.shape("flatten", {x}, {{"start_dim", -2}})), "2x3x20");
  CHECK_EQ(str(g.shape("flatten", {x}, {{"start_dim", 2}, {"end_dim", 2}})), "2x3x4x5");
  CHECK_THROWS(VerifyError, g.op("flatten", {x}, {{"start_dim", 3}, {"end_dim", 1}}),
               "attribute 'end_dim': expected an axis >= start_dim (3) but got 1");
}

TEST(ops_pad_and_gather) {
  Graph g;
  Value* x = g.arg({1, 3, 4, 4});
  CHECK_EQ(str(g.shape("pad", {x}, {{"pads", Ints{0, 0, 1, 2, 0, 0, 3, 4}}})), "1x3x8x10");
  CHECK_EQ(str(g.shape("pad", {x}, {{"pads", Ints{0, 0, 3, 3, 0, 0, 3, 3}}, {"mode", "reflect"}})), "1x3x10x10");
  CHECK_THROWS(VerifyError, g.op("pad", {x}, {{"pads", Ints{1, 1}}}),
               "attribute 'pads': expected 8 non-negative values but got [1, 1]");
  CHECK_THROWS(VerifyError, g.op("pad", {x}, {{"pads", Ints{0, 0, 4, 0, 0, 0, 0, 0}}, {"mode", "reflect"}}),
               "values below each padded dim for mode \"reflect\"");
  CHECK_THROWS(VerifyError, g.op("pad", {x}, {{"pads", Ints{0, 0, 1, 1, 0, 0, 1, 1}}, {"mode", "wrap"}}),
               "attribute 'mode': expected one of \"constant\", \"edge\", \"reflect\" but got \"wrap\"");

  Value* table = g.arg({100, 64});
  CHECK_EQ(str(g.shape("gather", {table, g.arg({5}, SI32)})), "5x64");
  CHECK_EQ(str(g.shape("gather", {g.arg({2, 3, 4}), g.arg({2, 2}, SI32)}, {{"axis", 1}})), "2x2x2x4");
  CHECK_EQ(str(g.shape("gather", {table, g.arg({}, SI32)}, {{"axis", -1}})), "100");
  Op* bad = g.op("gather", {table, g.arg({5})});
  CHECK_THROWS(VerifyError, bad->def().verify(*bad),
               "operand #1 (indices): expected element type si32 but got tensor<5xf32>");
}

// ---- Pooling and resizing -----------------------------------------------------------------------

TEST(ops_pooling) {
  Graph g;
  Value* x = g.arg({1, 8, 32, 32});
  CHECK_EQ(
      str(g.shape("max_pool2d", {x}, {{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{1, 1, 1, 1}}})),
      "1x8x16x16");
  Value* x5 = g.arg({1, 1, 5, 5});
  AttrList k2s2{{"kernel", Ints{2, 2}}, {"stride", Ints{2, 2}}};
  CHECK_EQ(str(g.shape("max_pool2d", {x5}, k2s2)), "1x1x2x2");
  AttrList ceil = k2s2;
  ceil.emplace_back("ceil_mode", true);
  CHECK_EQ(str(g.shape("max_pool2d", {x5}, ceil)), "1x1x3x3");
  CHECK_EQ(str(g.shape("avg_pool2d", {x5}, ceil)), "1x1x3x3");
  // ceil_mode never starts a window in the end padding: (4 + 1 - 2) / 2 rounds up to 2, +1 = 3,
  // but the third window would start at 4 >= 4 + 0.
  Value* x4 = g.arg({1, 1, 4, 4});
  CHECK_EQ(str(g.shape(
               "max_pool2d", {x4},
               {{"kernel", Ints{2, 2}}, {"stride", Ints{2, 2}}, {"padding", Ints{0, 0, 1, 1}}, {"ceil_mode", true}})),
           "1x1x2x2");
  CHECK_EQ(str(g.shape("max_pool2d", {x}, {{"kernel", Ints{3, 3}}, {"stride", Ints{1, 1}}, {"dilation", Ints{2, 2}}})),
           "1x8x28x28");
  CHECK_THROWS(VerifyError,
               g.op("max_pool2d", {x}, {{"kernel", Ints{3, 3}}, {"stride", Ints{1, 1}}, {"padding", Ints{2, 2, 2, 2}}}),
               "attribute 'padding': expected values at most half the (dilated) kernel but got [2, 2, 2, 2]");
  CHECK_THROWS(VerifyError, g.op("avg_pool2d", {x}, {{"kernel", Ints{3}}, {"stride", Ints{1, 1}}}),
               "attribute 'kernel': expected 2 positive values but got [3]");
  CHECK_EQ(g.op("global_avg_pool2d", {x})->result(0)->type, TensorType({1, 8, 1, 1}, F32));
}

TEST(ops_resize2d) {
  Graph g;
  Value* x = g.arg({1, 8, 4, 4});
  CHECK_EQ(str(g.shape("resize2d", {x}, {{"size", Ints{16, 8}}})), "1x8x16x8");
  CHECK_EQ(
      str(g.shape("resize2d", {x}, {{"size", Ints{3, 3}}, {"mode", "bilinear"}, {"coordinate_mode", "align_corners"}})),
      "1x8x3x3");
  // Nearest only moves data, so it keeps an integer type; bilinear leaves it to the declaration.
  Value* q = g.arg({1, 8, 4, 4}, SI8, scale(0.5f));
  CHECK_EQ(g.op("resize2d", {q}, {{"size", Ints{8, 8}}})->result(0)->type.elem, SI8);
  CHECK_THROWS(VerifyError, g.op("resize2d", {q}, {{"size", Ints{8, 8}}, {"mode", "bilinear"}}),
               "element type cannot be inferred");
  CHECK_THROWS(VerifyError, g.op("resize2d", {x}, {{"size", Ints{8, 8}}, {"mode", "cubic"}}),
               "attribute 'mode': expected one of \"nearest\", \"bilinear\" but got \"cubic\"");
  CHECK_THROWS(VerifyError, g.op("resize2d", {x}, {{"size", Ints{8, 8}}, {"coordinate_mode", "tf"}}),
               "attribute 'coordinate_mode': expected one of");
}

TEST(ops_grid_sample) {
  Graph g;
  Value* x = g.arg({2, 8, 5, 7});
  Value* grid = g.arg({2, 3, 4, 2});
  CHECK_EQ(str(g.shape("grid_sample", {x, grid})), "2x8x3x4");
  CHECK_EQ(str(g.shape("grid_sample", {x, grid}, {{"align_corners", true}})), "2x8x3x4");
  CHECK_THROWS(VerifyError, g.op("grid_sample", {x, g.arg({1, 3, 4, 2})}), "operand #1 (grid)");
  CHECK_THROWS(VerifyError, g.op("grid_sample", {x, g.arg({2, 3, 4, 3})}), "operand #1 (grid)");
  CHECK_THROWS(VerifyError, g.op("grid_sample", {x, grid}, {{"mode", "nearest"}}),
               "attribute 'mode': expected one of \"bilinear\"");
  CHECK_THROWS(VerifyError, g.op("grid_sample", {x, grid}, {{"padding_mode", "border"}}), "attribute 'padding_mode'");
  // Integer inputs leave the result's element type to the declaration; float and integer do not mix.
  Value* q = g.arg({2, 8, 5, 7}, SI8, scale(0.5f));
  CHECK_THROWS(VerifyError, g.op("grid_sample", {q, grid}), "operand #1 (grid)");
}

// ---- Quantization -------------------------------------------------------------------------------

TEST(ops_quantization) {
  Graph g;
  Value* x = g.arg({1, 8, 4, 4});
  TensorType q8({1, 8, 4, 4}, SI8, scale(0.05f));
  Op* q = g.op("quantize", {x}, {}, {q8});
  q->def().verify(*q);
  CHECK_EQ(q->result(0)->type, q8);
  Op* noScale = g.op("quantize", {x}, {}, {TensorType({1, 8, 4, 4}, SI8)});
  CHECK_THROWS(VerifyError, noScale->def().verify(*noScale),
               "result #0 (output): expected si8 or si16 tensor with a scale but got tensor<1x8x4x4xsi8>");
  Op* fromInt = g.op("quantize", {q->result(0)}, {}, {q8});
  CHECK_THROWS(VerifyError, fromInt->def().verify(*fromInt), "operand #0 (input): expected element type f32");

  Op* dq = g.op("dequantize", {q->result(0)});
  dq->def().verify(*dq);
  CHECK_EQ(dq->result(0)->type, TensorType({1, 8, 4, 4}, F32));
  Op* dqBad = g.op("dequantize", {g.arg({4}, SI8)});
  CHECK_THROWS(VerifyError, dqBad->def().verify(*dqBad),
               "operand #0 (input): expected an integer tensor with a scale but got tensor<4xsi8>");

  Value* acc = g.arg({1, 8, 4, 4}, SI32, scale(0.001f));
  Op* rq = g.op("requantize", {acc}, {}, {q8});
  rq->def().verify(*rq);
  CHECK_THROWS(VerifyError, g.op("requantize", {acc}, {}, {TensorType({1, 8, 4}, SI8, scale(0.1f))}),
               "result #0: expected shape");

  Value* table = g.arg({256}, SI8);
  Op* lut = g.op("lut", {q->result(0), table}, {}, {q8});
  lut->def().verify(*lut);
  Op* shortTable = g.op("lut", {q->result(0), g.arg({128}, SI8)}, {}, {q8});
  CHECK_THROWS(VerifyError, shortTable->def().verify(*shortTable),
               "operand #1 (table): expected 256 entries for an si8 input but got tensor<128xsi8>");
  Op* floatIn = g.op("lut", {x, table}, {}, {q8});
  CHECK_THROWS(VerifyError, floatIn->def().verify(*floatIn), "operand #0 (input): expected element type si8 or si16");
}

// ---- Detection, reductions and selection -------------------------------------------------------

TEST(ops_point_pillar_scatter) {
  Graph g;
  Value* feat = g.arg({1200, 64});
  Value* coords = g.arg({1200, 4}, SI32);
  Op* s = g.op("point_pillar_scatter", {feat, coords}, {{"grid", Ints{496, 432}}, {"batch", 2}});
  s->def().verify(*s);
  CHECK_EQ(s->result(0)->type, TensorType({2, 64, 496, 432}, F32));
  CHECK_THROWS(VerifyError, g.op("point_pillar_scatter", {feat, g.arg({1000, 4}, SI32)}, {{"grid", Ints{8, 8}}}),
               "operand #1 (coords): expected dim 0 = 1200");
  Op* f32Coords = g.op("point_pillar_scatter", {feat, g.arg({1200, 4})}, {{"grid", Ints{8, 8}}});
  CHECK_THROWS(VerifyError, f32Coords->def().verify(*f32Coords), "operand #1 (coords): expected element type si32");
  // 2 * 64 * 2^30 * 2^30 elements: rejected, not overflowed.
  CHECK_THROWS(VerifyError,
               g.op("point_pillar_scatter", {feat, coords}, {{"grid", Ints{1 << 30, 1 << 30}}, {"batch", 2}}),
               "result #0 (output): expected at most 2^40 elements");
}

TEST(ops_argmax_topk) {
  Graph g;
  Value* x = g.arg({1, 19, 64, 64});
  CHECK_EQ(g.op("argmax", {x})->result(0)->type, TensorType({1, 1, 64, 64}, SI32));
  CHECK_EQ(str(g.shape("argmax", {x}, {{"axis", -1}, {"keepdim", false}})), "1x19x64");

  Op* t = g.op("topk", {g.arg({2, 100})}, {{"k", 5}});
  CHECK_EQ(t->numResults(), size_t{2});
  CHECK_EQ(t->result(0)->type, TensorType({2, 5}, F32));
  CHECK_EQ(t->result(1)->type, TensorType({2, 5}, SI32));
  t->def().verify(*t);
  Op* t0 = g.op("topk", {g.arg({10, 3}, SI8, scale(0.5f))}, {{"k", 3}, {"axis", 0}});
  CHECK_EQ(t0->result(0)->type.elem, SI8);
  CHECK_EQ(str(t0->result(1)->type.shape), "3x3");
  CHECK_THROWS(VerifyError, g.op("topk", {g.arg({2, 4})}, {{"k", 5}}),
               "attribute 'k': expected a value in [1, 4] (dim 1) but got 5");
  Op* scaled =
      g.op("topk", {g.arg({2, 4})}, {{"k", 2}}, {TensorType({2, 2}, F32), TensorType({2, 2}, SI32, scale(1.0f))});
  CHECK_THROWS(VerifyError, scaled->def().verify(*scaled), "result #1 (indices): expected si32 without a scale");
}

// ---- Shape errors -------------------------------------------------------------------------------

TEST(ops_conv_errors) {
  Graph g;
  Value* x = g.arg({1, 3, 8, 8});
  Value* w = g.arg({16, 3, 3, 3});
  CHECK_THROWS(VerifyError, g.op("conv2d", {x, g.arg({3, 3})}),
               "'conv2d' op: operand #1 (weight): expected rank 4 but got tensor<3x3xf32>");
  CHECK_THROWS(VerifyError, g.op("conv2d", {g.arg({3, 8, 8}), w}), "operand #0 (input): expected rank 4");
  CHECK_THROWS(VerifyError, g.op("conv2d", {x, w}, {{"stride", Ints{0, 1}}}),
               "attribute 'stride': expected 2 positive values but got [0, 1]");
  CHECK_THROWS(VerifyError, g.op("conv2d", {x, w}, {{"stride", Ints{1, 1, 1}}}),
               "attribute 'stride': expected 2 positive values but got [1, 1, 1]");
  CHECK_THROWS(VerifyError, g.op("conv2d", {x, w}, {{"padding", Ints{1, 1}}}),
               "attribute 'padding': expected 4 non-negative values but got [1, 1]");
  CHECK_THROWS(VerifyError, g.op("conv2d", {x, w}, {{"dilation", Ints{int64_t{1} << 40, 1}}}),
               "attribute 'dilation': expected 2 positive values of at most 2147483647");
  CHECK_THROWS(VerifyError, g.op("conv2d", {x, w}, {{"groups", 2}}),
               "attribute 'groups': expected a divisor of the input channels (3) but got 2");
  CHECK_THROWS(VerifyError, g.op("conv2d", {x, w}, {{"groups", 0}}), "attribute 'groups': expected a value in [1,");
  CHECK_THROWS(VerifyError, g.op("conv2d", {x, g.arg({16, 4, 3, 3})}),
               "operand #1 (weight): expected dim 1 = 3 (input channels 3 / groups 1) but got tensor<16x4x3x3xf32>");
  CHECK_THROWS(VerifyError, g.op("conv2d", {x, w, g.arg({8})}), "operand #2 (bias): expected dim 0 = 16");
  CHECK_THROWS(VerifyError, g.op("conv2d", {x, g.arg({16, 3, 9, 3})}),
               "expected the dilated kernel height (9) to fit the padded input height but got 8");
  CHECK_THROWS(VerifyError, g.op("conv2d", {x, w}, {{"dilation", Ints{1, 4}}}),
               "expected the dilated kernel width (9) to fit the padded input width but got 8");
  CHECK_THROWS(VerifyError, g.op("conv2d", {x, g.arg({16, 3, 3, 3}, SI8)}),
               "operand #1 (weight): expected element type f32 like operand #0 (input)");
  CHECK_THROWS(VerifyError, g.op("conv2d", {x, w}, {{"strides", Ints{1, 1}}}), "unknown attribute 'strides'");

  Value* tx = g.arg({1, 16, 8, 8});
  Value* tw = g.arg({16, 8, 3, 3});
  CHECK_THROWS(VerifyError, g.op("conv_transpose2d", {tx, tw}, {{"output_padding", Ints{1, 1}}}),
               "attribute 'output_padding': expected values smaller than stride or dilation but got [1, 1]");
  CHECK_THROWS(VerifyError,
               g.op("conv_transpose2d", {g.arg({1, 1, 1, 1}), g.arg({1, 1, 1, 1})}, {{"padding", Ints{1, 0, 0, 0}}}),
               "expected a positive output height but got 0");
  CHECK_THROWS(VerifyError, g.op("conv_transpose2d", {tx, g.arg({8, 8, 3, 3})}),
               "operand #1 (weight): expected dim 0 = 16 (input channels)");
}

TEST(ops_axis_and_shape_errors) {
  Graph g;
  Value* x = g.arg({2, 5});
  CHECK_THROWS(VerifyError, g.op("softmax", {x}, {{"axis", 2}}),
               "attribute 'axis': expected an axis in [-2, 1] but got 2");
  CHECK_THROWS(VerifyError, g.op("argmax", {x}, {{"axis", -3}}),
               "attribute 'axis': expected an axis in [-2, 1] but got -3");
  CHECK_THROWS(VerifyError, g.op("gather", {x, g.arg({3}, SI32)}, {{"axis", 5}}),
               "attribute 'axis': expected an axis in");
  CHECK_THROWS(VerifyError, g.op("clip", {x}, {{"min", 1.0}, {"max", 0.0}}),
               "attribute 'max': expected a value >= min (1.0) but got 0.0");
  CHECK_THROWS(VerifyError, g.op("clip", {x}, {{"min", 1.0}}), "missing required attribute 'max'");
  CHECK_THROWS(VerifyError, g.op("relu", {g.arg({2, 0})}),
               "operand #0 (input): expected positive dims but got tensor<2x0xf32>");
  CHECK_THROWS(VerifyError, g.op("relu", {g.arg({1 << 21, 1 << 20})}),
               "operand #0 (input): expected at most 2^40 elements");
  CHECK_THROWS(VerifyError, g.op("relu", {x, x}), "expected 1 operand(s) but got 2");
  CHECK_THROWS(VerifyError, g.op("conv2d", {x}), "expected 2 to 3 operand(s) but got 1");
}
