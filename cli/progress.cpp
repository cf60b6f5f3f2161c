#include "progress.hpp"

#include <fmt/core.h>
#include <unistd.h>

#include "output.hpp"

namespace dmsctl {

namespace json = boost::json;

namespace {

std::string field(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  if (!v || v->is_null()) return "";
  if (v->is_string()) return std::string(v->as_string());
  return json::serialize(*v);
}

double number(const json::object& o, const char* key) {
  std::string s = field(o, key);
  try {
    return s.empty() ? 0 : std::stod(s);
  } catch (...) {
    return 0;
  }
}

std::string duration(double seconds) {
  long s = static_cast<long>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

}  // namespace

bool Progress::is_terminal(std::FILE* f) { return ::isatty(::fileno(f)) == 1; }

Progress::Progress(std::string title, bool enabled, std::FILE* out)
    : title_(std::move(title)), enabled_(enabled), out_(out), tty_(is_terminal(out)) {}

std::string Progress::line(const json::object& w) const {
  std::string state = field(w, "state");
  const json::value* pv = w.if_contains("progress");
  json::object p = pv && pv->is_object() ? pv->as_object() : json::object();
  std::string out = fmt::format("{}: {} {:>3}%", title_, state, field(p, "percent"));
  double done = number(p, "bytesDone"), total = number(p, "bytesTotal"),
         rate = number(p, "bytesPerSecond");
  if (total > 0) out += fmt::format("  {} / {}", human_bytes(done), human_bytes(total));
  if (rate > 0) {
    out += fmt::format("  {}/s", human_bytes(rate));
    if (total > done) out += "  ETA " + duration((total - done) / rate);
  }
  std::string stage = field(p, "stage");
  if (!stage.empty()) out += "  (" + stage + ")";
  return out;
}

void Progress::update(const json::object& w) {
  if (!enabled_) return;
  if (tty_) {
    fmt::print(out_, "\r\033[K{}", line(w));
    std::fflush(out_);
    drawn_ = true;
    return;
  }
  const json::value* pv = w.if_contains("progress");
  int percent = 0;
  std::string stage;
  if (pv && pv->is_object()) {
    percent = static_cast<int>(number(pv->as_object(), "percent"));
    stage = field(pv->as_object(), "stage");
  }
  std::string state = field(w, "state");
  if (percent / 10 != last_decile_ || stage != last_stage_ || state != last_state_) {
    last_decile_ = percent / 10;
    last_stage_ = stage;
    last_state_ = state;
    fmt::print(out_, "{}\n", line(w));
    std::fflush(out_);
  }
}

void Progress::break_line() {
  if (drawn_) {
    fmt::print(out_, "\n");
    drawn_ = false;
  }
}

void Progress::finish(const json::object& w) {
  if (!enabled_) return;
  if (tty_ && drawn_) fmt::print(out_, "\r\033[K");
  drawn_ = false;
  std::string state = field(w, "state");
  if (state == "COMPLETED") {
    fmt::print(out_, "{}...done.\n", title_);
  } else {
    std::string msg = field(w, "msg");
    fmt::print(out_, "{}...{}: {}\n", title_, state == "CANCELLED" ? "cancelled" : "failed",
               msg.empty() ? state : msg);
  }
  std::fflush(out_);
}

}  // namespace dmsctl
