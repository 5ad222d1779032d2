#pragma once
// A small command-line flag parser for examples and tools. Flags are registered with a type, a default and
// a help line; the usage text is generated from the registrations so it can never drift from the code.
// Bad user input throws CliError (a std::invalid_argument) whose message names the flag and the value.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <new>
#include <optional>
#include <ostream>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "sumi/util/number_text.hpp"

namespace sumi::util {

// A user error on the command line: unknown flag, missing or malformed value, or a failed check.
class CliError : public std::invalid_argument {
 public:
  CliError(std::string flag, const std::string& message)
      : std::invalid_argument(message), flag_(std::move(flag)) {}
  // The flag concerned ("--epochs"), or the stray argument itself for unknown flags.
  const std::string& flag() const { return flag_; }

 private:
  std::string flag_;
};

// What the caller should do after parse(): run normally, or exit with status 0 because --help was printed.
enum class CliStatus { run, exit_success };

namespace detail {

template <class T>
struct is_std_vector : std::false_type {};
template <class T>
struct is_std_vector<std::vector<T>> : std::true_type {};

template <class T>
concept CliScalar = std::same_as<T, int> || std::same_as<T, int64_t> || std::same_as<T, double> ||
    std::same_as<T, std::string>;

template <class T>
concept CliValue = CliScalar<T> || std::same_as<T, bool> ||
    (is_std_vector<T>::value&& CliScalar<typename T::value_type>);

template <class T>
struct cli_element {
  using type = T;
};
template <class T>
struct cli_element<std::vector<T>> {
  using type = T;
};

template <class T>
std::string cli_type_name() {
  if constexpr (std::same_as<T, int> || std::same_as<T, int64_t>)
    return "int";
  else if constexpr (std::same_as<T, double>)
    return "number";
  else if constexpr (std::same_as<T, std::string>)
    return "text";
  else if constexpr (std::same_as<T, bool>)
    return "";
  else
    return cli_type_name<typename T::value_type>() + ",...";
}

template <class T>
std::string format_cli_value(const T& value) {
  if constexpr (std::same_as<T, bool>)
    return value ? "on" : "off";
  else if constexpr (std::same_as<T, std::string>)
    return value;
  else if constexpr (std::same_as<T, double>)
    return format_round_trip(value);
  else if constexpr (std::integral<T>)
    return std::to_string(value);
  else {
    std::string joined;
    for (std::size_t i = 0; i < value.size(); ++i) {
      if (i > 0) joined += ',';
      joined += format_cli_value(value[i]);
    }
    return joined;
  }
}

// Parses one scalar; returns the reason on failure so the caller can name the flag.
template <class T>
std::optional<std::string> parse_cli_scalar(std::string_view text, T& out) {
  if constexpr (std::same_as<T, std::string>) {
    out = std::string(text);
    return std::nullopt;
  } else {
    NumberError error{};
    const std::optional<T> value = parse_number<T>(text, &error);
    if (!value)
      return error == NumberError::out_of_range
                 ? std::string("out of range")
                 : std::string("expected ") + (std::integral<T> ? "an integer" : "a number");
    if constexpr (std::floating_point<T>) {
      if (!std::isfinite(*value)) return std::string("expected a finite number");
    }
    out = *value;
    return std::nullopt;
  }
}

inline std::optional<bool> parse_cli_bool(std::string_view text) {
  if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "0" || text == "no" || text == "off") return false;
  return std::nullopt;
}

// Type-erased registration, so one parser holds flags of every supported type.
struct CliFlagBase {
  std::string name, help;
  bool seen = false;
  bool several = false;  // also takes the arguments after its value, up to one starting with '-'
  virtual ~CliFlagBase() = default;
  virtual bool is_switch() const = 0;
  virtual std::string type_name() const = 0;
  virtual std::string default_text() const = 0;
  virtual void assign(std::string_view text) = 0;  // parses, checks and stores, or throws CliError
  // A several() flag's arguments when there is more than one: each an element, taken whole.
  virtual void assign_each(std::span<const std::string> arguments) = 0;
};

template <class T>
struct CliFlag final : CliFlagBase {
  T owned{};
  T* target = &owned;  // the caller's variable for bound flags, `owned` otherwise
  std::string default_value_text;
  std::vector<std::function<std::optional<std::string>(const T&)>> checks;

  bool is_switch() const override { return std::same_as<T, bool>; }
  std::string type_name() const override { return cli_type_name<T>(); }
  std::string default_text() const override { return default_value_text; }

  void assign(std::string_view text) override {
    T value{};
    if constexpr (std::same_as<T, bool>) {
      const auto parsed = parse_cli_bool(text);
      if (!parsed) reject(text, "expected true or false");
      value = *parsed;
    } else if constexpr (CliScalar<T>) {
      if (auto reason = parse_cli_scalar(text, value)) reject(text, *reason);
    } else {
      // Comma-separated list; an empty value is an empty list, an empty element is an error.
      std::size_t start = 0;
      while (!text.empty() && start <= text.size()) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        const std::string_view element = text.substr(start, comma - start);
        typename T::value_type item{};
        if (std::same_as<typename T::value_type, std::string> && element.empty())
          reject(text, "an empty element in a comma-separated list");
        if (auto reason = parse_cli_scalar(element, item))
          reject(text, "element '" + std::string(element) + "': " + *reason + " in a comma-separated list");
        value.push_back(std::move(item));
        start = comma + 1;
      }
    }
    store(std::move(value), text);
  }

  void assign_each(std::span<const std::string> arguments) override {
    if constexpr (is_std_vector<T>::value) {
      T value;
      for (const std::string& argument : arguments) {
        typename T::value_type item{};
        if (argument.empty()) reject(argument, "an empty argument");
        if (auto reason = parse_cli_scalar(argument, item)) reject(argument, *reason);
        value.push_back(std::move(item));
      }
      std::string all;  // for a check's message, which concerns the whole list
      for (const std::string& argument : arguments) all += (all.empty() ? "" : " ") + argument;
      store(std::move(value), all);
    } else {
      throw std::logic_error("flag " + name + " takes one value");
    }
  }

  void store(T value, std::string_view text) {
    for (const auto& check : checks)
      if (auto reason = check(value)) reject(text, *reason);
    *target = std::move(value);
    seen = true;
  }

  [[noreturn]] void reject(std::string_view text, const std::string& reason) const {
    throw CliError(name, "invalid value '" + std::string(text) + "' for " + name + ": " + reason);
  }
};

}  // namespace detail

// Returned by ArgParser::add to attach checks; for list flags, min/max apply to every element.
template <class T>
class CliFlagHandle {
 public:
  using Element = typename detail::cli_element<T>::type;

  explicit CliFlagHandle(detail::CliFlag<T>& flag) : flag_(&flag) {}

  CliFlagHandle& min(Element lowest) requires(std::is_arithmetic_v<Element> && !std::same_as<Element, bool>) {
    return check([lowest](const Element& v) { return v >= lowest; },
                 "must be >= " + detail::format_cli_value(lowest));
  }
  CliFlagHandle& max(Element highest) requires(std::is_arithmetic_v<Element> &&
                                               !std::same_as<Element, bool>) {
    return check([highest](const Element& v) { return v <= highest; },
                 "must be <= " + detail::format_cli_value(highest));
  }
  // A list flag that also takes the arguments after its value, up to the next one starting with '-': given
  // one argument it reads a comma-separated list as ever ("--merge a/grid.csv,b/grid.csv"); given several
  // (what a shell glob gives: "--merge a/grid.csv b/grid.csv") it takes each whole, commas included.
  CliFlagHandle& several() requires(detail::is_std_vector<T>::value) {
    flag_->several = true;
    return *this;
  }
  // Accepts a value (each element, for lists) when `accepts` returns true; `requirement` is the error text,
  // e.g. check([](int v) { return v % 2 == 0; }, "must be even").
  CliFlagHandle& check(std::function<bool(const Element&)> accepts, std::string requirement) {
    flag_->checks.push_back([accepts = std::move(accepts), requirement = std::move(requirement)](
                                const T& value) -> std::optional<std::string> {
      if constexpr (detail::is_std_vector<T>::value) {
        for (const auto& element : value)
          if (!accepts(element)) return requirement;
      } else {
        if (!accepts(value)) return requirement;
      }
      return std::nullopt;
    });
    return *this;
  }

 private:
  detail::CliFlag<T>* flag_;
};

// Usage:
//   sumi::util::ArgParser cli("Trains an autoencoder on MNIST.");
//   cli.add<int>("--epochs", 10, "training epochs").min(1);
//   cli.add<std::vector<int>>("--latent", {2, 5, 10}, "latent sizes to sweep");
//   cli.add<bool>("--quiet", false, "no progress bars");
//   if (cli.parse(argc, argv) == sumi::util::CliStatus::exit_success) return 0;
//   const int epochs = cli.get<int>("--epochs");
// Supported types: int, int64_t, double, std::string, bool (a switch: "--quiet" or "--quiet=false") and
// std::vector of int, int64_t, double or std::string ("--latent 5,10"). Values come as "--flag value" or
// "--flag=value"; a later repetition overrides an earlier one.
class ArgParser {
 public:
  explicit ArgParser(std::string description = "", std::string program_name = "")
      : description_(std::move(description)), program_name_(std::move(program_name)) {}

  // Registers a flag holding its own value (read it with get<T>). Registration mistakes (a name not
  // starting with "--", a duplicate, "--help") throw std::logic_error: they are bugs, not user errors.
  template <class T>
  requires detail::CliValue<T> CliFlagHandle<T> add(const std::string& name, T default_value,
                                                    const std::string& help) {
    auto& flag = register_flag<T>(name, help);
    flag.owned = std::move(default_value);
    flag.default_value_text = detail::format_cli_value(flag.owned);
    return CliFlagHandle<T>(flag);
  }

  // Registers a flag that writes into `target`; its current value is the default.
  template <class T>
  requires detail::CliValue<T> CliFlagHandle<T> bind(const std::string& name, T& target,
                                                     const std::string& help) {
    auto& flag = register_flag<T>(name, help);
    flag.target = &target;
    flag.default_value_text = detail::format_cli_value(target);
    return CliFlagHandle<T>(flag);
  }

  // The flag's current value (default or parsed); std::logic_error for an unknown name or a wrong type.
  template <class T>
  const T& get(std::string_view name) const {
    const auto* typed = dynamic_cast<const detail::CliFlag<T>*>(&find_or_throw(name));
    if (!typed) throw std::logic_error("flag " + std::string(name) + " was not registered with this type");
    return *typed->target;
  }

  // Whether the flag appeared on the command line (as opposed to keeping its default).
  bool was_given(std::string_view name) const { return find_or_throw(name).seen; }

  // Parses argv (argv[0] is the program). Prints usage to `help_out` and returns exit_success for --help/-h.
  CliStatus parse(int argc, const char* const* argv, std::ostream& help_out = std::cout) {
    std::vector<std::string> args;
    for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
    if (program_name_.empty() && argc > 0 && argv[0]) {
      const std::string_view path(argv[0]);
      program_name_ = std::string(path.substr(path.find_last_of('/') + 1));
    }
    return parse(std::span<const std::string>(args), help_out);
  }
  CliStatus parse(int argc, char** argv, std::ostream& help_out = std::cout) {
    return parse(argc, static_cast<const char* const*>(argv), help_out);
  }

  // Parses arguments without the program name.
  CliStatus parse(std::span<const std::string> args, std::ostream& help_out = std::cout) {
    // --help wins over any error elsewhere on the line, so a broken command can still ask for help; a flag's
    // value ("--out -h") is not a request for help.
    for (std::size_t i = 0; i < args.size(); ++i) {
      if (args[i] == "--help" || args[i] == "-h") {
        help_out << usage();
        return CliStatus::exit_success;
      }
      if (takes_next_argument(args, i)) ++i;
    }
    for (std::size_t i = 0; i < args.size(); ++i) {
      const std::string& arg = args[i];
      if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
        const detail::CliFlagBase* previous = i > 0 ? find(args[i - 1]) : nullptr;
        if (previous && previous->is_switch() && detail::parse_cli_bool(arg))
          throw CliError(previous->name, "unexpected argument '" + arg + "' after the switch " +
                                             previous->name + ": a switch takes its value as " +
                                             previous->name + "=" + arg);
        throw CliError(arg, "unexpected argument '" + arg + "' (flags start with --; see --help)");
      }
      const std::size_t equals = arg.find('=');
      const std::string name = arg.substr(0, equals);
      if (name == "--help") throw CliError(name, "--help takes no value (" + arg + ")");
      detail::CliFlagBase* flag = find(name);
      if (!flag) throw CliError(name, "unknown flag " + name + suggestion(name) + " (see --help)");
      if (flag->is_switch() && equals == std::string::npos) {
        flag->assign("true");
        continue;
      }
      std::string value;
      if (equals != std::string::npos) {
        value = arg.substr(equals + 1);
      } else {
        // A following "--x" is the next flag, not a value (negative numbers have a single dash).
        if (i + 1 >= args.size() || args[i + 1].compare(0, 2, "--") == 0)
          throw CliError(name, "missing value for " + name + " (expected " + flag->type_name() + ")");
        value = args[++i];
      }
      std::vector<std::string> arguments{std::move(value)};
      for (; flag->several && i + 1 < args.size() && !args[i + 1].starts_with('-'); ++i)
        arguments.push_back(args[i + 1]);
      if (arguments.size() == 1)
        flag->assign(arguments.front());
      else
        flag->assign_each(arguments);
    }
    return CliStatus::run;
  }

  // The --help text, generated from the registrations.
  std::string usage() const {
    std::vector<std::pair<std::string, std::string>> lines;
    for (const auto& flag : flags_) {
      std::string left = flag->name;
      if (!flag->is_switch()) left += " <" + flag->type_name() + ">" + (flag->several ? " ..." : "");
      std::string right = flag->help;
      if (flag->is_switch())
        right += flag->default_text() == "on" ? " (default: on)" : "";
      else
        right += " (default: " + (flag->default_text().empty() ? "none" : flag->default_text()) + ")";
      lines.emplace_back(std::move(left), std::move(right));
    }
    lines.emplace_back("--help, -h", "show this help and exit");
    std::size_t width = 0;
    for (const auto& line : lines) width = std::max(width, line.first.size());
    std::ostringstream out;
    out << "Usage: " << (program_name_.empty() ? "program" : program_name_) << " [options]\n";
    if (!description_.empty()) out << "\n" << description_ << "\n";
    out << "\nOptions:\n";
    for (const auto& [left, right] : lines)
      out << "  " << left << std::string(width - left.size() + 2, ' ') << right << "\n";
    return out.str();
  }

 private:
  // Whether args[i] is a flag that takes args[i + 1] as its value ("--out DIR"). A several() flag's further
  // arguments need no skipping: they never start with '-', so none reads as a request for help.
  bool takes_next_argument(std::span<const std::string> args, std::size_t i) const {
    const std::string& arg = args[i];
    if (arg.compare(0, 2, "--") != 0 || arg.find('=') != std::string::npos || i + 1 >= args.size() ||
        args[i + 1].compare(0, 2, "--") == 0)
      return false;
    const detail::CliFlagBase* flag = find(arg);
    return flag && !flag->is_switch();
  }

  template <class T>
  detail::CliFlag<T>& register_flag(const std::string& name, const std::string& help) {
    if (name.size() < 3 || name.compare(0, 2, "--") != 0 || name.find('=') != std::string::npos ||
        name.find(' ') != std::string::npos)
      throw std::logic_error("flag name '" + name + "' must look like --name");
    if (name == "--help") throw std::logic_error("--help is reserved");
    if (find(name)) throw std::logic_error("flag " + name + " registered twice");
    auto flag = std::make_unique<detail::CliFlag<T>>();
    flag->name = name;
    flag->help = help;
    auto& reference = *flag;
    flags_.push_back(std::move(flag));
    return reference;
  }

  detail::CliFlagBase* find(std::string_view name) const {
    for (const auto& flag : flags_)
      if (flag->name == name) return flag.get();
    return nullptr;
  }

  const detail::CliFlagBase& find_or_throw(std::string_view name) const {
    if (const auto* flag = find(name)) return *flag;
    throw std::logic_error("flag " + std::string(name) + " was never registered");
  }

  // " (did you mean --epochs?)" for a near miss, so a typo is quick to fix.
  std::string suggestion(const std::string& name) const {
    std::string best;
    std::size_t best_distance = 3;  // suggest only within two edits
    for (const auto& flag : flags_) {
      const std::size_t distance = edit_distance(name, flag->name);
      if (distance < best_distance) best_distance = distance, best = flag->name;
    }
    return best.empty() ? "" : " (did you mean " + best + "?)";
  }

  static std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
      std::size_t diagonal = row[0];
      row[0] = i;
      for (std::size_t j = 1; j <= b.size(); ++j) {
        const std::size_t above = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diagonal = above;
      }
    }
    return row[b.size()];
  }

  std::string description_;
  std::string program_name_;
  std::vector<std::unique_ptr<detail::CliFlagBase>> flags_;
};

// The value a switch is given on a command line before it is parsed ("--quick", "--quick=false"; the last
// one wins), for switches that change other flags' defaults. A value that is not a boolean is left for
// parse() to report.
inline bool switch_on(int argc, const char* const* argv, std::string_view name) {
  bool on = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == name) {
      on = true;
    } else if (arg.size() > name.size() && arg.substr(0, name.size()) == name && arg[name.size()] == '=') {
      if (const auto value = detail::parse_cli_bool(arg.substr(name.size() + 1))) on = *value;
    }
  }
  return on;
}

// A program's main() around its parser: parses argv, then calls run() (returning its exit status) unless
// --help was asked for. Errors are printed as "error: ..." on stderr with exit status 2 for a bad command
// line (CliError, thrown by parse() or by run() while checking flags) and 1 for any other failure (running
// out of memory included, which a size flag set too large causes).
template <class Run>
int run_main(ArgParser& cli, int argc, char** argv, Run&& run) {
  try {
    if (cli.parse(argc, argv) == CliStatus::exit_success) return 0;
    return run();
  } catch (const CliError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "error: out of memory: the sizes the flags ask for (batch, layer widths, sample counts) "
                 "need more memory than this machine can give\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace sumi::util
