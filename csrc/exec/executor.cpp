// The executor: resolves once, per op, which kernel runs it (float reference, optimized integer,
// integer reference), preloads constants and computes each value's last use; run() then walks
// the ops in order and frees every intermediate as soon as nothing reads it any more.
#include "exec/executor.h"

#include <unordered_map>

#include "exec/float_reference.h"
#include "exec/int_optimized.h"
#include "exec/int_reference.h"
#include "exec/thread_pool.h"

namespace hbdk::exec {

namespace {

bool allFloat(const ir::Op& op) {
  for (const ir::Value* v : op.operands())
    if (v->type.elem != ir::ElemType::F32) return false;
  for (const auto& r : op.results)
    if (r->type.elem != ir::ElemType::F32) return false;
  return true;
}

std::vector<Tensor> evalFloat(const ir::Op& op, const std::vector<const Tensor*>& inputs) {
  std::vector<FloatTensor> in;
  in.reserve(inputs.size());
  for (const Tensor* t : inputs) in.push_back(floatTensorFromBlob(t->type.shape, t->bytes));
  auto out = evalOpFloat(op, in);
  if (!out) op.error("has no float reference kernel");
  std::vector<Tensor> results;
  for (size_t i = 0; i < out->size(); ++i) results.emplace_back(op.result(i)->type, blobFromFloatTensor((*out)[i]));
  return results;
}

std::string argName(const ir::Function& fn, size_t i) {
  std::string s = "argument #" + std::to_string(i);
  if (!fn.args[i]->name.empty()) s += " (%" + fn.args[i]->name + ")";
  return s + " of @" + fn.name;
}

}  // namespace

struct Executor::Impl {
  enum class Kind { Constant, Float, IntReference, IntOptimized };
  struct Step {
    const ir::Op* op = nullptr;
    Kind kind = Kind::Float;
    std::unique_ptr<OptimizedKernel> optimized;
    std::vector<size_t> inputs;   // slot of each operand
    std::vector<size_t> outputs;  // slot of each result
    std::vector<size_t> release;  // computed slots nothing reads after this step
  };

  explicit Impl(int threads) : pool(threads) {}

  std::vector<const ir::Value*> values;  // slot -> value
  std::unordered_map<const ir::Value*, size_t> slot;
  std::vector<const Tensor*> constantOf;  // slot -> preloaded constant, or nullptr
  std::vector<std::unique_ptr<Tensor>> constants;
  std::vector<Step> steps;
  std::vector<size_t> returns;
  mutable ThreadPool pool;

  size_t addValue(const ir::Value* v) {
    slot[v] = values.size();
    values.push_back(v);
    constantOf.push_back(nullptr);
    return values.size() - 1;
  }

  // Evaluates every step; `keepAll` disables freeing (runAll).
  std::vector<Tensor> evaluate(const std::vector<Tensor>& args, bool keepAll) const {
    std::vector<Tensor> owned(values.size());
    std::vector<const Tensor*> view(constantOf);
    for (size_t i = 0; i < args.size(); ++i) {
      // Kernels read scales from the tensors' types: an argument given without them (or with
      // others) takes the declared type.
      if (args[i].type == values[i]->type) {
        view[i] = &args[i];
      } else {
        owned[i] = Tensor(values[i]->type, args[i].bytes);
        view[i] = &owned[i];
      }
    }
    std::vector<const Tensor*> in;
    for (const Step& s : steps) {
      if (s.kind == Kind::Constant) continue;
      in.clear();
      for (size_t i : s.inputs) in.push_back(view[i]);
      std::vector<Tensor> out;
      switch (s.kind) {
        case Kind::Float: out = evalFloat(*s.op, in); break;
        case Kind::IntReference: out = evalOpInt(*s.op, in); break;
        case Kind::IntOptimized: out = s.optimized->run(in, pool); break;
        case Kind::Constant: break;
      }
      if (out.size() != s.outputs.size())
        s.op->error("kernel produced " + std::to_string(out.size()) + " result(s) but the op has " +
                    std::to_string(s.outputs.size()));
      for (size_t r = 0; r < out.size(); ++r) {
        owned[s.outputs[r]] = std::move(out[r]);
        view[s.outputs[r]] = &owned[s.outputs[r]];
      }
      if (!keepAll)
        for (size_t i : s.release) {
          owned[i] = Tensor();
          view[i] = nullptr;
        }
    }
    if (keepAll) {
      for (size_t i = 0; i < values.size(); ++i)
        if (view[i] != &owned[i]) owned[i] = *view[i];
      return owned;
    }
    std::vector<Tensor> results;
    results.reserve(returns.size());
    for (size_t r = 0; r < returns.size(); ++r) {
      size_t i = returns[r];
      bool lastMention = true;
      for (size_t later = r + 1; later < returns.size(); ++later) lastMention &= returns[later] != i;
      if (view[i] == &owned[i] && lastMention)
        results.push_back(std::move(owned[i]));
      else
        results.push_back(*view[i]);
    }
    return results;
  }
};

Executor::Executor(const ir::Module& m, const std::string& function, ExecOptions opts)
    : m_(m), fn_(m.function(function)), opts_(opts) {
  if (!fn_) throw ir::Error("error: no function @" + function + " in module @" + m.name);
  impl_ = std::make_unique<Impl>(opts_.optimized ? opts_.threads : 1);
  Impl& im = *impl_;
  for (const auto& a : fn_->args) im.addValue(a.get());
  for (const auto& opPtr : fn_->ops) {
    const ir::Op& op = *opPtr;
    Impl::Step step;
    step.op = &op;
    for (const ir::Value* v : op.operands()) {
      auto it = im.slot.find(v);
      if (it == im.slot.end()) op.error("reads a value defined after it or outside @" + fn_->name);
      step.inputs.push_back(it->second);
    }
    for (const auto& r : op.results) step.outputs.push_back(im.addValue(r.get()));

    if (op.is("constant")) {
      step.kind = Impl::Kind::Constant;
      const ir::TensorType& t = op.result()->type;
      const ir::Blob& bytes = m.resource(op.attr("value").asResource().key);
      if (bytes.size() != t.byteSize())
        op.error("expected " + std::to_string(t.byteSize()) + " bytes of resource for " + t.str() + " but got " +
                 std::to_string(bytes.size()));
      im.constants.push_back(std::make_unique<Tensor>(t, bytes));
      im.constantOf[step.outputs[0]] = im.constants.back().get();
    } else if (allFloat(op)) {
      if (!hasFloatKernel(op)) op.error("has no float reference kernel");
      step.kind = Impl::Kind::Float;
    } else {
      if (opts_.optimized) {
        std::vector<const Tensor*> known;
        for (size_t i : step.inputs) known.push_back(im.constantOf[i]);
        step.optimized = makeOptimizedKernel(op, known);
      }
      if (step.optimized) {
        step.kind = Impl::Kind::IntOptimized;
      } else {
        if (!hasIntKernel(op)) op.error("has no integer kernel for its operand and result types");
        step.kind = Impl::Kind::IntReference;
      }
    }
    im.steps.push_back(std::move(step));
  }
  for (const ir::Value* v : fn_->returns()) {
    auto it = im.slot.find(v);
    if (it == im.slot.end()) throw ir::Error("error: @" + fn_->name + " returns a value it does not define");
    im.returns.push_back(it->second);
  }

  // Last use of every computed value: the last step reading it, or the step producing it when
  // nothing reads it. Returned values, arguments and constants are never freed.
  const size_t none = im.steps.size();
  std::vector<size_t> lastUse(im.values.size(), none);
  for (size_t s = 0; s < im.steps.size(); ++s) {
    for (size_t o : im.steps[s].outputs) lastUse[o] = s;
    for (size_t i : im.steps[s].inputs) lastUse[i] = s;
  }
  std::vector<bool> keep(im.values.size(), false);
  for (size_t i : im.returns) keep[i] = true;
  for (size_t i = 0; i < fn_->args.size(); ++i) keep[i] = true;
  for (size_t i = 0; i < im.values.size(); ++i)
    if (!keep[i] && !im.constantOf[i] && lastUse[i] != none) im.steps[lastUse[i]].release.push_back(i);
}

Executor::~Executor() = default;

namespace {

void checkArguments(const ir::Function& fn, const std::vector<Tensor>& args) {
  if (args.size() != fn.args.size())
    throw ir::Error("error: @" + fn.name + " takes " + std::to_string(fn.args.size()) + " argument(s) but got " +
                    std::to_string(args.size()));
  for (size_t i = 0; i < args.size(); ++i) {
    const ir::TensorType& want = fn.args[i]->type;
    const Tensor& got = args[i];
    if (got.type.elem != want.elem)
      throw ir::Error("error: " + argName(fn, i) + " expects element type " + ir::elemTypeName(want.elem) +
                      " but got " + ir::elemTypeName(got.type.elem));
    if (got.type.shape != want.shape)
      throw ir::Error("error: " + argName(fn, i) + " expects shape [" + ir::shapeStr(want.shape) + "] but got [" +
                      ir::shapeStr(got.type.shape) + "]");
    if (got.bytes.size() != want.byteSize())
      throw ir::Error("error: " + argName(fn, i) + " expects " + std::to_string(want.byteSize()) +
                      " bytes of data but got " + std::to_string(got.bytes.size()));
  }
}

}  // namespace

std::vector<Tensor> Executor::run(const std::vector<Tensor>& args) const {
  checkArguments(*fn_, args);
  return impl_->evaluate(args, false);
}

std::map<const ir::Value*, Tensor> Executor::runAll(const std::vector<Tensor>& args) const {
  checkArguments(*fn_, args);
  std::vector<Tensor> all = impl_->evaluate(args, true);
  std::map<const ir::Value*, Tensor> out;
  for (size_t i = 0; i < all.size(); ++i) out.emplace(impl_->values[i], std::move(all[i]));
  return out;
}

}  // namespace hbdk::exec
