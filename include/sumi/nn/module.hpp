#pragma once
// Module<T>: the base of every layer and model, as torch.nn.Module. A module owns named parameters
// (Variables), buffers (tensors such as BatchNorm's running_mean, and integer counters such as
// num_batches_tracked) and child modules, all in registration order. Names are hierarchical and exactly
// PyTorch's ("encoder_cnn.0.weight", "main.1.running_mean"), so state dicts match PyTorch's.
//
// Modules are held by std::shared_ptr and are not copyable. A layer keeps its parameters as public Variable
// members (linear->weight) bound to the registry (bind_parameter): setting requires_grad or loading a state
// through either is seen by both, and assigning the member a new Variable replaces the parameter, as
// assigning a parameter attribute in PyTorch.
#include <cxxabi.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <unordered_set>
#include <utility>
#include <vector>

#include "sumi/autograd/variable.hpp"
#include "sumi/nn/state_dict.hpp"

namespace sumi::nn {

namespace detail {

// The name of a class without namespaces, enclosing functions or template arguments ("ResidualBlock" for
// models::ResidualBlock<float>), for repr(); the mangled name where the ABI cannot demangle it.
inline std::string class_name(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> demangled(
      abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), &std::free);
  if (status != 0 || !demangled) return type.name();
  // The part after the last "::" outside template arguments and parameter lists
  // ("f(std::vector<int>)::Local", "ns::Net<float>::Block"), without its own template arguments.
  const std::string name = demangled.get();
  std::size_t start = 0;
  int depth = 0;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '<' || name[i] == '(') ++depth;
    if (name[i] == '>' || name[i] == ')') --depth;
    if (depth == 0 && name.compare(i, 2, "::") == 0) start = i + 2;
  }
  return name.substr(start, name.find('<', start) - start);
}

// A floating-point value as Python's repr() prints it (0.5, 1e-05, 0.01, 1.0), for PyTorch-like reprs.
template <std::floating_point F>
std::string python_float_repr(F value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  // Shortest digits that round-trip, in scientific form: "-1.2345e-05".
  const auto result = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  std::string s(buf, result.ptr);
  std::string sign;
  if (s[0] == '-') {
    sign = "-";
    s.erase(0, 1);
  }
  const std::size_t e = s.find('e');
  const int exponent = std::stoi(s.substr(e + 1));
  std::string digits;
  for (char c : s.substr(0, e))
    if (c != '.') digits += c;
  std::string out;
  if (exponent >= -4 && exponent < 16) {  // Python's repr switches to exponent notation outside this range
    if (exponent >= 0) {
      const auto int_digits = std::size_t(exponent) + 1;
      if (digits.size() <= int_digits)
        out = digits + std::string(int_digits - digits.size(), '0') + ".0";
      else
        out = digits.substr(0, int_digits) + "." + digits.substr(int_digits);
    } else {
      out = "0." + std::string(std::size_t(-exponent - 1), '0') + digits;
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    std::string exp = std::to_string(std::abs(exponent));
    if (exp.size() < 2) exp = "0" + exp;
    out += std::string("e") + (exponent < 0 ? "-" : "+") + exp;
  }
  return sign + out;
}

inline std::string python_bool(bool b) {
  return b ? "True" : "False";
}

// A shape as a Python tuple: (32, 3, 3), (5,).
inline std::string python_tuple(const Shape& s) {
  std::string out = "(";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

// Indents every line but the first by `spaces` (PyTorch's _addindent).
inline std::string indent_tail(const std::string& s, std::size_t spaces) {
  std::string out;
  for (char c : s) {
    out += c;
    if (c == '\n') out += std::string(spaces, ' ');
  }
  return out;
}

}  // namespace detail

// A buffer as named_buffers() lists it: a floating tensor or an integer scalar counter.
template <std::floating_point T>
struct NamedBuffer {
  std::string name;
  Tensor<T>* tensor = nullptr;  // a floating buffer (running_mean), or null
  int64_t* counter = nullptr;   // an integer scalar buffer (num_batches_tracked), or null
  bool is_counter() const { return counter != nullptr; }
};

struct ParameterCount {
  int64_t trainable = 0;  // elements of parameters that require a gradient
  int64_t frozen = 0;     // elements of parameters that do not
  int64_t total() const { return trainable + frozen; }
};

// What a non-strict load_state_dict() skipped.
struct LoadStateResult {
  std::vector<std::string> missing_keys;
  std::vector<std::string> unexpected_keys;
};

template <std::floating_point T = float>
class Module {
 public:
  using value_type = T;
  using ModulePtr = std::shared_ptr<Module<T>>;

  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The module's computation. Modules without a single-input forward (a container of several nets) may
  // leave it out; calling it then throws.
  virtual Variable<T> forward(const Variable<T>& /*input*/) {
    throw std::logic_error(type_name() + ": forward() is not implemented");
  }
  Variable<T> operator()(const Variable<T>& input) { return forward(input); }

  // The class name shown in repr() ("Conv2d"); by default the dynamic class's own name, without namespaces
  // or template arguments, as PyTorch prints a subclass by its name.
  virtual std::string type_name() const { return detail::class_name(typeid(*this)); }
  // The part inside the parentheses of repr(), as PyTorch's extra_repr ("in_features=2, ...").
  virtual std::string extra_repr() const { return ""; }

  // ---- registration --------------------------------------------------------------------------------------

  // A new parameter holding `value`; the returned Variable shares its state with the registry (assigning the
  // returned copy another Variable does not change the parameter: a member bound by bind_parameter does).
  Variable<T> register_parameter(const std::string& name, Tensor<T> value, bool requires_grad = true) {
    return register_parameter(name, Variable<T>(std::move(value), requires_grad));
  }
  // Registers an existing leaf Variable (e.g. to tie weights between two modules).
  Variable<T> register_parameter(const std::string& name, Variable<T> parameter) {
    check_new_name(name, "parameter");
    if (!parameter.defined())
      throw std::invalid_argument(where() + ": parameter '" + name + "' is undefined");
    if (!parameter.is_leaf())
      throw std::invalid_argument(where() + ": parameter '" + name + "' is not a leaf");
    auto owned = std::make_unique<Variable<T>>(std::move(parameter));
    Variable<T>* target = owned.get();
    params_.push_back({name, std::move(owned), target});
    return *target;
  }
  // Registers this module's own member `member` as the parameter `name`. The registry refers to the
  // member, so assigning it another Variable (linear.weight = Variable(...), or another module's weight to
  // tie them) is what forward(), parameters(), the state dict and optimisers built afterwards all see, as
  // assigning a parameter attribute in PyTorch. An undefined member (a layer without bias) is no parameter,
  // as a parameter registered as None.
  void bind_parameter(const std::string& name, Variable<T>& member) {
    check_new_name(name, "parameter");
    params_.push_back({name, nullptr, &member});
    check_parameter(params_.back());
  }
  // A floating buffer (saved in the state dict, not trained). The reference stays valid for the module's
  // life.
  Tensor<T>& register_buffer(const std::string& name, Tensor<T> value) {
    check_new_name(name, "buffer");
    if (!value.defined()) throw std::invalid_argument(where() + ": buffer '" + name + "' is undefined");
    buffers_.push_back({name, std::make_unique<Tensor<T>>(std::move(value)), nullptr});
    return *buffers_.back().tensor;
  }
  // An integer scalar buffer (saved as I64 with shape []). The reference stays valid for the module's life.
  int64_t& register_counter(const std::string& name, int64_t value = 0) {
    check_new_name(name, "buffer");
    buffers_.push_back({name, nullptr, std::make_unique<int64_t>(value)});
    return *buffers_.back().counter;
  }
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    static_assert(std::is_base_of_v<Module<T>, M>, "register_module: not a Module<T>");
    check_new_name(name, "module");
    if (!module) throw std::invalid_argument(where() + ": module '" + name + "' is null");
    check_no_cycle(*module, name);
    children_.push_back({name, module});
    return module;
  }
  // Swaps the child `name` for `module` (e.g. a new head); returns the old child. The new module keeps the
  // old one's position, so names stay the same. It starts in this module's training mode. Modules that find
  // their children through the registry in forward (Sequential, models::Autoencoder) use the replacement;
  // a module that also keeps its own typed pointer to a child must update that pointer itself.
  ModulePtr replace_module(const std::string& name, ModulePtr module) {
    if (!module) throw std::invalid_argument(where() + ": replacement for module '" + name + "' is null");
    check_no_cycle(*module, name);
    for (auto& slot : children_)
      if (slot.name == name) {
        module->train(training_);
        std::swap(slot.module, module);
        return module;
      }
    throw std::out_of_range(where() + ": no child module named '" + name + "'" + child_list());
  }

  // ---- access --------------------------------------------------------------------------------------------

  ModulePtr child(const std::string& name) const {
    for (const auto& slot : children_)
      if (slot.name == name) return slot.module;
    throw std::out_of_range(where() + ": no child module named '" + name + "'" + child_list());
  }
  // The child `name` as its concrete type; throws if it is another type.
  template <class M>
  std::shared_ptr<M> child_as(const std::string& name) const {
    auto typed = std::dynamic_pointer_cast<M>(child(name));
    if (!typed)
      throw std::invalid_argument(where() + ": child '" + name + "' is a " + child(name)->type_name());
    return typed;
  }
  // The direct children in registration order; one registered under several names is listed once, under
  // its first name, as in PyTorch.
  std::vector<std::pair<std::string, ModulePtr>> named_children() const {
    std::vector<std::pair<std::string, ModulePtr>> out;
    for (const auto& slot : children_)
      if (std::none_of(out.begin(), out.end(),
                       [&](const auto& named) { return named.second == slot.module; }))
        out.emplace_back(slot.name, slot.module);
    return out;
  }
  std::size_t num_children() const { return children_.size(); }
  // The i-th child in registration order.
  const ModulePtr& child_at(std::size_t i) const {
    if (i >= children_.size())
      throw std::out_of_range(where() + ": child index " + std::to_string(i) + " out of range for " +
                              std::to_string(children_.size()) + " children");
    return children_[i].module;
  }

  // This module's own parameter `name` (not its children's).
  Variable<T> parameter(const std::string& name) const {
    for (const auto& slot : params_)
      if (slot.name == name && check_parameter(slot)) return *slot.var;
    throw std::out_of_range(where() + ": no parameter named '" + name + "'");
  }

  // All parameters, depth first in registration order, with hierarchical names. A parameter registered
  // under several names (shared) is listed once, under its first name, as in PyTorch.
  std::vector<std::pair<std::string, Variable<T>>> named_parameters(bool recurse = true) const {
    std::vector<std::pair<std::string, Variable<T>>> out;
    std::unordered_set<const VariableState<T>*> seen;
    for_each_module(
        [&](const std::string& prefix, const Module& m) {
          for (const auto& slot : m.params_)
            if (m.check_parameter(slot) && seen.insert(slot.var->id()).second)
              out.emplace_back(prefix + slot.name, *slot.var);
        },
        recurse);
    return out;
  }
  std::vector<Variable<T>> parameters(bool recurse = true) const {
    std::vector<Variable<T>> out;
    for (auto& [name, p] : named_parameters(recurse)) out.push_back(p);
    return out;
  }
  // All buffers (floating and integer), in PyTorch's order: each module's own, then its children's.
  std::vector<NamedBuffer<T>> named_buffers(bool recurse = true) const {
    std::vector<NamedBuffer<T>> out;
    for_each_module(
        [&](const std::string& prefix, const Module& m) {
          for (const auto& slot : m.buffers_)
            out.push_back({prefix + slot.name, slot.tensor.get(), slot.counter.get()});
        },
        recurse);
    return out;
  }
  // This module and every descendant, pre-order; this module's name is "". A module reachable under
  // several names is listed once.
  std::vector<std::pair<std::string, Module*>> named_modules() {
    std::vector<std::pair<std::string, Module*>> out;
    for_each_module([&](const std::string& prefix, const Module& m) {
      out.emplace_back(prefix.empty() ? prefix : prefix.substr(0, prefix.size() - 1),
                       const_cast<Module*>(&m));
    });
    return out;
  }
  // Calls f on every descendant and then on this module (children first, as torch's apply), e.g. for a
  // custom initialisation. A child registered under several names is visited once, as in torch.
  void apply(const std::function<void(Module&)>& f) {
    for (auto& [name, child] : named_children()) child->apply(f);
    f(*this);
  }

  // ---- modes ---------------------------------------------------------------------------------------------

  // Training mode (Dropout active, BatchNorm on batch statistics) for this module and all descendants.
  Module& train(bool mode = true) {
    training_ = mode;
    for (auto& slot : children_) slot.module->train(mode);
    return *this;
  }
  Module& eval() { return train(false); }
  bool is_training() const { return training_; }

  // Freezes (false) or unfreezes (true) every parameter of this module and its descendants. A single
  // parameter is frozen with its Variable: layer->bias.set_requires_grad(false).
  Module& set_requires_grad(bool requires_grad) {
    for (auto& [name, p] : named_parameters()) p.set_requires_grad(requires_grad);
    return *this;
  }
  // Clears every parameter's gradient (sets it undefined, as PyTorch's zero_grad(set_to_none=True)).
  void zero_grad() {
    for (auto& [name, p] : named_parameters()) p.zero_grad();
  }

  ParameterCount count_parameters() const {
    ParameterCount c;
    for (const auto& [name, p] : named_parameters())
      (p.requires_grad() ? c.trainable : c.frozen) += p.numel();
    return c;
  }

  // ---- printing ------------------------------------------------------------------------------------------

  // PyTorch's repr: "Linear(in_features=2, out_features=3, bias=True)", children nested as "(name): ...".
  // A module whose own parameters are all frozen is marked " [frozen]"; partly frozen, " [frozen: bias]".
  std::string repr() const {
    std::vector<std::string> lines;
    const std::string extra = extra_repr();
    std::size_t start = 0;
    while (!extra.empty() && start <= extra.size()) {
      const std::size_t end = std::min(extra.find('\n', start), extra.size());
      lines.push_back(extra.substr(start, end - start));
      start = end + 1;
    }
    const std::string mark = frozen_mark();
    if (children_.empty() && lines.size() <= 1) return type_name() + "(" + extra + ")" + mark;
    for (const auto& slot : children_)
      lines.push_back("(" + slot.name + "): " + detail::indent_tail(slot.module->repr(), 2));
    std::string s = type_name() + "(";
    for (const std::string& line : lines) s += "\n  " + line;
    return s + "\n)" + mark;
  }
  // repr() followed by the parameter counts.
  std::string summary() const {
    const ParameterCount c = count_parameters();
    return repr() + "\nTrainable parameters: " + std::to_string(c.trainable) +
           "\nFrozen parameters: " + std::to_string(c.frozen) +
           "\nTotal parameters: " + std::to_string(c.total());
  }

  // ---- state ---------------------------------------------------------------------------------------------

  // A snapshot (deep copy) of every parameter and buffer, names as PyTorch's state_dict(): each module's
  // parameters, then its buffers, then its children's. Shared parameters appear under every name.
  StateDict<T> state_dict() const {
    StateDict<T> d;
    for (const StateRef& r : state_refs()) {
      if (r.counter)
        d.insert_integer(r.name, *r.counter);
      else
        d.insert(r.name, r.tensor->clone());
    }
    return d;
  }

  // Copies `state` into the parameters and buffers in place (Variables keep their identity, so optimisers
  // keep working). Shapes must match. With `strict`, the names must match exactly too; otherwise missing
  // and unexpected names are skipped and returned. A missing integer counter (BatchNorm's
  // num_batches_tracked) is set to 0 instead, as torch 1.13 does for a state without version metadata (one
  // read from a safetensors file; later torch versions keep the module's count). Every problem is reported at
  // once in a StateDictError, and nothing is modified unless the whole state loads.
  LoadStateResult load_state_dict(const StateDict<T>& state, bool strict = true) {
    const std::vector<StateRef> refs = state_refs();
    StateMismatch m;
    std::unordered_set<std::string> expected;
    for (const StateRef& r : refs) {
      expected.insert(r.name);
      const auto* e = state.find(r.name);
      if (!e) {
        if (!r.counter) m.missing.push_back(r.name);
      } else if (e->is_integer != (r.counter != nullptr)) {
        m.wrong_type.push_back(r.name + ": expected " + (r.counter ? "an integer" : "a tensor") + ", found " +
                               (e->is_integer ? "an integer" : "a tensor"));
      } else if (!r.counter && e->tensor.shape() != r.tensor->shape()) {
        m.mis_shaped.push_back(r.name + ": expected " + shape_str(r.tensor->shape()) + ", found " +
                               shape_str(e->tensor.shape()));
      }
    }
    for (const auto& e : state)
      if (!expected.count(e.name)) m.unexpected.push_back(e.name);
    LoadStateResult result{m.missing, m.unexpected};
    if (!strict) {
      m.missing.clear();
      m.unexpected.clear();
    }
    if (!m.empty()) throw StateDictError("load_state_dict: the state does not match " + type_name() + ":", m);
    std::unordered_set<const Tensor<T>*>
        written;  // a parameter shared under two names is written through either
    for (const StateRef& r : refs) {
      const auto* e = state.find(r.name);
      if (r.counter) {
        *r.counter = e ? e->integer : 0;
      } else if (!e) {
        continue;
      } else {
        r.tensor->copy_(e->tensor);
        written.insert(r.tensor);
      }
    }
    for (auto& [name, p] : named_parameters())
      if (written.count(&p.value())) p.mark_modified();
    return result;
  }

  // Every parameter and buffer as a name and a pointer to its storage, in state_dict() order.
  struct StateRef {
    std::string name;
    Tensor<T>* tensor = nullptr;
    int64_t* counter = nullptr;
    bool is_parameter = false;
  };
  std::vector<StateRef> state_refs() const {
    std::vector<StateRef> out;
    for_each_module(
        [&](const std::string& prefix, const Module& m) {
          for (const auto& slot : m.params_) {
            if (!m.check_parameter(slot)) continue;
            Variable<T> handle =
                *slot.var;  // a handle to the shared state; its value() is the parameter's tensor
            out.push_back({prefix + slot.name, &handle.value(), nullptr, true});
          }
          for (const auto& slot : m.buffers_)
            out.push_back({prefix + slot.name, slot.tensor.get(), slot.counter.get()});
        },
        true, false);
    return out;
  }

 protected:
  Module() = default;

 private:
  struct ParamSlot {
    std::string name;
    std::unique_ptr<Variable<T>> owned;  // a parameter registered by value; null for a bound member
    Variable<T>* var;                    // the parameter: *owned, or the module's member
  };
  // Whether the slot holds a parameter now (a bound member may be undefined, as a bias left out); throws
  // when a bound member was assigned something a parameter cannot be (a computed, non-leaf Variable).
  bool check_parameter(const ParamSlot& slot) const {
    if (!slot.var->defined()) return false;
    if (!slot.var->is_leaf())
      throw std::logic_error(where() + ": parameter '" + slot.name +
                             "' was assigned a computed Variable (not a leaf); assign a new leaf "
                             "Variable(tensor, true), or write into its value()");
    return true;
  }
  struct BufferSlot {  // unique_ptrs, so references handed out stay valid as the vector grows
    std::string name;
    std::unique_ptr<Tensor<T>> tensor;
    std::unique_ptr<int64_t> counter;
  };
  struct ChildSlot {
    std::string name;
    ModulePtr module;
  };

  std::string where() const { return type_name(); }
  std::string child_list() const {
    std::string s = " (children:";
    for (const auto& slot : children_) s += " " + slot.name;
    return s + (children_.empty() ? " none)" : ")");
  }
  std::string frozen_mark() const {
    std::vector<std::string> frozen;
    std::size_t defined = 0;
    for (const auto& slot : params_)
      if (check_parameter(slot)) {
        ++defined;
        if (!slot.var->requires_grad()) frozen.push_back(slot.name);
      }
    if (frozen.empty()) return "";
    if (frozen.size() == defined) return " [frozen]";
    std::string s = " [frozen:";
    for (const auto& name : frozen) s += " " + name;
    return s + "]";
  }
  void check_new_name(const std::string& name, const char* kind) const {
    if (name.empty() || name.find('.') != std::string::npos)
      throw std::invalid_argument(where() + ": " + kind + " name '" + name +
                                  "' must be non-empty and contain no '.'");
    auto taken = [&](const auto& slots) {
      return std::any_of(slots.begin(), slots.end(), [&](const auto& s) { return s.name == name; });
    };
    if (taken(params_) || taken(buffers_) || taken(children_))
      throw std::invalid_argument(where() + ": cannot register " + kind + " '" + name +
                                  "': the name is taken");
  }
  // A module that is this one or contains it cannot become its child: the tree would be a cycle, and every
  // recursive walk (train(), parameters(), repr()) would never end.
  void check_no_cycle(const Module& module, const std::string& name) const {
    if (module.reaches(this))
      throw std::invalid_argument(where() + ": module '" + name +
                                  "' is this module or contains it (a module cannot be its own descendant)");
  }
  bool reaches(const Module* target) const {
    return this == target || std::any_of(children_.begin(), children_.end(),
                                         [&](const auto& c) { return c.module->reaches(target); });
  }
  // Calls f(prefix, module) for this module and (with recurse) its descendants, pre-order. With `dedupe`,
  // a module reachable under several names is visited once (PyTorch's named_modules()).
  template <class F>
  void for_each_module(F&& f, bool recurse = true, bool dedupe = true) const {
    std::unordered_set<const Module*> seen{this};
    visit("", f, recurse, dedupe, seen);
  }
  template <class F>
  void visit(const std::string& prefix, F& f, bool recurse, bool dedupe,
             std::unordered_set<const Module*>& seen) const {
    f(prefix, *this);
    if (!recurse) return;
    for (const auto& slot : children_) {
      if (dedupe && !seen.insert(slot.module.get()).second) continue;
      slot.module->visit(prefix + slot.name + ".", f, recurse, dedupe, seen);
    }
  }

  std::vector<ParamSlot> params_;
  std::vector<BufferSlot> buffers_;
  std::vector<ChildSlot> children_;
  bool training_ = true;
};

template <std::floating_point T>
std::ostream& operator<<(std::ostream& os, const Module<T>& m) {
  return os << m.repr();
}

// Freezes every parameter of a module for the lifetime of the scope and then gives each back its own
// setting. For a network that only passes gradients through, e.g. a GAN's discriminator while the
// generator's loss is backpropagated: its weight gradients would be thrown away, so they are not computed.
template <std::floating_point T>
class FrozenScope {
 public:
  explicit FrozenScope(Module<T>& module) {
    for (auto& [name, p] : module.named_parameters()) {
      saved_.emplace_back(p, p.requires_grad());
      p.set_requires_grad(false);
    }
  }
  ~FrozenScope() {
    for (auto& [p, requires_grad] : saved_) p.set_requires_grad(requires_grad);
  }
  FrozenScope(const FrozenScope&) = delete;
  FrozenScope& operator=(const FrozenScope&) = delete;

 private:
  std::vector<std::pair<Variable<T>, bool>> saved_;
};

}  // namespace sumi::nn
