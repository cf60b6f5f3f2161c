#pragma once
// Following a workflow on stderr while waiting for it.
//
// On a terminal one line is redrawn in place: percent, bytes, rate, ETA and stage; elsewhere a
// plain line is written when the stage changes or the percent crosses a multiple of 10. The
// last line is "<title>...done." or "<title>...failed: <reason>".

#include <boost/json.hpp>
#include <cstdio>
#include <string>

namespace dmsctl {

class Progress {
 public:
  // `enabled` false prints nothing at all (--no-progress).
  Progress(std::string title, bool enabled, std::FILE* out = stderr);

  // One {"workflow": ...} answer.
  void update(const boost::json::object& workflow);
  // The final line for a terminal workflow.
  void finish(const boost::json::object& workflow);
  // Ends a redrawn line so that other text can follow.
  void break_line();

  static bool is_terminal(std::FILE* f);

 private:
  std::string line(const boost::json::object& workflow) const;

  std::string title_;
  bool enabled_;
  std::FILE* out_;
  bool tty_;
  bool drawn_ = false;
  int last_decile_ = -1;
  std::string last_stage_, last_state_;
};

}  // namespace dmsctl
