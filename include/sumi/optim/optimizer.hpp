#pragma once
// Optimizer<T>: the base of the optimisers, as torch.optim.Optimizer. Parameters come in groups, each with
// its own learning rate and weight decay. step() updates every parameter that requires a gradient and has
// one, in place and outside the graph; the others are skipped and get no state. state_dict() exports the
// per-parameter state (step counts and moment buffers) so that a run resumes bit-exactly.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sumi/autograd/grad_mode.hpp"
#include "sumi/autograd/variable.hpp"
#include "sumi/nn/state_dict.hpp"
#include "sumi/util/number_text.hpp"

namespace sumi::optim {

template <std::floating_point T = float>
struct ParamGroup {
  std::vector<Variable<T>> params;
  double lr = 1e-3;
  double weight_decay = 0.0;
  // The rate learning-rate schedules start from: set by the first schedule made for the optimiser, as
  // PyTorch's "initial_lr", so that a later schedule starts from it too rather than from a rate the first
  // one already changed.
  std::optional<double> initial_lr = std::nullopt;
};

// One parameter's optimiser state: how many updates it has had, and named buffers ("exp_avg", ...).
template <std::floating_point T = float>
struct ParamState {
  int64_t step = 0;
  std::map<std::string, Tensor<T>> buffers;
};

// What the optimisers' constructors take their parameters from: a std::vector<Variable<T>>
// (model.parameters()) or anything that converts to one; a braced list of variables has its own overload.
// Deduced rather than a plain vector parameter so that a braced list of options alone ({.lr = 0.1}) is never
// taken for parameters: GCC 12 otherwise finds it ambiguous with std::vector's size constructor.
template <class P, class T>
concept ParameterList = std::convertible_to<P, std::vector<Variable<T>>>;

template <std::floating_point T = float>
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Adds a group with its own learning rate (and weight decay; by default the optimiser's). A parameter
  // may belong to one group only.
  void add_param_group(std::vector<Variable<T>> params, double lr) {
    add_param_group(std::move(params), lr, default_weight_decay_);
  }
  void add_param_group(std::vector<Variable<T>> params, double lr, double weight_decay) {
    check_hyperparameters(lr, weight_decay, groups_.size());
    for (std::size_t i = 0; i < params.size(); ++i) {
      const Variable<T>& p = params[i];
      if (!p.defined())
        throw std::invalid_argument(name() + ": parameter " + std::to_string(i) + " is undefined");
      if (!p.is_leaf())
        throw std::invalid_argument(name() + ": parameter " + std::to_string(i) + " is not a leaf variable");
      if (!p.value().is_contiguous())
        throw std::invalid_argument(name() + ": parameter " + std::to_string(i) + " is not contiguous");
      if (index_of(p) >= 0)
        throw std::invalid_argument(name() + ": a parameter appears in more than one parameter group");
      for (std::size_t j = 0; j < i; ++j)
        if (params[j].id() == p.id())
          throw std::invalid_argument(name() + ": a parameter appears twice in one parameter group");
    }
    groups_.push_back(ParamGroup<T>{std::move(params), lr, weight_decay});
  }

  // The groups; lr and weight_decay may be changed between steps (a learning-rate schedule). Add
  // parameters with add_param_group, not by editing `params`.
  std::vector<ParamGroup<T>>& param_groups() { return groups_; }
  const std::vector<ParamGroup<T>>& param_groups() const { return groups_; }
  // Sets the learning rate of every group.
  void set_lr(double lr) {
    check_setting("learning rate", lr, " in set_lr");
    for (auto& g : groups_) g.lr = lr;
  }

  // One update of every parameter that requires a gradient and has one defined. The groups' settings and
  // each parameter's value may have been replaced since they were added, so all are checked first: a step
  // either updates every parameter or, throwing, none.
  void step() {
    NoGradGuard no_grad;
    check_before_step();
    for (auto& group : groups_)
      for (auto& p : group.params) {
        if (!p.requires_grad() || !p.grad().defined()) continue;
        auto held = state_.find(p.id());
        if (held == state_.end()) held = state_.emplace(p.id(), HeldState{p, {}}).first;
        ParamState<T>& s = held->second.state;
        ++s.step;
        update(p, s, group);
        p.mark_modified();
      }
  }

  // Clears every parameter's gradient (undefined, as PyTorch's zero_grad(set_to_none=True)).
  void zero_grad() {
    for (auto& group : groups_)
      for (auto& p : group.params) p.zero_grad();
  }

  // The state of parameter p, or null when it has none (never updated, frozen, or never had a gradient).
  const ParamState<T>* state(const Variable<T>& p) const {
    auto it = state_.find(p.id());
    return it == state_.end() ? nullptr : &it->second.state;
  }
  std::size_t num_states() const { return state_.size(); }
  std::size_t num_params() const {
    std::size_t n = 0;
    for (const auto& g : groups_) n += g.params.size();
    return n;
  }

  // "<i>.step" (integer) and "<i>.<buffer>" for each parameter i with state, i counting the parameters of
  // all groups in order (as PyTorch's state_dict), and "param_groups.<g>.num_params" (integer) for each
  // group, so that a state is not loaded into other parameters whose shapes happen to match. Hyperparameters
  // (lr, betas, ...) are not included: the optimiser is rebuilt with them before load_state_dict().
  nn::StateDict<T> state_dict() const {
    nn::StateDict<T> d;
    for (std::size_t g = 0; g < groups_.size(); ++g)
      d.insert_integer(group_size_key(g), int64_t(groups_[g].params.size()));
    int64_t i = 0;
    for (const auto& group : groups_)
      for (const auto& p : group.params) {
        const std::string prefix = std::to_string(i++) + ".";
        const ParamState<T>* s = state(p);
        if (!s) continue;
        d.insert_integer(prefix + "step", s->step);
        for (const auto& [key, t] : s->buffers) d.insert(prefix + key, t.clone());
      }
    return d;
  }

  // Replaces the whole state with `d` (parameters absent from it get no state). Every problem (groups of
  // other sizes, a bad index, an unknown or missing buffer, a wrong shape) is reported at once and nothing
  // changes then. A state without group sizes (written before they were recorded) is checked per parameter.
  void load_state_dict(const nn::StateDict<T>& d) {
    std::vector<const Variable<T>*> params;
    for (const auto& group : groups_)
      for (const auto& p : group.params) params.push_back(&p);
    nn::StateMismatch m;
    std::map<std::size_t, ParamState<T>> loaded;
    std::size_t group_sizes_found = 0;
    for (const auto& e : d) {
      if (e.name.starts_with("param_groups.")) {
        ++group_sizes_found;
        std::size_t g = 0;
        while (g < groups_.size() && e.name != group_size_key(g)) ++g;
        if (g == groups_.size())
          m.unexpected.push_back(e.name + " (not 'param_groups.<g>.num_params' for one of " +
                                 std::to_string(groups_.size()) + " parameter groups)");
        else if (!e.is_integer)
          m.wrong_type.push_back(e.name + ": expected an integer, found a tensor");
        else if (e.integer != int64_t(groups_[g].params.size()))
          m.invalid_value.push_back(e.name + ": the state is for " + std::to_string(e.integer) +
                                    " parameters, this group has " +
                                    std::to_string(groups_[g].params.size()));
        continue;
      }
      const std::size_t dot = e.name.find('.');
      const auto index_text = std::string_view(e.name).substr(0, dot);
      const auto parsed = util::parse_number<std::size_t>(index_text);
      const std::size_t index = parsed.value_or(0);
      // Only the index as written ("7", not "07" or "+7"): two spellings of one index would overwrite each
      // other.
      if (dot == std::string::npos || !parsed || std::to_string(index) != index_text ||
          index >= params.size()) {
        m.unexpected.push_back(e.name + " (not '<parameter index>.<name>' for " +
                               std::to_string(params.size()) + " parameters)");
        continue;
      }
      const std::string key = e.name.substr(dot + 1);
      ParamState<T>& s = loaded[index];
      if (key == "step") {
        if (m.check_count(e)) s.step = e.integer;
        continue;
      }
      const auto names = buffer_names();
      if (std::find(names.begin(), names.end(), key) == names.end())
        m.unexpected.push_back(e.name);
      else if (m.check_tensor(e, params[index]->shape()))
        s.buffers[key] = e.tensor.clone();
    }
    if (group_sizes_found > 0)
      for (std::size_t g = 0; g < groups_.size(); ++g)
        if (!d.contains(group_size_key(g))) m.missing.push_back(group_size_key(g));
    for (const auto& [index, s] : loaded) {
      const std::string prefix = std::to_string(index) + ".";
      if (!d.contains(prefix + "step")) m.missing.push_back(prefix + "step");
      for (const std::string& key : required_buffers())
        if (!d.contains(prefix + key)) m.missing.push_back(prefix + key);
    }
    if (!m.empty()) throw nn::StateDictError(name() + ": load_state_dict: the state does not match:", m);
    state_.clear();
    for (auto& [index, s] : loaded)
      state_.try_emplace(params[index]->id(), HeldState{*params[index], std::move(s)});
  }

  virtual std::string name() const = 0;

 protected:
  explicit Optimizer(double default_weight_decay) : default_weight_decay_(default_weight_decay) {}

  // The group the constructors that take parameters make. As PyTorch, they refuse an empty list (an
  // optimiser made from its options alone takes its groups from add_param_group instead).
  void add_first_param_group(std::vector<Variable<T>> params, double lr) {
    if (params.empty())
      throw std::invalid_argument(
          name() +
          ": got an empty parameter list (to add groups later, make the optimiser from "
          "its options alone and call add_param_group)");
    add_param_group(std::move(params), lr);
  }

  // step(g) with the gradient of PyTorch's coupled weight decay (an L2 penalty): g = grad + weight_decay * p,
  // a lazy Eigen expression (the stored gradient is not modified; g reads p before step writes it), or grad
  // itself when weight_decay is 0, without the extra pass.
  template <class Grad, class Param, class Step>
  static void with_l2_penalty(double weight_decay, const Grad& grad, const Param& param, Step&& step) {
    if (weight_decay != 0)
      step(grad + T(weight_decay) * param);
    else
      step(grad);
  }

  // Refuses a setting that is negative, NaN or infinite, naming it (and `where`, when given).
  void check_setting(const char* setting, double value, const std::string& where = {}) const {
    if (!(value >= 0) || !std::isfinite(value))
      throw std::invalid_argument(name() + ": invalid " + setting + " " + util::format_round_trip(value) +
                                  where);
  }

  // The buffer `key` of a parameter's state, made filled with `initial` on first use.
  static Tensor<T>& buffer(ParamState<T>& s, const std::string& key, const Shape& shape, T initial = T(0)) {
    auto it = s.buffers.find(key);
    if (it == s.buffers.end()) it = s.buffers.emplace(key, Tensor<T>::full(shape, initial)).first;
    return it->second;
  }

  // Updates p (whose gradient is defined) in place; s.step has already been incremented.
  virtual void update(Variable<T>& p, ParamState<T>& s, const ParamGroup<T>& group) = 0;
  // The buffer names this optimiser may keep per parameter, and those it always keeps once it has state.
  virtual std::vector<std::string> buffer_names() const = 0;
  virtual std::vector<std::string> required_buffers() const { return buffer_names(); }

 private:
  void check_before_step() const {
    std::size_t i = 0;
    for (std::size_t g = 0; g < groups_.size(); ++g) {
      check_hyperparameters(groups_[g].lr, groups_[g].weight_decay, g);
      for (const auto& p : groups_[g].params) {
        const std::size_t index = i++;
        const auto which = [&] { return name() + ": parameter " + std::to_string(index); };  // errors only
        if (!p.requires_grad() || !p.grad().defined()) continue;
        if (!p.value().is_contiguous()) throw std::invalid_argument(which() + " is no longer contiguous");
        if (p.grad().shape() != p.shape())
          throw std::invalid_argument(which() + " has a gradient of shape " + shape_str(p.grad().shape()) +
                                      " for its shape " + shape_str(p.shape()));
        const ParamState<T>* s = state(p);
        if (!s) continue;
        for (const auto& [key, buffer] : s->buffers)
          if (buffer.shape() != p.shape())
            throw std::invalid_argument(which() + " has shape " + shape_str(p.shape()) + " but its state '" +
                                        key + "' has shape " + shape_str(buffer.shape()) +
                                        " (was the parameter's value replaced?)");
      }
    }
  }
  // Learning rates and weight decays must be finite and >= 0.
  void check_hyperparameters(double lr, double weight_decay, std::size_t group) const {
    const std::string where = " for group " + std::to_string(group);
    check_setting("learning rate", lr, where);
    check_setting("weight_decay", weight_decay, where);
  }
  static std::string group_size_key(std::size_t group) {
    return "param_groups." + std::to_string(group) + ".num_params";
  }
  int64_t index_of(const Variable<T>& p) const {
    int64_t i = 0;
    for (const auto& g : groups_)
      for (const auto& q : g.params) {
        if (q.id() == p.id()) return i;
        ++i;
      }
    return -1;
  }

  double default_weight_decay_;
  std::vector<ParamGroup<T>> groups_;
  // State by parameter identity. The parameter is held with it (as PyTorch's state holds the tensor), so the
  // address that is the key cannot be reused by a new parameter while a removed one's state remains.
  struct HeldState {
    Variable<T> parameter;
    ParamState<T> state;
  };
  std::unordered_map<const VariableState<T>*, HeldState> state_;
};

}  // namespace sumi::optim
