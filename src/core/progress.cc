#include "qforge/core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace qforge {

Progress::Progress(std::string label, size_t total)
    : label_(std::move(label)),
      total_(total),
      enabled_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  finish();
}

namespace {
constexpr auto kLogInterval = std::chrono::seconds(60);
}  // namespace

void Progress::update(size_t done) {
  done_ = done;
  const auto now = std::chrono::steady_clock::now();
  if (!enabled_) {
    if (now - last_draw_ < kLogInterval) return;
    last_draw_ = now;
    log_line();
    return;
  }
  if (now - last_draw_ < std::chrono::milliseconds(100) && done_ < total_) return;
  last_draw_ = now;
  draw(false);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_) {
    draw(true);
    std::fputc('\n', stderr);
  }
}

void Progress::log_line() {
  const double frac = total_ ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(stderr, "%s: %.1f%% (%zu/%zu) after %.0f s, about %.0f s left%s%s\n", label_.c_str(),
               100 * frac, done_, total_, secs, frac > 0 ? secs * (1 - frac) / frac : 0.0,
               note_.empty() ? "" : "; ", note_.c_str());
  std::fflush(stderr);
}

void Progress::draw(bool final) {
  constexpr int kWidth = 30;
  const double frac = total_ ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  const int filled = static_cast<int>(frac * kWidth);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double eta = frac > 0 ? secs * (1 - frac) / frac : 0;
  std::fprintf(stderr, "\r%s [", label_.c_str());
  for (int i = 0; i < kWidth; ++i) std::fputc(i < filled ? '#' : '.', stderr);
  std::fprintf(stderr, "] %5.1f%% %zu/%zu %.0fs%s%s %s\x1b[K", 100 * frac, done_, total_, secs,
               final ? "" : " eta ", final ? "" : std::to_string(static_cast<int>(eta)).c_str(),
               note_.c_str());
  std::fflush(stderr);
}

}  // namespace qforge
