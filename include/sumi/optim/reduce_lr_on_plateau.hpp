#pragma once
// ReduceLROnPlateau, as torch.optim.lr_scheduler.ReduceLROnPlateau: after more than `patience` epochs in a
// row without improvement of a metric (a validation loss, an accuracy), every parameter group's rate is
// multiplied by `factor`, not below its min_lr; `cooldown` epochs after a reduction count as neither good
// nor bad. Unlike the closed-form schedules (lr_scheduler.hpp), the rate depends on the metrics seen, so a
// resumed run restores the schedule from state_dict() (which also holds the rates).
//
//   optim::ReduceLROnPlateau<float> plateau(opt, {.factor = 0.5, .patience = 3});
//   for (int epoch = 0; epoch < epochs; ++epoch) { train_one_epoch(); plateau.step(validation_loss()); }
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "sumi/nn/state_dict.hpp"
#include "sumi/optim/lr_scheduler.hpp"
#include "sumi/optim/optimizer.hpp"
#include "sumi/util/number_text.hpp"

namespace sumi::optim {

// min: the metric should fall (a loss); max: it should rise (an accuracy).
enum class PlateauMode { min, max };
// rel: a metric improves on the best when below best * (1 - threshold) (min mode) or above
// best * (1 + threshold) (max mode); abs: when below best - threshold or above best + threshold.
enum class ThresholdMode { rel, abs };

struct ReduceLROnPlateauOptions {
  PlateauMode mode = PlateauMode::min;
  double factor = 0.1;  // in [0, 1)
  int64_t patience = 10;
  double threshold = 1e-4;
  ThresholdMode threshold_mode = ThresholdMode::rel;
  int64_t cooldown = 0;
  std::vector<double> min_lr = {0.0};  // one for every group, or one per group
  double eps = 1e-8;                   // a reduction smaller than eps is not made
};

template <std::floating_point T = float>
class ReduceLROnPlateau {
 public:
  ReduceLROnPlateau(const ReduceLROnPlateau&) = delete;  // it drives one optimiser, as LRScheduler
  ReduceLROnPlateau& operator=(const ReduceLROnPlateau&) = delete;
  ReduceLROnPlateau(Optimizer<T>& optimizer, ReduceLROnPlateauOptions options = {})
      : optimizer_(&optimizer), options_(std::move(options)) {
    const std::size_t groups = optimizer.param_groups().size();
    require(options_.factor >= 0 && options_.factor < 1,
            "factor " + util::format_round_trip(options_.factor) + " must be in [0, 1)");
    require(options_.patience >= 0, "patience " + std::to_string(options_.patience) + " is negative");
    require(options_.cooldown >= 0, "cooldown " + std::to_string(options_.cooldown) + " is negative");
    detail::require_finite_non_negative(kName, "threshold", options_.threshold);
    detail::require_finite_non_negative(kName, "eps", options_.eps);
    require(options_.min_lr.size() == 1 || options_.min_lr.size() == groups,
            std::to_string(options_.min_lr.size()) + " min_lr values for " + std::to_string(groups) +
                " parameter groups (give one, or one per group)");
    for (double m : options_.min_lr) detail::require_finite_non_negative(kName, "min_lr", m);
    if (options_.min_lr.size() == 1) options_.min_lr.assign(groups, options_.min_lr[0]);
  }

  // Takes the metric of the epoch just finished and reduces the rates if it is the (patience + 1)-th epoch in
  // a row without improvement. Returns whether a rate changed. A NaN metric is refused (PyTorch counts it as
  // an epoch without improvement): it means the training diverged, which no rate reduction hides.
  bool step(double metric) {
    if (std::isnan(metric))
      throw std::domain_error("ReduceLROnPlateau: the metric of epoch " + std::to_string(last_epoch_ + 1) +
                              " is NaN");
    require_group_count();
    ++last_epoch_;
    if (is_better(metric)) {
      best_ = metric;
      num_bad_epochs_ = 0;
    } else {
      ++num_bad_epochs_;
    }
    if (cooldown_counter_ > 0) {
      --cooldown_counter_;
      num_bad_epochs_ = 0;
    }
    if (num_bad_epochs_ <= options_.patience) return false;
    bool changed = false;
    auto& groups = optimizer_->param_groups();
    for (std::size_t g = 0; g < groups.size(); ++g) {
      const double reduced = std::max(groups[g].lr * options_.factor, options_.min_lr[g]);
      if (groups[g].lr - reduced > options_.eps) {
        groups[g].lr = reduced;
        changed = true;
      }
    }
    cooldown_counter_ = options_.cooldown;
    num_bad_epochs_ = 0;
    return changed;
  }

  // The best metric so far (+inf in min mode, -inf in max mode before the first step).
  double best() const { return best_; }
  int64_t num_bad_epochs() const { return num_bad_epochs_; }
  int64_t cooldown_counter() const { return cooldown_counter_; }
  // The number of step() calls so far.
  int64_t last_epoch() const { return last_epoch_; }
  // Every group's rate now.
  std::vector<double> last_lr() const { return detail::group_rates(*optimizer_); }
  const ReduceLROnPlateauOptions& options() const { return options_; }

  // last_epoch, num_bad_epochs and cooldown_counter; mode (0 min, 1 max), so that a state is not read with
  // the other sense of "better"; best and every group's current rate (lr.<g>) as reals, exact whatever T is.
  // It fits in a checkpoint's extra entries (nn::save_state) beside the optimiser's.
  nn::StateDict<T> state_dict() const {
    nn::StateDict<T> d;
    d.insert_integer("last_epoch", last_epoch_);
    d.insert_integer("num_bad_epochs", num_bad_epochs_);
    d.insert_integer("cooldown_counter", cooldown_counter_);
    d.insert_integer("mode", options_.mode == PlateauMode::min ? 0 : 1);
    d.insert_real("best", best_);
    const std::vector<double> lrs = last_lr();
    for (std::size_t g = 0; g < lrs.size(); ++g) d.insert_real(lr_key(g), lrs[g]);
    return d;
  }

  // Restores a state_dict() and sets the groups' rates from it; a state that does not fit (a missing or
  // extra entry, another number of groups or mode, a negative count, a NaN best or a bad rate) changes
  // nothing.
  void load_state_dict(const nn::StateDict<T>& d) {
    require_group_count();
    const std::size_t groups = optimizer_->param_groups().size();
    std::vector<std::string> names{"last_epoch", "num_bad_epochs", "cooldown_counter", "mode", "best"};
    for (std::size_t g = 0; g < groups; ++g) names.push_back(lr_key(g));
    nn::StateMismatch m;
    m.check_names(d, names);
    const int64_t mode = options_.mode == PlateauMode::min ? 0 : 1;
    for (const auto& e : d) {
      if (e.name == "last_epoch" || e.name == "num_bad_epochs" || e.name == "cooldown_counter")
        m.check_count(e);
      else if (e.name == "mode" && m.check_integer(e) && e.integer != mode)
        m.invalid_value.push_back("mode: " + std::to_string(e.integer) + " (" +
                                  (e.integer == 0   ? "min"
                                   : e.integer == 1 ? "max"
                                                    : "neither min nor max") +
                                  "), this schedule's is " + std::to_string(mode) + " (" +
                                  (mode == 0 ? "min" : "max") + ")");
      else if (e.name == "best")
        m.check_real(e, [](double v) { return !std::isnan(v); });
      else if (e.name.starts_with("lr."))
        m.check_real(e, [](double v) { return v >= 0 && std::isfinite(v); });
    }
    if (!m.empty())
      throw nn::StateDictError("ReduceLROnPlateau: load_state_dict: the state does not match:", m);
    last_epoch_ = d.integer("last_epoch");
    num_bad_epochs_ = d.integer("num_bad_epochs");
    cooldown_counter_ = d.integer("cooldown_counter");
    best_ = d.real("best");
    auto& param_groups = optimizer_->param_groups();
    for (std::size_t g = 0; g < groups; ++g) param_groups[g].lr = d.real(lr_key(g));
  }

 private:
  bool is_better(double metric) const {
    const double t = options_.threshold;
    const bool rel = options_.threshold_mode == ThresholdMode::rel;
    if (options_.mode == PlateauMode::min) return metric < (rel ? best_ * (1 - t) : best_ - t);
    return metric > (rel ? best_ * (1 + t) : best_ + t);
  }
  static std::string lr_key(std::size_t group) { return "lr." + std::to_string(group); }
  void require(bool ok, const std::string& what) const {
    if (!ok) throw std::invalid_argument(std::string(kName) + ": " + what);
  }
  void require_group_count() const {
    detail::require_group_count(*optimizer_, options_.min_lr.size(), kName);
  }

  static constexpr const char* kName = "ReduceLROnPlateau";
  Optimizer<T>* optimizer_;
  ReduceLROnPlateauOptions options_;
  double best_ = options_.mode == PlateauMode::min ? std::numeric_limits<double>::infinity()
                                                   : -std::numeric_limits<double>::infinity();
  int64_t num_bad_epochs_ = 0;
  int64_t cooldown_counter_ = 0;
  int64_t last_epoch_ = 0;
};

}  // namespace sumi::optim
