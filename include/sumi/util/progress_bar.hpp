#pragma once
// A tqdm-like progress bar for epochs and batches:
//   epoch 3:  45%|█████▍      | 450/1000 [00:12<00:15, 36.50it/s, loss=0.0213]
// On a terminal it redraws one line in place (\r) at most ~10 times a second, so it costs nothing next to a
// training step. When the stream is a file or pipe (logs, CI) redrawing would leave garbage, so it prints a
// plain line at every 10% (and at least every 30 s) plus a final line on close().
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "sumi/util/string_printf.hpp"

namespace sumi::util {

struct ProgressBarOptions {
  std::ostream* out = &std::cerr;
  bool quiet = false;                    // print nothing at all
  std::optional<bool> terminal{};        // redraw in place? unset: isatty() for std::cout/cerr/clog, else no
  double redraw_interval_seconds = 0.1;  // terminal mode: minimum time between redraws
  double log_percent_step = 10.0;        // plain mode: a line each time progress crosses a multiple of this
  double log_interval_seconds = 30.0;    // plain mode: and a line at least this often
  int columns = 0;                       // terminal line width; 0 asks the terminal (80 if it cannot tell)
  std::string unit = "it";
  int postfix_precision = 4;  // significant digits of floating-point postfix values
};

class ProgressBar {
 public:
  using Clock = std::chrono::steady_clock;

  // `total` <= 0 means unknown: the bar then shows the count and rate without percentage or ETA.
  explicit ProgressBar(int64_t total, std::string description = "", ProgressBarOptions options = {})
      : total_(total),
        description_(std::move(description)),
        options_(std::move(options)),
        start_(Clock::now()) {
    if (!options_.out) options_.quiet = true;
    terminal_ = options_.terminal ? *options_.terminal : stream_is_terminal(options_.out);
    if (!options_.quiet && terminal_) draw(Clock::now());
  }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  ~ProgressBar() { close(); }

  // Advances by `increment` and prints if due.
  void update(int64_t increment = 1) {
    count_ += increment;
    if (options_.quiet || closed_) return;
    const Clock::time_point now = Clock::now();
    if (terminal_) {
      if (seconds(last_draw_, now) >= options_.redraw_interval_seconds) draw(now);
      return;
    }
    bool due = seconds(last_draw_, now) >= options_.log_interval_seconds;
    if (total_ > 0 && options_.log_percent_step > 0) {
      const auto step = static_cast<int64_t>(
          std::floor(100.0 * double(count_) / double(total_) / options_.log_percent_step));
      if (step > last_logged_step_) {
        last_logged_step_ = step;
        due = true;
      }
    }
    // The line for the finished state is close()'s, so it carries the last postfix exactly once.
    if (due && (total_ <= 0 || count_ < total_)) draw(now);
  }

  // Sets or replaces one key=value shown after the rate; keys keep their first-set order.
  template <class T>
  requires std::is_arithmetic_v<T>
  void set_postfix(std::string_view key, T value) {
    if constexpr (std::floating_point<T>) {
      set_postfix(key, std::string_view(string_printf("%.*g", options_.postfix_precision, double(value))));
    } else if constexpr (std::same_as<T, bool>) {
      set_postfix(key, std::string_view(value ? "true" : "false"));
    } else {
      set_postfix(key, std::string_view(std::to_string(value)));
    }
  }
  void set_postfix(std::string_view key, std::string_view text) {
    for (auto& [name, value] : postfix_)
      if (name == key) {
        value = std::string(text);
        return;
      }
    postfix_.emplace_back(std::string(key), std::string(text));
  }
  void set_postfix(std::string_view key, const char* text) { set_postfix(key, std::string_view(text)); }
  void clear_postfix() { postfix_.clear(); }

  void set_description(std::string description) { description_ = std::move(description); }

  // Prints `text` (whole lines) to `stream` above the bar, as tqdm.write does: on a terminal the bar's line
  // is cleared first and drawn again after, so the text does not land on it.
  void write(std::string_view text, std::FILE* stream = stdout) {
    const bool live = terminal_ && !options_.quiet && !closed_;
    if (live) {
      *options_.out << '\r' << std::string(last_length_, ' ') << '\r';
      options_.out->flush();
      last_length_ = 0;
    }
    std::fwrite(text.data(), 1, text.size(), stream);
    std::fflush(stream);
    if (live) draw(Clock::now());
  }

  // Prints the final line (once; the destructor calls it too). Further updates are counted but not shown.
  void close() {
    if (closed_) return;
    closed_ = true;
    end_ = Clock::now();
    if (options_.quiet) return;
    draw(end_);
    if (terminal_) *options_.out << '\n';  // plain lines end with one already
    options_.out->flush();
  }

  int64_t count() const { return count_; }
  int64_t total() const { return total_; }
  double elapsed_seconds() const { return seconds(start_, closed_ ? end_ : Clock::now()); }

  // The status line for the current state; `bar_width` characters of bar (0: no bar).
  std::string render(double elapsed, int bar_width) const {
    std::string line = description_.empty() ? "" : description_ + ": ";
    const double rate = elapsed > 0 && count_ > 0 ? double(count_) / elapsed : 0.0;
    std::string times = "[" + format_duration(elapsed);
    if (total_ > 0) {
      const double fraction = std::clamp(double(count_) / double(total_), 0.0, 1.0);
      line += pad_left(std::to_string(int(fraction * 100.0)), 3) + "%";
      if (bar_width > 0) line += "|" + bar(fraction, bar_width) + "|";
      line += " " + std::to_string(count_) + "/" + std::to_string(total_) + " ";
      times += "<" + (rate > 0 ? format_duration(double(std::max<int64_t>(total_ - count_, 0)) / rate) : "?");
    } else {
      line += std::to_string(count_) + options_.unit + " ";
    }
    times += ", " + format_rate(rate);
    for (const auto& [key, value] : postfix_) times += ", " + key + "=" + value;
    return line + times + "]";
  }

  // "MM:SS", or "H:MM:SS" from an hour on; "?" for a time too long to mean anything (an estimate from a
  // rate near zero) or not a number.
  static std::string format_duration(double seconds) {
    if (!(seconds < 1e9)) return "?";
    const auto total = static_cast<int64_t>(std::max(0.0, seconds));
    if (total >= 3600)
      return string_printf("%lld:%02d:%02d", static_cast<long long>(total / 3600), int(total / 60 % 60),
                           int(total % 60));
    return string_printf("%02d:%02d", int(total / 60), int(total % 60));
  }

 private:
  static double seconds(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
  }

  static int stream_fd(const std::ostream* out) {
    if (out == &std::cout) return STDOUT_FILENO;
    if (out == &std::cerr || out == &std::clog) return STDERR_FILENO;
    return -1;
  }
  static bool stream_is_terminal(const std::ostream* out) {
    const int fd = stream_fd(out);
    return fd >= 0 && ::isatty(fd) == 1;
  }
  int terminal_columns() const {
    if (options_.columns > 0) return options_.columns;
    winsize size{};
    const int fd = stream_fd(options_.out);
    if (fd >= 0 && ::ioctl(fd, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
    return 80;
  }

  static std::string pad_left(std::string text, std::size_t width) {
    return text.size() >= width ? text : std::string(width - text.size(), ' ') + text;
  }

  std::string format_rate(double rate) const {
    if (rate <= 0) return "?" + options_.unit + "/s";
    if (rate < 1.0) return string_printf("%.2fs/%s", 1.0 / rate, options_.unit.c_str());
    return string_printf("%.2f%s/s", rate, options_.unit.c_str());
  }

  // Terminal: Unicode eighth blocks for smooth motion. Plain logs: ASCII, safe for any viewer.
  std::string bar(double fraction, int width) const {
    std::string text;
    if (terminal_) {
      static constexpr const char* kPartial[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
      const auto eighths = static_cast<int64_t>(fraction * width * 8);
      const int64_t full = eighths / 8;
      for (int64_t i = 0; i < full; ++i) text += "█";
      int64_t used = full;
      if (full < width) {
        text += kPartial[eighths % 8];
        used += eighths % 8 ? 1 : 0;
      }
      text += std::string(static_cast<std::size_t>(width - used), ' ');
    } else {
      const auto full = static_cast<int>(fraction * width);
      text = std::string(std::size_t(full), '#') + std::string(std::size_t(width - full), ' ');
    }
    return text;
  }

  static bool starts_character(char ch) { return (static_cast<unsigned char>(ch) & 0xC0) != 0x80; }

  // Characters on screen (UTF-8 continuation bytes take no column).
  static std::size_t visible_length(std::string_view text) {
    return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), starts_character));
  }

  // The first `columns` characters on screen of `text`.
  static std::string cut_to_columns(std::string text, std::size_t columns) {
    std::size_t seen = 0;
    for (std::size_t i = 0; i < text.size(); ++i)
      if (starts_character(text[i]) && seen++ == columns) {
        text.resize(i);
        break;
      }
    return text;
  }

  void draw(Clock::time_point now) {
    last_draw_ = now;
    const double elapsed = seconds(start_, now);
    std::ostream& out = *options_.out;
    if (!terminal_) {
      out << render(elapsed, total_ > 0 ? 20 : 0) << '\n';
      out.flush();
      return;
    }
    // The bar takes whatever the terminal width leaves, and a line too long even without it is cut, so the
    // line never wraps (a wrapped line cannot be redrawn with \r).
    const int columns = terminal_columns();
    const auto rest = static_cast<int>(visible_length(render(elapsed, 0)));
    const int bar_width = total_ > 0 ? std::clamp(columns - 1 - rest - 2, 0, 60) : 0;
    std::string line = cut_to_columns(render(elapsed, bar_width >= 4 ? bar_width : 0),
                                      std::size_t(std::max(columns - 1, 1)));
    const std::size_t length = visible_length(line);
    if (length < last_length_) line += std::string(last_length_ - length, ' ');  // erase the longer old line
    last_length_ = length;
    out << '\r' << line;
    out.flush();
  }

  int64_t total_;
  int64_t count_ = 0;
  std::string description_;
  ProgressBarOptions options_;
  std::vector<std::pair<std::string, std::string>> postfix_;
  bool terminal_ = false;
  bool closed_ = false;
  Clock::time_point start_, end_, last_draw_{start_};
  int64_t last_logged_step_ = 0;
  std::size_t last_length_ = 0;
};

}  // namespace sumi::util
