#pragma once
// Lines for standard error, written in batches by one thread. A busy server's access log then
// costs one write(2) per batch instead of one per request; a line waits at most `interval`
// (or until 64 KiB are pending, or flush()). Lines still pending when the process is killed
// with SIGKILL are lost; the destructor writes them.

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace dmsctl {

class LogBuffer {
 public:
  explicit LogBuffer(std::chrono::milliseconds interval) : interval_(interval) {
    thread_ = std::thread([this] { run(); });
  }
  ~LogBuffer() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  LogBuffer(const LogBuffer&) = delete;
  LogBuffer& operator=(const LogBuffer&) = delete;

  // Appends `line` and a newline.
  void add(std::string_view line) {
    bool full;
    {
      std::lock_guard lock(mu_);
      pending_.append(line);
      pending_.push_back('\n');
      full = pending_.size() >= kFull;
    }
    if (full) cv_.notify_all();
  }

  // Writes what is pending now, before returning.
  void flush() {
    std::string out;
    {
      std::lock_guard lock(mu_);
      out.swap(pending_);
    }
    write_all(out);
  }

 private:
  static constexpr std::size_t kFull = 64 * 1024;

  void run() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait_for(lock, interval_, [&] { return stop_ || pending_.size() >= kFull; });
      std::string out;
      out.swap(pending_);
      const bool stopping = stop_;
      lock.unlock();
      write_all(out);
      if (stopping) return;
      lock.lock();
    }
  }

  static void write_all(const std::string& s) {
    std::size_t done = 0;
    while (done < s.size()) {
      ssize_t n = ::write(2, s.data() + done, s.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // standard error is gone: nothing better to do with the lines
      done += static_cast<std::size_t>(n);
    }
  }

  std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string pending_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace dmsctl
