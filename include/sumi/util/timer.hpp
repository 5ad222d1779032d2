#pragma once
// A steady-clock stopwatch: wall-clock durations that never jump when the system clock is adjusted.
#include <chrono>

namespace sumi::util {

class Timer {
 public:
  using Clock = std::chrono::steady_clock;

  Timer() { reset(); }

  // Restarts both the total and the lap measurement.
  void reset() { start_ = lap_start_ = Clock::now(); }

  // Seconds since construction or the last reset().
  double elapsed_seconds() const { return seconds_between(start_, Clock::now()); }
  double elapsed_milliseconds() const { return 1e3 * elapsed_seconds(); }

  // Seconds since the previous lap() (or reset()), and starts the next lap; the total keeps running.
  double lap() {
    const Clock::time_point now = Clock::now();
    const double seconds = seconds_between(lap_start_, now);
    lap_start_ = now;
    return seconds;
  }

 private:
  static double seconds_between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
  }

  Clock::time_point start_, lap_start_;
};

}  // namespace sumi::util
