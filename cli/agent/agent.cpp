#include "agent/agent.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "dmscore/http/api_client.hpp"
#include "dmscore/migrations.hpp"

namespace dmsctl::agent {

namespace json = boost::json;
using dmscore::Code;
using dmscore::Result;
using dmscore::Status;

namespace {

using Clock = std::chrono::steady_clock;

// The Status of an error answer: the native body's {code, message}, SMS's {error_code,
// error_msg}, or one made from the HTTP status.
Status status_of(const dmscore::http::ClientResponse& r) {
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (!ec && v.is_object()) {
    const auto& o = v.as_object();
    const auto* code = o.if_contains("code");
    const auto* msg = o.if_contains("message");
    if (code && code->is_int64() && code->as_int64() > 0 && code->as_int64() <= 16 && msg &&
        msg->is_string())
      return Status(static_cast<Code>(code->as_int64()), std::string(msg->as_string()));
    if (const auto* m = o.if_contains("error_msg"); m && m->is_string()) {
      const Code c = r.status == 401   ? Code::kUnauthenticated
                     : r.status == 403 ? Code::kPermissionDenied
                     : r.status == 404 ? Code::kNotFound
                     : r.status >= 500 ? Code::kUnavailable
                                       : Code::kInvalidArgument;
      return Status(c, std::string(m->as_string()));
    }
  }
  const Code c = r.status == 401   ? Code::kUnauthenticated
                 : r.status == 403 ? Code::kPermissionDenied
                 : r.status == 404 ? Code::kNotFound
                 : r.status == 409 ? Code::kAborted
                 : r.status == 429 ? Code::kResourceExhausted
                 : r.status >= 500 ? Code::kUnavailable
                                   : Code::kInvalidArgument;
  return Status(c, "HTTP " + std::to_string(r.status));
}

class Api {
 public:
  static Result<Api> make(const AgentOptions& o) {
    auto c = dmscore::http::Client::create(o.client);
    if (!c.ok()) return c.status();
    if (!o.token.empty()) (*c)->set_header("Authorization", "Bearer " + o.token);
    Api a;
    a.client_ = std::shared_ptr<dmscore::http::Client>(std::move(c).value());
    return a;
  }

  Result<dmscore::http::ClientResponse> raw(std::string_view method, const std::string& target,
                                            std::string_view body = {},
                                            const char* content_type = nullptr) {
    dmscore::http::Headers h;
    if (content_type) h.emplace_back("Content-Type", content_type);
    auto r = client_->request(method, target, body, h);
    if (!r.ok()) return r.status();
    if (r->status < 200 || r->status >= 300) return status_of(*r);
    return r;
  }

  Result<json::value> call(std::string_view method, const std::string& target,
                           const json::value& body = nullptr) {
    auto r = raw(method, target, body.is_null() ? std::string() : json::serialize(body));
    if (!r.ok()) return r.status();
    if (r->body.empty()) return json::value(json::object());
    boost::system::error_code ec;
    json::value v = json::parse(r->body, ec);
    if (ec) return Status::Unavailable(target + ": the answer is not JSON");
    return v;
  }

 private:
  std::shared_ptr<dmscore::http::Client> client_;
};

std::string text(const json::value& v, const char* key) {
  if (const auto* o = v.if_object())
    if (const auto* f = o->if_contains(key); f && f->is_string())
      return std::string(f->as_string());
  return {};
}

std::uint64_t number(const json::value& v, const char* key) {
  if (const auto* o = v.if_object())
    if (const auto* f = o->if_contains(key)) {
      if (f->is_string()) return std::strtoull(std::string(f->as_string()).c_str(), nullptr, 10);
      if (f->is_int64()) return static_cast<std::uint64_t>(f->as_int64());
      if (f->is_uint64()) return f->as_uint64();
    }
  return 0;
}

std::string human(std::uint64_t bytes) {
  char buf[32];
  if (bytes >= (1ull << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1ull << 30));
  else
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1ull << 20));
  return buf;
}

// Runs `command` through /bin/sh with a minimal environment and the signals the agent blocks
// unblocked; its exit status. The hook is killed (SIGTERM, then SIGKILL) when the agent is asked
// to stop or `timeout` passes.
Status run_hook(const std::string& command, std::chrono::milliseconds timeout,
                const std::atomic<bool>* stop) {
  pid_t pid = ::fork();
  if (pid < 0) return Status::Internal("fork: " + std::string(std::strerror(errno)));
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int fd = 3; fd < 1024; ++fd) ::close(fd);
    const char* env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                         "LANG=C", nullptr};
    ::execle("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr), env);
    ::_exit(127);
  }
  const auto deadline = Clock::now() + timeout;
  int st = 0;
  bool killed = false;
  for (;;) {
    const pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR)
      return Status::Internal("waitpid: " + std::string(std::strerror(errno)));
    if (!killed && ((stop && stop->load()) || Clock::now() > deadline)) {
      ::kill(pid, SIGTERM);
      killed = true;
    } else if (killed && Clock::now() > deadline + std::chrono::seconds(5)) {
      ::kill(pid, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return Status::Ok();
  if (killed && !(stop && stop->load()))
    return Status::DeadlineExceeded("the pre-cutover hook did not finish within " +
                                    std::to_string(timeout.count() / 1000) + " s");
  return Status::FailedPrecondition("the pre-cutover hook " +
                                    (WIFEXITED(st)
                                         ? "exited with " + std::to_string(WEXITSTATUS(st))
                                         : "was killed by signal " + std::to_string(WTERMSIG(st))));
}

bool all_zero(const char* p, std::size_t n) {
  static const char zeros[4096] = {};
  while (n > 0) {
    const std::size_t k = std::min(n, sizeof zeros);
    if (std::memcmp(p, zeros, k) != 0) return false;
    p += k;
    n -= k;
  }
  return true;
}

// The chunks of [from, size) that may hold data, as SEEK_DATA/SEEK_HOLE tell (a device or a file
// system that cannot tell answers everything): a flag per chunk from `from`'s.
std::vector<bool> data_chunks(int fd, std::uint64_t size, std::uint64_t chunk, std::uint64_t from) {
  const std::uint64_t first = from / chunk, n = (size + chunk - 1) / chunk;
  std::vector<bool> out(n - std::min(first, n), false);
  off_t pos = static_cast<off_t>(first * chunk);
  while (static_cast<std::uint64_t>(pos) < size) {
    off_t d = ::lseek(fd, pos, SEEK_DATA);
    if (d < 0) {
      if (errno == ENXIO) break;  // no data past pos
      std::fill(out.begin(), out.end(), true);
      return out;
    }
    off_t h = ::lseek(fd, d, SEEK_HOLE);
    if (h < 0) h = static_cast<off_t>(size);
    const std::uint64_t a = static_cast<std::uint64_t>(d) / chunk;
    const std::uint64_t b =
        (std::min<std::uint64_t>(static_cast<std::uint64_t>(h), size) + chunk - 1) / chunk;
    for (std::uint64_t c = std::max(a, first); c < b && c < n; ++c) out[c - first] = true;
    pos = h;
  }
  return out;
}

// One batch to send: [from, to) and the frames of its changed chunks.
struct Batch {
  std::uint64_t from = 0, to = 0;
  std::string body;
  std::uint64_t payload = 0;
};

// Prepares batches on a thread of its own, two ahead of the sender.
class BatchReader {
 public:
  BatchReader(int fd, std::uint64_t size, std::uint64_t chunk, std::uint64_t batch,
              std::uint64_t from, std::string sums, std::atomic<bool>* stop)
      : fd_(fd),
        size_(size),
        chunk_(chunk),
        batch_(batch),
        from_(from),
        sums_(std::move(sums)),
        stop_(stop) {
    thread_ = std::thread([this] { run(); });
  }
  ~BatchReader() {
    {
      std::lock_guard lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  // The next batch; nullopt at the end; an error when the disk cannot be read.
  Result<std::optional<Batch>> next() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !ready_.empty() || done_; });
    if (!ready_.empty()) {
      Batch w = std::move(ready_.front());
      ready_.pop_front();
      cv_.notify_all();
      return std::optional<Batch>(std::move(w));
    }
    if (!error_.ok()) return error_;
    return std::optional<Batch>();
  }

 private:
  void run() {
    const std::vector<bool> data = data_chunks(fd_, size_, chunk_, from_);
    const std::string zero_sum(16, '\0');
    std::string buf(chunk_, '\0');
    Batch w;
    w.from = from_;
    const std::uint64_t first = from_ / chunk_;
    // Read-ahead over the data chunks: the kernel's own sees no sequence across holes, so the
    // next kAhead data chunks are asked for ahead (the disk works on several at once).
    constexpr std::uint64_t kAhead = 32;
    std::uint64_t hinted = first, hinted_data = 0;
    auto hint = [&](std::uint64_t c) {
      while (hinted < first + data.size() && hinted_data < c + kAhead) {
        if (data[hinted - first]) {
          ::posix_fadvise(fd_, static_cast<off_t>(hinted * chunk_), static_cast<off_t>(chunk_),
                          POSIX_FADV_WILLNEED);
          ++hinted_data;
        }
        ++hinted;
      }
    };
    std::uint64_t data_seen = 0;
    for (std::uint64_t off = from_; off < size_; off += chunk_) {
      if (stop_ && stop_->load()) break;
      const std::uint64_t c = off / chunk_;
      if (data[c - first]) hint(data_seen++);
      const std::uint32_t len = static_cast<std::uint32_t>(std::min(chunk_, size_ - off));
      const std::string_view held(sums_.data() + c * 16, 16);
      bool zero = true;
      std::string sum;
      if (data[c - first]) {
        std::size_t got = 0;
        while (got < len) {
          ssize_t n = ::pread(fd_, buf.data() + got, len - got, static_cast<off_t>(off + got));
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) {
            finish(Status::Unavailable("reading at " + std::to_string(off + got) + ": " +
                                       (n == 0 ? "the disk ended early" : std::strerror(errno))));
            return;
          }
          got += static_cast<std::size_t>(n);
        }
        zero = all_zero(buf.data(), len);
        if (!zero) sum = dmscore::chunk_checksum(std::string_view(buf.data(), len));
      }
      if (zero) {
        if (held != zero_sum) {
          w.body += dmscore::chunk_header(off, len, dmscore::kChunkZero, zero_sum);
        }
      } else if (held != sum) {
        w.body += dmscore::chunk_header(off, len, 0, sum);
        w.body.append(buf.data(), len);
        w.payload += len;
      }
      const std::uint64_t end = off + len;
      // A batch closes when its chunks fill it, or after a long unchanged stretch, so that
      // the acknowledged offset keeps moving.
      if (w.payload + chunk_ > batch_ || end - w.from >= (1ull << 30) || end == size_) {
        w.to = end;
        if (!push(std::move(w))) return;
        w = Batch();
        w.from = end;
      }
    }
    finish(Status::Ok());
  }

  bool push(Batch w) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return ready_.size() < 2 || quit_; });
    if (quit_) return false;
    ready_.push_back(std::move(w));
    cv_.notify_all();
    return true;
  }

  void finish(Status s) {
    std::lock_guard lock(mu_);
    error_ = s;
    done_ = true;
    cv_.notify_all();
  }

  int fd_;
  std::uint64_t size_, chunk_, batch_, from_;
  std::string sums_;
  std::atomic<bool>* stop_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> ready_;
  bool done_ = false, quit_ = false;
  Status error_;
  std::thread thread_;
};

class Agent {
 public:
  Agent(const AgentOptions& o, const std::function<void(const std::string&)>& log)
      : o_(o), log_(log) {}

  int run() {
    auto api = Api::make(o_);
    if (!api.ok()) {
      log_("dmsctl agent: " + api.status().message());
      return 2;
    }
    api_ = std::move(api).value();
    auto facts = collect_facts(o_.facts);
    if (!facts.ok()) {
      log_("dmsctl agent: " + facts.status().message());
      return 2;
    }
    facts_ = std::move(facts).value();
    for (;;) {
      Status s = report();
      if (s.ok()) break;
      if (s.code() == Code::kUnauthenticated || s.code() == Code::kPermissionDenied) {
        log_("dmsctl agent: the service refuses this agent: " + s.message());
        return 3;
      }
      if (s.code() == Code::kInvalidArgument) {
        log_("dmsctl agent: the service refuses the report: " + s.message());
        return 1;
      }
      log_("dmsctl agent: cannot register (" + s.message() + "); trying again");
      if (!pause(2000)) return 0;
    }
    log_("dmsctl agent: registered as source " + id_);
    auto last_report = Clock::now();
    while (!stopping()) {
      if (Clock::now() - last_report > std::chrono::milliseconds(o_.report_every_ms)) {
        last_report = Clock::now();
        if (auto f = collect_facts(o_.facts); f.ok() && f->report != facts_.report) {
          facts_ = std::move(f).value();
          if (Status s = report(); !s.ok()) log_("dmsctl agent: report failed: " + s.message());
        }
      }
      auto cmd = api_.call("GET", "/v3/sources/" + id_ + "/command");
      if (!cmd.ok()) {
        if (cmd.status().code() == Code::kNotFound) {
          // The source record was deleted: register again, as SMS's agent does on restart.
          (void)report();
        } else {
          log_("dmsctl agent: poll failed: " + cmd.status().message());
        }
        if (!pause(o_.poll_ms)) break;
        continue;
      }
      const std::string name = text(*cmd, "command_name");
      std::string task;
      if (const auto* p = cmd->as_object().if_contains("command_param")) task = text(*p, "task_id");
      if ((name == "START" || name == "SYNC") && !task.empty()) {
        Status s = carry_out(name, task);
        if (!s.ok() && !stopping()) {
          // (What the service should know of, carry_out reported already.)
          log_("dmsctl agent: " + name + " failed: " + s.message());
          if (!pause(o_.poll_ms)) break;
        }
        continue;  // poll again at once: the next pass may be asked already
      }
      if (name == "STOP" && acked_stop_ != task) {
        acked_stop_ = task;
        (void)result("STOP", true, "stopped");
      }
      if (o_.exit_after_cutover && !streamed_.empty() && done_with(streamed_)) return 0;
      if (!pause(o_.poll_ms)) break;
    }
    return 0;
  }

 private:
  bool stopping() const { return o_.stop && o_.stop->load(); }

  bool pause(int ms) {
    const auto until = Clock::now() + std::chrono::milliseconds(ms);
    while (Clock::now() < until) {
      if (stopping()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(ms, 50)));
    }
    return !stopping();
  }

  Status report() {
    json::object body = facts_.report;
    if (!id_.empty()) body["id"] = id_;
    auto r = api_.call("POST", "/v3/sources", body);
    if (!r.ok()) return r.status();
    id_ = text(*r, "id");
    if (id_.empty()) return Status::Unavailable("the registration answer has no id");
    return Status::Ok();
  }

  Status result(const std::string& name, bool ok, const std::string& msg) {
    return api_
        .call("POST", "/v3/sources/" + id_ + "/command_result",
              json::object{{"command_name", name},
                           {"result", ok ? "success" : "fail"},
                           {"result_detail", json::object{{"msg", msg}}}})
        .status();
  }

  bool done_with(const std::string& task) {
    auto m = api_.call("GET", "/api/v1/source-servers/" + id_ + "/migrations/" + task);
    if (!m.ok()) return false;
    const json::value& mig = m->as_object().at("migration");
    return text(mig, "state") == "MIGRATE_SUCCESS";
  }

  // START or SYNC of migration `task`: every disk's current pass.
  Status carry_out(const std::string& name, const std::string& task) {
    const std::string base = "/api/v1/source-servers/" + id_ + "/migrations/" + task;
    auto m = api_.call("GET", base);
    if (!m.ok()) return m.status();
    const json::value mig = m->as_object().at("migration");
    const std::int64_t pass = static_cast<std::int64_t>(number(mig, "pass"));
    const bool cutover = number(mig, "cutoverPass") != 0 &&
                         number(mig, "cutoverPass") == static_cast<std::uint64_t>(pass);
    streamed_ = task;
    if (cutover && !o_.pre_cutover_hook.empty() && hooked_ != task) {
      log_("dmsctl agent: running the pre-cutover hook");
      if (Status s =
              run_hook(o_.pre_cutover_hook, std::chrono::milliseconds(o_.hook_timeout_ms), o_.stop);
          !s.ok()) {
        (void)result(name, false, s.message());
        return Status::FailedPrecondition(s.message());
      }
      hooked_ = task;
    }
    const json::array disks = mig.as_object().at("disks").as_array();
    for (const auto& d : disks) {
      const std::string disk = text(d, "name");
      const CollectedDisk* cd = nullptr;
      for (const auto& x : facts_.disks)
        if (x.name == disk) cd = &x;
      if (!cd) {
        (void)result(name, false, "this machine has no disk " + disk);
        return Status::FailedPrecondition("no disk " + disk + " here");
      }
      for (int attempt = 0;; ++attempt) {
        Status s = stream_disk(base + "/disks/" + dmscore::http::url_encode(disk), *cd, pass);
        if (s.ok()) break;
        if (stopping()) return s;
        if (s.code() == Code::kFailedPrecondition || s.code() == Code::kNotFound) return s;
        // What trying again cannot mend (the disk unreadable, a refused token or request) is
        // reported to the service, which puts the migration in error.
        if (s.code() == Code::kDataLoss || s.code() == Code::kInvalidArgument ||
            s.code() == Code::kPermissionDenied || s.code() == Code::kUnauthenticated) {
          (void)result(name, false, "disk " + disk + ": " + s.message());
          return s;
        }
        // The service restarting, a session taken over, a batch refused: reopen and resume.
        log_("dmsctl agent: disk " + disk + ": " + s.message() + "; resuming");
        if (!pause(std::min(200 * (1 << std::min(attempt, 4)), 3000))) return s;
      }
    }
    (void)result(name, true, "pass " + std::to_string(pass) + " sent");
    return Status::Ok();
  }

  Status stream_disk(const std::string& target, const CollectedDisk& disk, std::int64_t pass) {
    auto sess = api_.call("POST", target + "/session", json::object());
    if (!sess.ok()) return sess.status();
    if (static_cast<std::int64_t>(number(*sess, "pass")) != pass)
      return Status::Aborted("the pass changed");
    if (sess->as_object().at("done").as_bool()) return Status::Ok();
    const std::string session = text(*sess, "session");
    const std::uint64_t size = number(*sess, "size"), chunk = number(*sess, "chunkBytes"),
                        batch = number(*sess, "batchBytes"),
                        rate = number(*sess, "rateLimitBytesPerSec");
    std::uint64_t acked = number(*sess, "ackedOffset");
    if (chunk == 0 || batch < chunk) return Status::Unavailable("bad session answer");
    auto sums = api_.raw("GET", target + "/checksums");
    if (!sums.ok()) return sums.status();
    if (sums->body.size() != (size + chunk - 1) / chunk * 16)
      return Status::Unavailable("the checksums do not cover the disk");
    const int fd = ::open(disk.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return Status::FailedPrecondition(disk.path + ": " + std::string(std::strerror(errno)));
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{fd};
    // A disk shorter than the migration's would read as zeros past its end (holes).
    const off_t end = ::lseek(fd, 0, SEEK_END);
    if (end < 0 || static_cast<std::uint64_t>(end) < size)
      return Status::DataLoss(disk.path +
                              ": the disk ended early: " + std::to_string(end < 0 ? 0 : end) +
                              " bytes, the migration has " + std::to_string(size));
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    const auto t0 = Clock::now();
    std::uint64_t sent = 0;
    auto last_log = t0;
    BatchReader reader(fd, size, chunk, batch, acked, std::move(sums->body), o_.stop);
    for (;;) {
      auto w = reader.next();
      if (!w.ok()) return Status::DataLoss(disk.path + ": " + w.status().message());
      if (!*w) break;
      if (stopping()) return Status::Cancelled("stopping");
      const std::string q = "/data?session=" + session + "&from=" + std::to_string((*w)->from) +
                            "&to=" + std::to_string((*w)->to);
      auto r = api_.raw("POST", target + q, (*w)->body, "application/octet-stream");
      if (!r.ok()) return r.status();
      boost::system::error_code ec;
      json::value ack = json::parse(r->body, ec);
      if (ec || number(ack, "receivedOffset") != (*w)->to)
        return Status::Unavailable("the batch was not received");
      acked = number(ack, "ackedOffset");
      sent += (*w)->payload;
      if (rate > 0) {
        // Hold the pace: the bytes sent so far may not have taken less than sent / rate.
        const double due_s = static_cast<double>(sent) / static_cast<double>(rate);
        const auto due = t0 + std::chrono::microseconds(static_cast<std::int64_t>(due_s * 1e6));
        while (Clock::now() < due && !stopping())
          std::this_thread::sleep_for(
              std::min<Clock::duration>(due - Clock::now(), std::chrono::milliseconds(50)));
      }
      const auto now = Clock::now();
      if (o_.progress && (now - last_log > std::chrono::seconds(2) || (*w)->to == size)) {
        last_log = now;
        const double s = std::chrono::duration<double>(now - t0).count();
        log_("dmsctl agent: disk " + disk.name + " pass " + std::to_string(pass) + ": " +
             human((*w)->to) + " of " + human(size) + ", " + human(sent) + " sent" +
             (s > 0 ? ", " + human(static_cast<std::uint64_t>(sent / s)) + "/s" : ""));
      }
      if (text(ack, "command") == "STOP") return Status::FailedPrecondition("stopped");
    }
    if (acked != size) return Status::Cancelled("stopping");  // the last batch answers durable
    return Status::Ok();
  }

  const AgentOptions& o_;
  const std::function<void(const std::string&)>& log_;
  Api api_;
  Facts facts_;
  std::string id_, acked_stop_, hooked_, streamed_;
};

}  // namespace

int run_agent(const AgentOptions& options, const std::function<void(const std::string&)>& log) {
  try {
    return Agent(options, log).run();
  } catch (const std::exception& e) {
    // An answer of a shape the agent does not know (json .at()): a service of another version.
    log(std::string("dmsctl agent: unexpected answer from the service: ") + e.what());
    return 1;
  }
}

}  // namespace dmsctl::agent
