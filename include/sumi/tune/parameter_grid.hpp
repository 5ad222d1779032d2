#pragma once
// ParameterGrid: named axes of hyperparameter values (integers, numbers or text) and every combination of
// them, for grid searches. Configuration i varies the first axis slowest and the last fastest, as nested
// loops written in axis order, so a results table in grid order reads naturally.
//
//   sumi::tune::ParameterGrid grid;
//   grid.add_axis("latent", std::vector<int>{5, 10}).add_axis("dropout", std::vector<double>{0, 0.5});
//   for (std::size_t i = 0; i < grid.size(); ++i) train(grid.at(i).get<int>("latent"), ...);
//
// Shard{i, n} picks every n-th item starting at i (0-based), so n processes or machines split a grid
// between them with no overlap and nothing left out.
#include <cmath>
#include <concepts>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "sumi/util/csv.hpp"
#include "sumi/util/number_text.hpp"

namespace sumi::tune {

using ParameterValue = std::variant<int64_t, double, std::string>;

enum class ParameterType { integer, number, text };

inline ParameterType type_of(const ParameterValue& value) {
  return ParameterType(value.index());
}

inline const char* type_name(ParameterType type) {
  switch (type) {
    case ParameterType::integer:
      return "integer";
    case ParameterType::number:
      return "number";
    default:
      return "text";
  }
}

// The value as a table cell: 5, 1e-05 (shortest text that reads back exactly), relu.
inline std::string format_parameter(const ParameterValue& value) {
  if (const auto* i = std::get_if<int64_t>(&value)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&value)) return util::format_round_trip(*d);
  return std::get<std::string>(value);
}

// Reads a cell written by format_parameter back as `type`; nullopt when the text is not one.
inline std::optional<ParameterValue> parse_parameter(std::string_view text, ParameterType type) {
  if (type == ParameterType::text) return ParameterValue(std::string(text));
  if (type == ParameterType::number) {
    const auto value = util::parse_number<double>(text);
    if (!value) return std::nullopt;
    return ParameterValue(*value);
  }
  const auto value = util::parse_number<int64_t>(text);
  if (!value) return std::nullopt;
  return ParameterValue(*value);
}

// One point of a grid: parameter names and values, in axis order.
class Configuration {
 public:
  using Item = std::pair<std::string, ParameterValue>;

  Configuration() = default;
  explicit Configuration(std::vector<Item> items) : items_(std::move(items)) {}

  const std::vector<Item>& items() const { return items_; }
  std::size_t size() const { return items_.size(); }

  bool contains(std::string_view name) const {
    for (const auto& [key, value] : items_)
      if (key == name) return true;
    return false;
  }

  // The value of `name`; std::out_of_range naming the parameters there are.
  const ParameterValue& at(std::string_view name) const {
    for (const auto& [key, value] : items_)
      if (key == name) return value;
    std::string names;
    for (const auto& [key, value] : items_) names += (names.empty() ? "" : ", ") + key;
    throw std::out_of_range("configuration has no parameter '" + std::string(name) +
                            "' (it has: " + (names.empty() ? "none" : names) + ")");
  }

  // The value as T: an integral type for integer parameters (bool for 0 and 1), a floating type for integer
  // or number parameters, std::string for text. std::invalid_argument when the types do not fit or the
  // integer is out of T's range.
  template <class T>
  T get(std::string_view name) const {
    const ParameterValue& value = at(name);
    if constexpr (std::same_as<T, std::string>) {
      if (const auto* s = std::get_if<std::string>(&value)) return *s;
    } else if constexpr (std::integral<T>) {
      const auto* i = std::get_if<int64_t>(&value);
      if constexpr (std::same_as<T, bool>) {
        if (i && (*i == 0 || *i == 1)) return *i == 1;
      } else {
        if (i && std::in_range<T>(*i)) return T(*i);
      }
    } else if constexpr (std::floating_point<T>) {
      if (const auto* d = std::get_if<double>(&value)) return T(*d);
      if (const auto* i = std::get_if<int64_t>(&value)) return T(*i);
    } else {
      static_assert(std::same_as<T, std::string>,
                    "Configuration::get: use an arithmetic type or std::string");
    }
    throw std::invalid_argument("parameter '" + std::string(name) + "' is " + type_name(type_of(value)) +
                                " " + format_parameter(value) +
                                ", which cannot be read as the requested type (or is out of its range)");
  }

  // "latent=5 weight_decay=1e-05 dropout=0"
  std::string to_string() const {
    std::string out;
    for (const auto& [key, value] : items_)
      out += (out.empty() ? "" : " ") + key + "=" + format_parameter(value);
    return out;
  }

  // Same names, order and values (numbers compared exactly, as read back from a results file).
  bool operator==(const Configuration&) const = default;

 private:
  std::vector<Item> items_;
};

struct Axis {
  std::string name;
  ParameterType type = ParameterType::integer;
  std::vector<ParameterValue> values;
};

// Which items of a list a process takes: every count-th one starting at index (0-based).
struct Shard {
  int64_t index = 0;
  int64_t count = 1;

  bool contains(std::size_t item) const {
    if (count < 1 || index < 0 || index >= count)
      throw std::invalid_argument("shard " + to_string() + ": need 0 <= i < n");
    return int64_t(item % std::size_t(count)) == index;
  }
  std::string to_string() const { return std::to_string(index) + "/" + std::to_string(count); }

  // "i/n" with 0 <= i < n; std::invalid_argument naming the text otherwise.
  static Shard parse(std::string_view text) {
    const auto fail = [&](const std::string& why) -> Shard {
      throw std::invalid_argument("shard '" + std::string(text) + "': " + why +
                                  " (expected i/n with 0 <= i < n, e.g. 0/2 and 1/2)");
    };
    const std::size_t slash = text.find('/');
    if (slash == std::string_view::npos) return fail("no '/'");
    const auto number = [&](std::string_view part) -> int64_t {
      util::NumberError error{};
      const std::optional<int64_t> value = util::parse_number<int64_t>(part, &error);
      if (!value)
        fail("'" + std::string(part) + "' is " +
             (error == util::NumberError::out_of_range ? "out of range" : "not an integer"));
      return *value;
    };
    Shard shard{number(text.substr(0, slash)), number(text.substr(slash + 1))};
    if (shard.count < 1) return fail("n must be at least 1");
    if (shard.index < 0 || shard.index >= shard.count) return fail("i must be in [0, n)");
    return shard;
  }
};

class ParameterGrid {
 public:
  // Adds an axis; its values keep their order. Throws std::invalid_argument for an empty or repeated name,
  // no values, or a repeated value.
  template <class V>
  requires(std::integral<V> || std::floating_point<V> ||
           std::convertible_to<V, std::string>) ParameterGrid& add_axis(std::string name,
                                                                        const std::vector<V>& values) {
    Axis axis{std::move(name), {}, {}};
    if constexpr (std::integral<V>) {
      axis.type = ParameterType::integer;
      for (const V& v : values) axis.values.emplace_back(int64_t(v));
    } else if constexpr (std::floating_point<V>) {
      axis.type = ParameterType::number;
      for (const V& v : values) axis.values.emplace_back(double(v));
    } else {
      axis.type = ParameterType::text;
      for (const V& v : values) axis.values.emplace_back(std::string(v));
    }
    return add_axis(std::move(axis));
  }
  ParameterGrid& add_axis(std::string name, std::initializer_list<int> values) {
    return add_axis(std::move(name), std::vector<int>(values));
  }
  ParameterGrid& add_axis(std::string name, std::initializer_list<double> values) {
    return add_axis(std::move(name), std::vector<double>(values));
  }
  ParameterGrid& add_axis(std::string name, std::initializer_list<const char*> values) {
    return add_axis(std::move(name), std::vector<std::string>(values.begin(), values.end()));
  }

  ParameterGrid& add_axis(Axis axis) {
    if (axis.name.empty()) throw std::invalid_argument("ParameterGrid: an axis needs a name");
    for (const Axis& a : axes_)
      if (a.name == axis.name)
        throw std::invalid_argument("ParameterGrid: axis '" + axis.name + "' added twice");
    if (axis.values.empty())
      throw std::invalid_argument("ParameterGrid: axis '" + axis.name + "' has no values");
    for (std::size_t i = 0; i < axis.values.size(); ++i) {
      if (type_of(axis.values[i]) != axis.type)
        throw std::invalid_argument("ParameterGrid: axis '" + axis.name + "' mixes value types");
      // NaN equals nothing, itself included: its configurations could never be found again (resume, ranking).
      if (const auto* d = std::get_if<double>(&axis.values[i]); d && std::isnan(*d))
        throw std::invalid_argument("ParameterGrid: axis '" + axis.name + "' has a NaN value");
      for (std::size_t j = 0; j < i; ++j)
        if (axis.values[j] == axis.values[i])
          throw std::invalid_argument("ParameterGrid: axis '" + axis.name + "' lists " +
                                      format_parameter(axis.values[i]) + " twice");
    }
    axes_.push_back(std::move(axis));
    return *this;
  }

  const std::vector<Axis>& axes() const { return axes_; }
  const Axis& axis(std::string_view name) const {
    for (const Axis& a : axes_)
      if (a.name == name) return a;
    throw std::out_of_range("ParameterGrid: no axis named '" + std::string(name) + "'");
  }

  // Number of configurations: the product of the axis lengths (1 for a grid without axes).
  std::size_t size() const {
    std::size_t n = 1;
    for (const Axis& a : axes_) n *= a.values.size();
    return n;
  }

  // Configuration i in grid order (the last axis varies fastest).
  Configuration at(std::size_t i) const {
    if (i >= size())
      throw std::out_of_range("ParameterGrid: configuration " + std::to_string(i) + " out of range for " +
                              std::to_string(size()));
    std::vector<Configuration::Item> items(axes_.size());
    for (std::size_t k = axes_.size(); k-- > 0;) {
      const std::size_t n = axes_[k].values.size();
      items[k] = {axes_[k].name, axes_[k].values[i % n]};
      i /= n;
    }
    return Configuration(std::move(items));
  }

  std::vector<Configuration> configurations() const {
    std::vector<Configuration> out;
    for (std::size_t i = 0; i < size(); ++i) out.push_back(at(i));
    return out;
  }

  // The position of `config` in grid order, or nullopt when it is not a point of this grid.
  std::optional<std::size_t> index_of(const Configuration& config) const {
    if (config.size() != axes_.size()) return std::nullopt;
    std::size_t index = 0;
    for (std::size_t k = 0; k < axes_.size(); ++k) {
      const auto& [name, value] = config.items()[k];
      if (name != axes_[k].name) return std::nullopt;
      std::size_t pos = 0;
      while (pos < axes_[k].values.size() && !(axes_[k].values[pos] == value)) ++pos;
      if (pos == axes_[k].values.size()) return std::nullopt;
      index = index * axes_[k].values.size() + pos;
    }
    return index;
  }

 private:
  std::vector<Axis> axes_;
};

}  // namespace sumi::tune
