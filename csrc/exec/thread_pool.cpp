// The executor's worker pool: workers sleep on a condition variable between loops and claim task
// indices one at a time, so uneven tasks balance themselves.
#include "exec/thread_pool.h"

namespace hbdk::exec {

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
  if (threads <= 0) threads = 1;
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { workerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::workerLoop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(mutex_);
      wake_.wait(lk, [this] { return stop_ || (task_ && next_ < count_); });
      if (stop_) return;
    }
    drain();
  }
}

void ThreadPool::drain() {
  for (;;) {
    int64_t i;
    const std::function<void(int64_t)>* task;
    {
      std::lock_guard<std::mutex> lk(mutex_);
      if (!task_ || next_ >= count_) return;
      i = next_++;
      task = task_;
    }
    try {
      (*task)(i);
    } catch (...) {
      std::lock_guard<std::mutex> lk(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    std::lock_guard<std::mutex> lk(mutex_);
    if (++finished_ == count_) done_.notify_all();
  }
}

void ThreadPool::parallelFor(int64_t count, const std::function<void(int64_t)>& task) {
  if (count <= 0) return;
  if (workers_.empty() || count == 1) {
    for (int64_t i = 0; i < count; ++i) task(i);
    return;
  }
  std::lock_guard<std::mutex> call(callMutex_);
  {
    std::lock_guard<std::mutex> lk(mutex_);
    task_ = &task;
    count_ = count;
    next_ = 0;
    finished_ = 0;
    error_ = nullptr;
  }
  wake_.notify_all();
  drain();
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lk(mutex_);
    done_.wait(lk, [this] { return finished_ == count_; });
    task_ = nullptr;
    error = error_;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace hbdk::exec
