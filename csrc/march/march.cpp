// The march loader: one table of fields per JSON object drives both validation and the schema in
// docs/marches.md. Every error names the file, the line:col and the JSON path of the bad value;
// unknown keys are errors because a misspelt limit would otherwise be silently unlimited.
#include "march/march.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "ir/op_def.h"
#include "ir/strings.h"
#include "march/constraints.h"
#include "march/json.h"

namespace hbdk::march {

const char* dataflowName(Dataflow d) {
  switch (d) {
    case Dataflow::OutputStationary: return "output_stationary";
    case Dataflow::WeightStationary: return "weight_stationary";
    case Dataflow::InputStationary: return "input_stationary";
  }
  return "?";
}

double March::peakTops(const std::string& precision) const {
  auto it = macArray.macsPerCycle.find(precision);
  if (it == macArray.macsPerCycle.end())
    throw MarchError("error: march '" + name + "' gives no MAC throughput for '" + precision + "'");
  return 2.0 * static_cast<double>(it->second) * clockMHz * 1e6 / 1e12;
}

const OpConstraints* March::opConstraints(const std::string& opName) const {
  auto it = ops.find(opName);
  return it == ops.end() ? nullptr : &it->second;
}

namespace {

using json::Kind;

std::string quoted(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) s += (i ? ", \"" : "\"") + names[i] + "\"";
  return s;
}

// "; did you mean "rows"?" when a known name is a plausible typo of `name`.
std::string didYouMean(const std::string& name, const std::vector<std::string>& known) {
  auto best = ir::closestMatch(name, known);
  return best ? "; did you mean \"" + *best + "\"?" : "";
}

// A JSON value with its path, for reading and for messages.
struct Cursor {
  const json::Value& v;
  std::string path;
  const std::string& origin;

  [[noreturn]] void fail(const std::string& msg) const {
    throw MarchError(origin + ":" + std::to_string(v.line) + ":" + std::to_string(v.col) +
                     ": error: " + (path.empty() ? "" : path + ": ") + msg);
  }
  [[noreturn]] void expected(const std::string& what) const { fail("expected " + what + " but got " + v.brief()); }

  Cursor member(const std::string& key, const json::Value& child) const {
    return {child, path.empty() ? key : path + "." + key, origin};
  }
  Cursor item(size_t i) const { return {v.items[i], path + "[" + std::to_string(i) + "]", origin}; }

  int64_t positiveInt() const {
    if (v.kind != Kind::Number || !v.isInteger || v.integer <= 0) expected("a positive integer");
    return v.integer;
  }
  int64_t nonNegativeInt() const {
    if (v.kind != Kind::Number || !v.isInteger || v.integer < 0) expected("a non-negative integer");
    return v.integer;
  }
  double positiveNumber() const {
    if (v.kind != Kind::Number || !(v.number > 0) || v.number > 1e15) expected("a positive number");
    return v.number;
  }
  const std::string& string() const {
    if (v.kind != Kind::String) expected("a string");
    return v.text;
  }
  bool boolean() const {
    if (v.kind != Kind::Bool) expected("true or false");
    return v.boolean;
  }
  std::string oneOf(const std::vector<std::string>& choices) const {
    if (v.kind != Kind::String || std::find(choices.begin(), choices.end(), v.text) == choices.end())
      expected("one of " + quoted(choices));
    return v.text;
  }
  void nonEmptyArray() const {
    if (v.kind != Kind::Array) expected("a list");
    if (v.items.empty()) fail("expected a non-empty list but got []");
  }
  std::vector<int64_t> positiveInts() const {
    nonEmptyArray();
    std::vector<int64_t> out;
    for (size_t i = 0; i < v.items.size(); ++i) {
      int64_t n = item(i).positiveInt();
      if (std::find(out.begin(), out.end(), n) != out.end()) item(i).fail("duplicate value " + std::to_string(n));
      out.push_back(n);
    }
    return out;
  }
  // A list of distinct strings, each from `allowed` unless it is empty.
  std::vector<std::string> strings(const std::vector<std::string>& allowed) const {
    nonEmptyArray();
    std::vector<std::string> out;
    for (size_t i = 0; i < v.items.size(); ++i) {
      std::string s = allowed.empty() ? item(i).string() : item(i).oneOf(allowed);
      if (std::find(out.begin(), out.end(), s) != out.end()) item(i).fail("duplicate value \"" + s + "\"");
      out.push_back(s);
    }
    return out;
  }
};

template <typename T>
struct Field {
  const char* key;
  const char* type;  // for the schema document
  bool required;
  const char* doc;
  void (*read)(T& out, const Cursor& c);
};

void requireObject(const Cursor& c) {
  if (c.v.kind != Kind::Object) c.expected("an object");
}

template <typename T>
void readObject(T& out, const Cursor& c, const std::vector<Field<T>>& fields) {
  requireObject(c);
  std::vector<std::string> known;
  for (const auto& f : fields) known.push_back(f.key);
  for (const auto& member : c.v.members) {
    // A named copy, not a structured binding: lambdas may capture those only from C++20 on.
    const auto& key = member.first;
    const auto& child = member.second;
    auto f = std::find_if(fields.begin(), fields.end(), [&](const Field<T>& x) { return key == x.key; });
    Cursor cc = c.member(key, child);
    if (f == fields.end()) cc.fail("unknown key" + didYouMean(key, known) + " (expected one of " + quoted(known) + ")");
    f->read(out, cc);
  }
  for (const auto& f : fields)
    if (f.required && !c.v.find(f.key))
      c.fail("missing required field \"" + std::string(f.key) + "\" (" + f.type + ": " + f.doc + ")");
}

// An object {int8, int16} of positive throughputs; `int8` required.
void readPrecisions(std::map<std::string, int64_t>& out, const Cursor& c) {
  requireObject(c);
  const std::vector<std::string> precisions = {"int8", "int16"};
  for (const auto& [k, v] : c.v.members) {
    Cursor cc = c.member(k, v);
    if (std::find(precisions.begin(), precisions.end(), k) == precisions.end())
      cc.fail("unknown precision" + didYouMean(k, precisions) + " (expected one of " + quoted(precisions) + ")");
    out[k] = cc.positiveInt();
  }
  if (!c.v.find("int8")) c.fail("missing required field \"int8\"");
}

// ---- the schema: one table per JSON object ----------------------------------------------------

const std::vector<Field<MacArray>>& macArrayFields() {
  static const std::vector<Field<MacArray>> f = {
      {"rows", "positive integer", true, "processing elements per column of the systolic array",
       [](MacArray& m, const Cursor& c) { m.rows = c.positiveInt(); }},
      {"cols", "positive integer", true, "processing elements per row of the systolic array",
       [](MacArray& m, const Cursor& c) { m.cols = c.positiveInt(); }},
      {"dataflow", "\"output_stationary\", \"weight_stationary\" or \"input_stationary\"", true,
       "which operand stays in the processing elements while the others stream through",
       [](MacArray& m, const Cursor& c) {
         std::string d = c.oneOf({"output_stationary", "weight_stationary", "input_stationary"});
         m.dataflow = d == "output_stationary"   ? Dataflow::OutputStationary
                      : d == "weight_stationary" ? Dataflow::WeightStationary
                                                 : Dataflow::InputStationary;
       }},
      {"macs_per_cycle", "object {int8, int16}", true,
       "multiply-accumulates per cycle by operand precision; `int8` required, at most rows*cols",
       [](MacArray& m, const Cursor& c) { readPrecisions(m.macsPerCycle, c); }},
      {"depthwise_macs_per_cycle", "object {int8, int16}", true,
       "multiply-accumulates per cycle of the depthwise datapath, which runs depthwise convs (groups = input = "
       "output channels) in place of the array; the precisions of `macs_per_cycle`; cost ceil(MACs / this)",
       [](MacArray& m, const Cursor& c) { readPrecisions(m.depthwiseMacsPerCycle, c); }},
  };
  return f;
}

const std::vector<Field<VectorUnit>>& vectorUnitFields() {
  static const std::vector<Field<VectorUnit>> f = {
      {"lanes", "positive integer", true, "int8 elements the vector unit processes per cycle",
       [](VectorUnit& u, const Cursor& c) { u.lanes = c.positiveInt(); }},
      {"ops_per_cycle_per_lane", "object {<op>: positive integer}", false,
       "per-op throughput overrides for the cycle model; keys are op names",
       [](VectorUnit& u, const Cursor& c) {
         requireObject(c);
         for (const auto& [k, v] : c.v.members) {
           Cursor cc = c.member(k, v);
           if (!ir::lookupOp(k)) cc.fail("unknown op \"" + k + "\" (see docs/ops.md)");
           u.opsPerCyclePerLane[k] = cc.positiveInt();
         }
       }},
  };
  return f;
}

const std::vector<Field<Sram>>& sramFields() {
  static const std::vector<Field<Sram>> f = {
      {"size_kib", "positive integer", true, "on-chip SRAM in KiB (1024 bytes)",
       [](Sram& s, const Cursor& c) {
         int64_t kib = c.positiveInt();
         if (kib > (int64_t{1} << 30)) c.expected("at most 2^30 KiB");
         s.sizeBytes = kib * 1024;
       }},
      {"banks", "positive integer", true, "independently addressable SRAM banks",
       [](Sram& s, const Cursor& c) { s.banks = c.positiveInt(); }},
      {"bytes_per_cycle", "positive integer", true, "SRAM read+write bandwidth to the compute units",
       [](Sram& s, const Cursor& c) { s.bytesPerCycle = c.positiveInt(); }},
  };
  return f;
}

const std::vector<Field<Ddr>>& ddrFields() {
  static const std::vector<Field<Ddr>> f = {
      {"bandwidth_gbps", "positive number", true, "DDR bandwidth in GB/s (1e9 bytes per second)",
       [](Ddr& d, const Cursor& c) { d.bandwidthGBps = c.positiveNumber(); }},
      {"latency_cycles", "non-negative integer", true, "cycles from a DMA request to its first data",
       [](Ddr& d, const Cursor& c) { d.latencyCycles = c.nonNegativeInt(); }},
  };
  return f;
}

const std::vector<Field<Dma>>& dmaFields() {
  static const std::vector<Field<Dma>> f = {
      {"engines", "positive integer", true, "DMA engines that move data between DDR and SRAM in parallel",
       [](Dma& d, const Cursor& c) { d.engines = c.positiveInt(); }},
      {"bytes_per_cycle", "positive integer", true, "bytes each engine moves per cycle",
       [](Dma& d, const Cursor& c) { d.bytesPerCycle = c.positiveInt(); }},
  };
  return f;
}

struct TensorLimits {
  int64_t maxRank = 0;
  int64_t maxDim = 0;
};

const std::vector<Field<TensorLimits>>& tensorFields() {
  static const std::vector<Field<TensorLimits>> f = {
      {"max_rank", "positive integer", true, "most dims any tensor may have",
       [](TensorLimits& t, const Cursor& c) { t.maxRank = c.positiveInt(); }},
      {"max_dim", "positive integer", true, "largest size of any single dim",
       [](TensorLimits& t, const Cursor& c) { t.maxDim = c.positiveInt(); }},
  };
  return f;
}

std::vector<std::string> elemTypeNames() {
  std::vector<std::string> out;
  for (ir::ElemType t : {ir::ElemType::SI8, ir::ElemType::SI16, ir::ElemType::SI32, ir::ElemType::UI8,
                         ir::ElemType::Bool, ir::ElemType::F32})
    out.push_back(ir::elemTypeName(t));
  return out;
}

// The op a constraints object belongs to travels with the target so that `modes` can be checked
// against the values its rule allows for that op.
struct OpTarget {
  std::string op;
  OpConstraints c;
};

const Rule& ruleFor(const std::string& field, const std::string& op) {
  for (const Rule& r : constraintRules())
    if (field == r.field && r.appliesTo(op)) return r;
  throw std::logic_error("no rule reads " + field + " for " + op);
}

const std::vector<Field<OpTarget>>& opFields() {
  static const std::vector<Field<OpTarget>> f = {
      {"dtypes", "list of element types", true, "activation element types the op accepts (si8, si16, si32, ...)",
       [](OpTarget& t, const Cursor& c) { t.c.dtypes = c.strings(elemTypeNames()); }},
      {"kernel_max", "positive integer", false, "largest kernel height and width",
       [](OpTarget& t, const Cursor& c) { t.c.kernelMax = c.positiveInt(); }},
      {"strides", "list of positive integers", false, "allowed stride values (height and width each)",
       [](OpTarget& t, const Cursor& c) { t.c.strides = c.positiveInts(); }},
      {"dilation_max", "positive integer", false, "largest dilation (height and width each)",
       [](OpTarget& t, const Cursor& c) { t.c.dilationMax = c.positiveInt(); }},
      {"channels_max", "positive integer", false, "most input and output channels",
       [](OpTarget& t, const Cursor& c) { t.c.channelsMax = c.positiveInt(); }},
      {"groups", "\"any\", \"depthwise_or_1\" or \"1\"", false,
       "which channel groupings run: every one, dense or depthwise only, or dense only",
       [](OpTarget& t, const Cursor& c) { t.c.groupsMode = c.oneOf({"any", "depthwise_or_1", "1"}); }},
      {"resize_factors", "list of positive integers", false, "allowed whole up- or down-scale factors",
       [](OpTarget& t, const Cursor& c) { t.c.resizeFactors = c.positiveInts(); }},
      {"modes", "list of strings", false, "allowed values of the op's `mode` attribute",
       [](OpTarget& t, const Cursor& c) { t.c.modes = c.strings(ruleFor("modes", t.op).values); }},
      {"k_max", "positive integer", false, "largest topk k, or largest reduction length K of linear/matmul",
       [](OpTarget& t, const Cursor& c) { t.c.kMax = c.positiveInt(); }},
  };
  return f;
}

// ops.<op>: the op must exist in the op table and every key must be read by a rule for that op.
void readOps(std::map<std::string, OpConstraints>& ops, const Cursor& c) {
  requireObject(c);
  std::vector<std::string> opNames;
  for (const auto& d : ir::opTable()) opNames.push_back(d.name);
  for (const auto& [name, body] : c.v.members) {
    Cursor oc = c.member(name, body);
    if (!ir::lookupOp(name)) oc.fail("unknown op" + didYouMean(name, opNames) + " (see docs/ops.md)");
    requireObject(oc);
    for (const auto& [key, child] : body.members) {
      if (std::string(key) == "dtypes") continue;
      std::vector<std::string> appliesTo;
      bool known = false, applies = false;
      for (const Rule& r : constraintRules()) {
        if (key != r.field) continue;
        known = true;
        applies = applies || r.appliesTo(name);
        appliesTo.insert(appliesTo.end(), r.ops.begin(), r.ops.end());
      }
      if (known && !applies)
        oc.member(key, child).fail("does not apply to " + name + " (it applies to " + quoted(appliesTo) + ")");
    }
    OpTarget t{name, {}};
    readObject(t, oc, opFields());
    ops[name] = std::move(t.c);
  }
}

const std::vector<Field<FuseRules>>& fuseFields() {
  static const std::vector<Field<FuseRules>> f = {
      {"conv_activation", "boolean", true, "conv/linear and a following relu/relu6/clip run as one instruction",
       [](FuseRules& r, const Cursor& c) { r.convActivation = c.boolean(); }},
      {"conv_add", "boolean", true, "conv and a following residual add (and activation) run as one instruction",
       [](FuseRules& r, const Cursor& c) { r.convAdd = c.boolean(); }},
  };
  return f;
}

const std::vector<Field<March>>& marchFields() {
  static const std::vector<Field<March>> f = {
      {"name", "string", true, "the name `--march` selects; letters, digits, '_' and '-'",
       [](March& m, const Cursor& c) {
         const std::string& n = c.string();
         bool ok = !n.empty() && std::all_of(n.begin(), n.end(), [](char ch) {
           return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                  ch == '-';
         });
         if (!ok) c.expected("a name of letters, digits, '_' and '-'");
         m.name = n;
       }},
      {"description", "string", true, "one line on what the target is, shown in docs/marches.md and reports",
       [](March& m, const Cursor& c) { m.description = c.string(); }},
      {"clock_mhz", "positive number", true, "core clock in MHz",
       [](March& m, const Cursor& c) { m.clockMHz = c.positiveNumber(); }},
      {"mac_array", "object", true, "the systolic MAC array",
       [](March& m, const Cursor& c) { readObject(m.macArray, c, macArrayFields()); }},
      {"vector_unit", "object", true, "the SIMD unit for elementwise, pooling and data-movement ops",
       [](March& m, const Cursor& c) { readObject(m.vectorUnit, c, vectorUnitFields()); }},
      {"sram", "object", true, "on-chip memory",
       [](March& m, const Cursor& c) { readObject(m.sram, c, sramFields()); }},
      {"ddr", "object", true, "off-chip memory", [](March& m, const Cursor& c) { readObject(m.ddr, c, ddrFields()); }},
      {"dma", "object", true, "DDR <-> SRAM transfer engines",
       [](March& m, const Cursor& c) { readObject(m.dma, c, dmaFields()); }},
      {"tensor", "object", true, "limits on every tensor of the model",
       [](March& m, const Cursor& c) {
         TensorLimits t;
         readObject(t, c, tensorFields());
         m.maxRank = t.maxRank;
         m.maxDim = t.maxDim;
       }},
      {"ops", "object {<op>: object}", true, "the ops the march runs and their limits; an op not listed is unsupported",
       [](March& m, const Cursor& c) { readOps(m.ops, c); }},
      {"fuse", "object", true, "which op sequences run as one instruction",
       [](March& m, const Cursor& c) { readObject(m.fuse, c, fuseFields()); }},
  };
  return f;
}

template <typename T>
void describe(std::vector<SchemaField>& out, const std::string& prefix, const std::vector<Field<T>>& fields) {
  for (const auto& f : fields) out.push_back({prefix + f.key, f.type, f.required, f.doc});
}

}  // namespace

std::vector<SchemaField> marchSchema() {
  std::vector<SchemaField> out;
  for (const auto& f : marchFields()) {
    out.push_back({f.key, f.type, f.required, f.doc});
    std::string key = f.key;
    if (key == "mac_array") describe(out, "mac_array.", macArrayFields());
    if (key == "vector_unit") describe(out, "vector_unit.", vectorUnitFields());
    if (key == "sram") describe(out, "sram.", sramFields());
    if (key == "ddr") describe(out, "ddr.", ddrFields());
    if (key == "dma") describe(out, "dma.", dmaFields());
    if (key == "tensor") describe(out, "tensor.", tensorFields());
    if (key == "ops") describe(out, "ops.<op>.", opFields());
    if (key == "fuse") describe(out, "fuse.", fuseFields());
  }
  return out;
}

March parseMarch(const std::string& text, const std::string& origin) {
  json::Value root = json::parse(text, origin);
  Cursor c{root, "", origin};
  if (root.kind != Kind::Object) c.expected("a JSON object at the top level");
  March m;
  m.sourcePath = origin;
  readObject(m, c, marchFields());

  // Cross-field checks, reported at the later of the two fields.
  const json::Value& mac = *root.find("mac_array");
  Cursor macC = c.member("mac_array", mac).member("macs_per_cycle", *mac.find("macs_per_cycle"));
  int64_t cells = m.macArray.rows * m.macArray.cols;
  for (const auto& [precision, macs] : m.macArray.macsPerCycle)
    if (macs > cells)
      macC.member(precision, *macC.v.find(precision))
          .fail("expected at most rows*cols = " + std::to_string(cells) + " but got " + std::to_string(macs));
  // The depthwise datapath runs the precisions the array runs, no more and no fewer: a missing one
  // would leave the cycle model without a rate, an extra one would describe a conv the array cannot load.
  Cursor dwC = c.member("mac_array", mac).member("depthwise_macs_per_cycle", *mac.find("depthwise_macs_per_cycle"));
  for (const auto& [precision, macs] : m.macArray.macsPerCycle)
    if (!m.macArray.depthwiseMacsPerCycle.count(precision))
      dwC.fail("missing \"" + precision + "\": expected the precisions of mac_array.macs_per_cycle");
  for (const auto& [precision, macs] : m.macArray.depthwiseMacsPerCycle)
    if (!m.macArray.macsPerCycle.count(precision))
      dwC.member(precision, *dwC.v.find(precision))
          .fail("expected only the precisions of mac_array.macs_per_cycle but mac_array.macs_per_cycle has no \"" +
                precision + "\"");
  return m;
}

March loadMarchFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw MarchError(path + ": error: cannot open the march file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return parseMarch(ss.str(), path);
}

}  // namespace hbdk::march
