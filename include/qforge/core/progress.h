// Progress of long work on stderr: a bar redrawn in place on a terminal; in a log (stderr not a
// terminal) a plain line at most once a minute, so work shorter than that prints nothing there
// and a job of hours shows that it is alive and when it should end.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace qforge {

class Progress {
 public:
  Progress(std::string label, size_t total);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Sets the amount of work done so far (redraws at most ~10 times a second).
  void update(size_t done);
  void set_total(size_t total) { total_ = total; }
  // Appends free text after the bar (e.g. "ppl 35.6").
  void set_note(std::string note) { note_ = std::move(note); }
  void finish();

 private:
  void draw(bool final);
  void log_line();
  std::string label_;
  std::string note_;
  size_t total_;
  size_t done_ = 0;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace qforge
