// A small fixed pool of worker threads for the optimized kernels: one parallel loop at a time,
// the calling thread taking part. Built once per executor and reused by every run.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace hbdk::exec {

class ThreadPool {
 public:
  // `threads` counts the caller too: 1 runs everything inline; 0 means hardware_concurrency().
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls task(i) once for every i in [0, count), spread over the threads, and returns when all
  // are done. The first exception a task throws is rethrown here (the other tasks still finish).
  // Calls from several threads at once are serialized.
  void parallelFor(int64_t count, const std::function<void(int64_t)>& task);

 private:
  void workerLoop();
  void drain();  // claims and runs tasks of the current loop until none is left

  std::vector<std::thread> workers_;
  std::mutex callMutex_;  // one parallelFor at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int64_t)>* task_ = nullptr;
  int64_t count_ = 0;
  int64_t next_ = 0;      // next task index to claim (under mutex_)
  int64_t finished_ = 0;  // tasks completed (under mutex_)
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace hbdk::exec
