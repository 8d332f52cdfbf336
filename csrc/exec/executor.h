// Runs a function of a module: float ops through the float reference kernels, integer ops
// through the optimized kernels where one exists (int8 conv, depthwise conv, matmul) and the
// integer reference kernels otherwise. This is "the board": its integer results are bit-exact.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "exec/tensor.h"
#include "ir/ir.h"

namespace hbdk::exec {

struct ExecOptions {
  bool optimized = true;  // false: reference kernels only (the oracle for the optimized ones)
  int threads = 0;        // 0: std::thread::hardware_concurrency()
};

class Executor {
 public:
  // The module must outlive the executor. Throws ir::Error when the function is missing or an op
  // has no kernel for its types (naming the op).
  Executor(const ir::Module& m, const std::string& function = "main", ExecOptions opts = {});
  ~Executor();

  const ir::Function& function() const { return *fn_; }
  // Arguments in order (types must match the function's argument types exactly, scales aside);
  // returns the function's results in order. Throws ir::Error naming the argument on mismatch.
  std::vector<Tensor> run(const std::vector<Tensor>& args) const;
  // Every value the function computes (arguments, op results), for calibration and debugging.
  std::map<const ir::Value*, Tensor> runAll(const std::vector<Tensor>& args) const;

 private:
  struct Impl;
  const ir::Module& m_;
  const ir::Function* fn_;
  ExecOptions opts_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hbdk::exec
