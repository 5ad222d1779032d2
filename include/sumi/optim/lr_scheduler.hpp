#pragma once
// Learning-rate schedules, as torch.optim.lr_scheduler: StepLR, MultiStepLR, ExponentialLR,
// CosineAnnealingLR, LinearLR, LambdaLR, and SequentialLR to run them one after another. A schedule sets
// every parameter group's learning rate from the group's base rate (its rate before the first schedule made
// for the optimiser changed it, PyTorch's initial_lr) and the epoch count:
//
//   optim::Adam<float> opt(model.parameters(), {.lr = 1e-3});
//   optim::StepLR<float> schedule(opt, {.step_size = 30, .gamma = 0.1});
//   for (int epoch = 0; epoch < epochs; ++epoch) { train_one_epoch(); schedule.step(); }
//
// Rates come from each schedule's closed form (PyTorch's step(epoch) form), so the rate of epoch e does
// not depend on how it was reached: a resumed run calls step_to(epochs_done), or load_state_dict() with the
// state_dict() it saved, and continues exactly. Unlike PyTorch's chained form, a rate set by hand between
// steps is replaced at the next step, not scaled, and two schedules stepped together do not multiply (the
// last one stepped sets the rate): combine them with SequentialLR or a LambdaLR.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <numbers>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "sumi/nn/state_dict.hpp"
#include "sumi/optim/optimizer.hpp"
#include "sumi/util/number_text.hpp"

namespace sumi::optim {

// What the closed-form schedules and ReduceLROnPlateau share.
namespace detail {
// Every group's rate now (PyTorch's get_last_lr()).
template <class T>
std::vector<double> group_rates(const Optimizer<T>& optimizer) {
  std::vector<double> lrs;
  for (const auto& g : optimizer.param_groups()) lrs.push_back(g.lr);
  return lrs;
}
// Refuses an optimiser whose number of groups changed since the schedule `name` was made for `made_for`.
template <class T>
void require_group_count(const Optimizer<T>& optimizer, std::size_t made_for, const std::string& name) {
  if (optimizer.param_groups().size() != made_for)
    throw std::logic_error(name + ": the optimiser has " + std::to_string(optimizer.param_groups().size()) +
                           " parameter groups, the schedule was made for " + std::to_string(made_for));
}
// Refuses a setting of the schedule `name` that is negative, NaN or infinite.
inline void require_finite_non_negative(const std::string& name, const char* setting, double value) {
  if (!(std::isfinite(value) && value >= 0))
    throw std::invalid_argument(name + ": " + setting + " " + util::format_round_trip(value) +
                                " must be finite and non-negative");
}
}  // namespace detail

template <std::floating_point T = float>
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  // Moves to the next epoch and sets every group's rate for it.
  void step() { step_to(last_epoch_ + 1); }

  // Sets every group's rate for `epoch` (>= 0): the schedule's state after `epoch` calls of step().
  void step_to(int64_t epoch) {
    if (epoch < 0) throw std::invalid_argument(name_ + ": epoch " + std::to_string(epoch) + " is negative");
    detail::require_group_count(*optimizer_, base_lrs_.size(), name_);
    auto& groups = optimizer_->param_groups();
    std::vector<double> lrs(base_lrs_.size());
    for (std::size_t g = 0; g < lrs.size(); ++g) {
      lrs[g] = lr_at(base_lrs_[g], epoch);
      if (!std::isfinite(lrs[g]) || lrs[g] < 0)
        throw std::domain_error(name_ + ": the learning rate of group " + std::to_string(g) + " at epoch " +
                                std::to_string(epoch) + " is " + util::format_round_trip(lrs[g]));
    }
    for (std::size_t g = 0; g < lrs.size(); ++g) groups[g].lr = lrs[g];
    last_epoch_ = epoch;
  }

  // The number of step() calls so far (PyTorch's last_epoch).
  int64_t last_epoch() const { return last_epoch_; }
  // Every group's rate before the first schedule of its optimiser changed it (its initial_lr).
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  const Optimizer<T>& optimizer() const { return *optimizer_; }
  // Every group's rate now (PyTorch's get_last_lr()).
  std::vector<double> last_lr() const { return detail::group_rates(*optimizer_); }

  // The rate of a group with base rate `base_lr` at `epoch`.
  virtual double lr_at(double base_lr, int64_t epoch) const = 0;

  // last_epoch and every group's base rate (base_lrs.<g>, reals: exact whatever T is), as torch's
  // state_dict() holds them. It fits in a checkpoint's extra entries (nn::save_state) beside the optimiser's.
  nn::StateDict<T> state_dict() const {
    nn::StateDict<T> d;
    d.insert_integer("last_epoch", last_epoch_);
    for (std::size_t g = 0; g < base_lrs_.size(); ++g) d.insert_real(base_lr_key(g), base_lrs_[g]);
    return d;
  }
  // Takes the state's base rates (also as the groups' initial_lr, which later schedules start from) and sets
  // every group's rate for its last_epoch. A state that does not fit (a missing or extra entry, another
  // number of groups, a negative epoch or base rate, a rate the schedule refuses) changes nothing.
  void load_state_dict(const nn::StateDict<T>& d) {
    std::vector<std::string> names{"last_epoch"};
    for (std::size_t g = 0; g < base_lrs_.size(); ++g) names.push_back(base_lr_key(g));
    nn::StateMismatch m;
    m.check_names(d, names);
    for (const auto& e : d)
      if (e.name == "last_epoch")
        m.check_count(e);
      else if (e.name.starts_with("base_lrs."))
        m.check_real(e, [](double v) { return v >= 0 && std::isfinite(v); });
    if (!m.empty()) throw nn::StateDictError(name_ + ": load_state_dict: the state does not match:", m);
    std::vector<double> loaded;
    for (std::size_t g = 0; g < base_lrs_.size(); ++g) loaded.push_back(d.real(base_lr_key(g)));
    const std::vector<double> previous = std::exchange(base_lrs_, loaded);
    try {
      step_to(d.integer("last_epoch"));
    } catch (...) {
      base_lrs_ = previous;
      throw;
    }
    auto& groups = optimizer_->param_groups();
    for (std::size_t g = 0; g < groups.size(); ++g) groups[g].initial_lr = base_lrs_[g];
  }

 protected:
  LRScheduler(Optimizer<T>& optimizer, std::string name) : optimizer_(&optimizer), name_(std::move(name)) {}
  // Derived constructors call start() once their settings are checked: it takes each group's base rate
  // (recording it as the group's initial_lr if no schedule did) and sets the rates of epoch 0, so a
  // schedule refused for its settings changes nothing.
  void start() {
    auto& groups = optimizer_->param_groups();
    for (const auto& g : groups) base_lrs_.push_back(g.initial_lr.value_or(g.lr));
    step_to(0);  // changes no group when it throws
    for (std::size_t i = 0; i < groups.size(); ++i)
      if (!groups[i].initial_lr) groups[i].initial_lr = base_lrs_[i];
  }
  static std::string base_lr_key(std::size_t group) { return "base_lrs." + std::to_string(group); }
  void require(bool ok, const std::string& what) const {
    if (!ok) throw std::invalid_argument(name_ + ": " + what);
  }
  void require_finite_non_negative(const char* setting, double value) const {
    detail::require_finite_non_negative(name_, setting, value);
  }

 private:
  Optimizer<T>* optimizer_;
  std::string name_;
  std::vector<double> base_lrs_;
  int64_t last_epoch_ = 0;
};

// base_lr * gamma^(epoch / step_size)
struct StepLROptions {
  int64_t step_size = 1;
  double gamma = 0.1;
};

template <std::floating_point T = float>
class StepLR final : public LRScheduler<T> {
 public:
  StepLR(Optimizer<T>& optimizer, const StepLROptions& options)
      : LRScheduler<T>(optimizer, "StepLR"), options_(options) {
    this->require(options_.step_size >= 1,
                  "step_size " + std::to_string(options_.step_size) + " must be at least 1");
    this->require_finite_non_negative("gamma", options_.gamma);
    this->start();
  }
  double lr_at(double base_lr, int64_t epoch) const override {
    return base_lr * std::pow(options_.gamma, double(epoch / options_.step_size));
  }

 private:
  StepLROptions options_;
};

// base_lr * gamma^(the number of milestones <= epoch); a milestone listed twice counts twice, as PyTorch.
struct MultiStepLROptions {
  std::vector<int64_t> milestones = {};
  double gamma = 0.1;
};

template <std::floating_point T = float>
class MultiStepLR final : public LRScheduler<T> {
 public:
  MultiStepLR(Optimizer<T>& optimizer, MultiStepLROptions options)
      : LRScheduler<T>(optimizer, "MultiStepLR"), options_(std::move(options)) {
    for (int64_t m : options_.milestones)
      this->require(m >= 0, "milestone " + std::to_string(m) + " is negative");
    this->require_finite_non_negative("gamma", options_.gamma);
    std::sort(options_.milestones.begin(), options_.milestones.end());
    this->start();
  }
  double lr_at(double base_lr, int64_t epoch) const override {
    const auto passed = std::upper_bound(options_.milestones.begin(), options_.milestones.end(), epoch) -
                        options_.milestones.begin();
    return base_lr * std::pow(options_.gamma, double(passed));
  }

 private:
  MultiStepLROptions options_;
};

// base_lr * gamma^epoch
struct ExponentialLROptions {
  double gamma = 0.1;
};

template <std::floating_point T = float>
class ExponentialLR final : public LRScheduler<T> {
 public:
  ExponentialLR(Optimizer<T>& optimizer, const ExponentialLROptions& options)
      : LRScheduler<T>(optimizer, "ExponentialLR"), options_(options) {
    this->require_finite_non_negative("gamma", options_.gamma);
    this->start();
  }
  double lr_at(double base_lr, int64_t epoch) const override {
    return base_lr * std::pow(options_.gamma, double(epoch));
  }

 private:
  ExponentialLROptions options_;
};

// eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2: from base_lr down to eta_min at
// epoch T_max, and back up over the next T_max epochs, as PyTorch's (without restarts).
struct CosineAnnealingLROptions {
  int64_t T_max = 1;
  double eta_min = 0;
};

template <std::floating_point T = float>
class CosineAnnealingLR final : public LRScheduler<T> {
 public:
  CosineAnnealingLR(Optimizer<T>& optimizer, const CosineAnnealingLROptions& options)
      : LRScheduler<T>(optimizer, "CosineAnnealingLR"), options_(options) {
    this->require(options_.T_max >= 1, "T_max " + std::to_string(options_.T_max) + " must be at least 1");
    this->require_finite_non_negative("eta_min", options_.eta_min);
    this->start();
  }
  double lr_at(double base_lr, int64_t epoch) const override {
    // The cosine's period is 2 * T_max: reducing first keeps the angle exact for any epoch (unsigned: 2 *
    // T_max may exceed int64).
    const double phase = double(uint64_t(epoch) % (2 * uint64_t(options_.T_max))) / double(options_.T_max);
    return options_.eta_min + (base_lr - options_.eta_min) * (1 + std::cos(std::numbers::pi * phase)) / 2;
  }

 private:
  CosineAnnealingLROptions options_;
};

// base_lr * factor, the factor going linearly from start_factor at epoch 0 to end_factor at total_iters and
// staying there: a warm-up with the defaults.
struct LinearLROptions {
  double start_factor = 1.0 / 3;
  double end_factor = 1.0;
  int64_t total_iters = 5;
};

template <std::floating_point T = float>
class LinearLR final : public LRScheduler<T> {
 public:
  LinearLR(Optimizer<T>& optimizer, const LinearLROptions& options)
      : LRScheduler<T>(optimizer, "LinearLR"), options_(options) {
    this->require(options_.start_factor > 0 && options_.start_factor <= 1,
                  "start_factor " + util::format_round_trip(options_.start_factor) + " must be in (0, 1]");
    this->require(options_.end_factor >= 0 && options_.end_factor <= 1,
                  "end_factor " + util::format_round_trip(options_.end_factor) + " must be in [0, 1]");
    this->require(options_.total_iters >= 1,
                  "total_iters " + std::to_string(options_.total_iters) + " must be at least 1");
    this->start();
  }
  double lr_at(double base_lr, int64_t epoch) const override {
    const double done = double(std::min(epoch, options_.total_iters)) / double(options_.total_iters);
    return base_lr * (options_.start_factor + (options_.end_factor - options_.start_factor) * done);
  }

 private:
  LinearLROptions options_;
};

// base_lr * factor(epoch), for any schedule a function can say.
template <std::floating_point T = float>
class LambdaLR final : public LRScheduler<T> {
 public:
  LambdaLR(Optimizer<T>& optimizer, std::function<double(int64_t)> factor)
      : LRScheduler<T>(optimizer, "LambdaLR"), factor_(std::move(factor)) {
    this->require(bool(factor_), "the factor function is empty");
    this->start();
  }
  double lr_at(double base_lr, int64_t epoch) const override { return base_lr * factor_(epoch); }

 private:
  std::function<double(int64_t)> factor_;
};

// schedules[0] until epoch milestones[0], then schedules[1] from its own epoch 0, and so on, as PyTorch's
// SequentialLR: a warm-up, then a decay. The schedules it runs lend it only their lr_at(); step this one,
// not them (their own last_epoch() stays 0).
//
//   using Schedule = std::shared_ptr<const optim::LRScheduler<float>>;
//   Schedule warmup = std::make_shared<optim::LinearLR<float>>(opt, optim::LinearLROptions{});
//   Schedule decay =
//       std::make_shared<optim::CosineAnnealingLR<float>>(opt, optim::CosineAnnealingLROptions{.T_max = 45});
//   optim::SequentialLR<float> schedule(opt, {warmup, decay}, {5});
template <std::floating_point T = float>
class SequentialLR final : public LRScheduler<T> {
 public:
  SequentialLR(Optimizer<T>& optimizer, std::vector<std::shared_ptr<const LRScheduler<T>>> schedules,
               std::vector<int64_t> milestones)
      : LRScheduler<T>(optimizer, "SequentialLR"),
        schedules_(std::move(schedules)),
        milestones_(std::move(milestones)) {
    this->require(!schedules_.empty(), "no schedules given");
    this->require(milestones_.size() + 1 == schedules_.size(),
                  std::to_string(schedules_.size()) + " schedules need " +
                      std::to_string(schedules_.size() - 1) + " milestones, got " +
                      std::to_string(milestones_.size()));
    for (std::size_t i = 0; i < schedules_.size(); ++i) {
      this->require(schedules_[i] != nullptr, "schedule " + std::to_string(i) + " is null");
      this->require(&schedules_[i]->optimizer() == &optimizer,
                    "schedule " + std::to_string(i) + " belongs to another optimiser");
    }
    for (std::size_t i = 0; i < milestones_.size(); ++i)
      this->require(milestones_[i] >= 1 && (i == 0 || milestones_[i] > milestones_[i - 1]),
                    "milestones must be positive and increasing, milestone " + std::to_string(i) + " is " +
                        std::to_string(milestones_[i]));
    this->start();
  }
  double lr_at(double base_lr, int64_t epoch) const override {
    const auto i =
        std::size_t(std::upper_bound(milestones_.begin(), milestones_.end(), epoch) - milestones_.begin());
    return schedules_[i]->lr_at(base_lr, i == 0 ? epoch : epoch - milestones_[i - 1]);
  }

 private:
  std::vector<std::shared_ptr<const LRScheduler<T>>> schedules_;
  std::vector<int64_t> milestones_;
};

}  // namespace sumi::optim
