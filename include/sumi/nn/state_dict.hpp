#pragma once
// StateDict<T>: an ordered map from names to tensors and integer scalars (and doubles kept exactly as their
// bits, insert_real), the form in which modules, optimisers and schedules export and import their state (as
// torch's state_dict()). Also the error type that loading
// reports, listing every name that is missing, unexpected, mis-shaped or of the wrong dtype at once.
#include <algorithm>
#include <bit>
#include <concepts>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sumi/tensor/tensor.hpp"
#include "sumi/util/number_text.hpp"
#include "sumi/util/printable.hpp"

namespace sumi::nn {

// Everything that differs between a state and what a module (or optimiser, or file) expects.
struct StateMismatch {
  std::vector<std::string> missing;        // expected but absent
  std::vector<std::string> unexpected;     // present but not expected
  std::vector<std::string> mis_shaped;     // "name: expected [3, 4], found [4, 3]"
  std::vector<std::string> wrong_type;     // "name: expected F32, found F64" (dtype, or integer vs tensor)
  std::vector<std::string> invalid_value;  // "name: NaN at element 3", "0.step: negative (-2)"

  bool empty() const {
    return missing.empty() && unexpected.empty() && mis_shaped.empty() && wrong_type.empty() &&
           invalid_value.empty();
  }

  // Checks of one StateDict entry, each recording what is wrong and returning whether the entry passed.
  // A count: an integer entry in [0, 2^62] (room left to count on without overflow).
  template <class Entry>
  bool check_count(const Entry& e) {
    if (!check_integer(e)) return false;
    if (const int64_t count = e.integer; count < 0 || count > (int64_t(1) << 62)) {
      invalid_value.push_back(e.name + ": " + (count < 0 ? "negative (" : "too large (") +
                              std::to_string(count) + ")");
      return false;
    }
    return true;
  }
  // A real (StateDict::insert_real) that satisfies `valid`.
  template <class Entry, class Valid>
  bool check_real(const Entry& e, Valid valid) {
    if (!check_integer(e)) return false;
    if (const double v = std::bit_cast<double>(e.integer); !valid(v)) {
      invalid_value.push_back(e.name + ": " + util::format_round_trip(v));
      return false;
    }
    return true;
  }
  // Every one of `expected` present (else missing) and nothing else (else unexpected).
  template <class Dict>
  void check_names(const Dict& d, const std::vector<std::string>& expected) {
    for (const std::string& name : expected)
      if (!d.contains(name)) missing.push_back(name);
    for (const auto& e : d)
      if (std::find(expected.begin(), expected.end(), e.name) == expected.end()) unexpected.push_back(e.name);
  }
  template <class Entry>
  bool check_integer(const Entry& e) {
    if (e.is_integer) return true;
    wrong_type.push_back(e.name + ": expected an integer, found a tensor");
    return false;
  }
  // A tensor entry of `shape`.
  template <class Entry>
  bool check_tensor(const Entry& e, const Shape& shape) {
    if (e.is_integer) {
      wrong_type.push_back(e.name + ": expected a tensor, found an integer");
      return false;
    }
    if (e.tensor.shape() != shape) {
      mis_shaped.push_back(e.name + ": expected " + shape_str(shape) + ", found " +
                           shape_str(e.tensor.shape()));
      return false;
    }
    return true;
  }

  // One line per kind of problem, each naming every entry of that kind (names from a file made printable).
  std::string describe() const {
    std::string s;
    auto section = [&](const char* title, const std::vector<std::string>& names) {
      if (names.empty()) return;
      s += std::string("\n  ") + title + " (" + std::to_string(names.size()) + "): ";
      for (std::size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + util::printable(names[i]);
    };
    section("missing", missing);
    section("unexpected", unexpected);
    section("shape mismatch", mis_shaped);
    section("dtype mismatch", wrong_type);
    section("invalid values", invalid_value);
    return s;
  }
};

// Thrown when a state cannot be loaded; what() lists every problem, mismatch() gives them separately.
class StateDictError : public std::runtime_error {
 public:
  StateDictError(const std::string& context, StateMismatch mismatch)
      : std::runtime_error(context + mismatch.describe()), mismatch_(std::move(mismatch)) {}
  const StateMismatch& mismatch() const { return mismatch_; }

 private:
  StateMismatch mismatch_;
};

template <std::floating_point T = float>
class StateDict {
 public:
  // A floating tensor, or an integer scalar (BatchNorm's num_batches_tracked, an optimiser's step count).
  struct Entry {
    std::string name;
    Tensor<T> tensor;
    int64_t integer = 0;
    bool is_integer = false;

    Shape shape() const { return is_integer ? Shape{} : tensor.shape(); }
  };

  // Appends an entry; the name must be new.
  void insert(const std::string& name, Tensor<T> tensor) {
    if (!tensor.defined()) throw std::invalid_argument("StateDict: tensor '" + name + "' is undefined");
    add(Entry{name, std::move(tensor), 0, false});
  }
  void insert_integer(const std::string& name, int64_t value) { add(Entry{name, Tensor<T>(), value, true}); }
  // A double kept exactly whatever T is, infinities included: an integer entry holding its IEEE-754 bits
  // (Python: struct.unpack("<d", struct.pack("<q", v))). Learning-rate schedules store their rates so, and
  // go through a float model's checkpoint unchanged.
  void insert_real(const std::string& name, double value) {
    insert_integer(name, std::bit_cast<int64_t>(value));
  }

  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  const Entry* find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &entries_[it->second];
  }
  const Entry& at(const std::string& name) const {
    const Entry* e = find(name);
    if (!e) throw std::out_of_range("StateDict: no entry named '" + name + "'");
    return *e;
  }
  const Tensor<T>& tensor(const std::string& name) const {
    const Entry& e = at(name);
    if (e.is_integer) throw std::invalid_argument("StateDict: '" + name + "' is an integer, not a tensor");
    return e.tensor;
  }
  int64_t integer(const std::string& name) const {
    const Entry& e = at(name);
    if (!e.is_integer) throw std::invalid_argument("StateDict: '" + name + "' is a tensor, not an integer");
    return e.integer;
  }
  double real(const std::string& name) const { return std::bit_cast<double>(integer(name)); }

  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const Entry& e : entries_) out.push_back(e.name);
    return out;
  }

  // Every entry with `prefix` prepended to its name (to store several states in one file).
  StateDict with_prefix(const std::string& prefix) const {
    StateDict out;
    for (const Entry& e : entries_) out.add(Entry{prefix + e.name, e.tensor, e.integer, e.is_integer});
    return out;
  }
  // The entries whose names start with `prefix`, with the prefix removed.
  StateDict strip_prefix(const std::string& prefix) const {
    StateDict out;
    for (const Entry& e : entries_)
      if (e.name.compare(0, prefix.size(), prefix) == 0)
        out.add(Entry{e.name.substr(prefix.size()), e.tensor, e.integer, e.is_integer});
    return out;
  }

  // A copy with every tensor converted to U (float <-> double); integers unchanged.
  template <std::floating_point U>
  StateDict<U> to() const {
    StateDict<U> out;
    for (const Entry& e : entries_) {
      if (e.is_integer)
        out.insert_integer(e.name, e.integer);
      else
        out.insert(e.name, e.tensor.template to<U>());
    }
    return out;
  }

 private:
  void add(Entry e) {
    if (!index_.emplace(e.name, entries_.size()).second)
      throw std::invalid_argument("StateDict: duplicate entry '" + e.name + "'");
    entries_.push_back(std::move(e));
  }

  std::vector<Entry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
};

}  // namespace sumi::nn
