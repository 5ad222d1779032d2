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
  ReduceLROnPlateau(Optimizer<T>& optimizer, ReduceLROnPlateauOptions options = {})
      : optimizer_(&optimizer), options_(std::move(options)) {
    const std::size_t groups = optimizer.param_groups().size();
    require(options_.factor >= 0 && options_.factor < 1,
            "factor " + util::format_round_trip(options_.factor) + " must be in [0, 1)");
    require(options_.patience >= 0, "patience " + std::to_string(options_.patience) + " is negative");
    require(options_.cooldown >= 0, "cooldown " + std::to_string(options_.cooldown) + " is negative");
    require(options_.threshold >= 0 && std::isfinite(options_.threshold),
            "threshold " + util::format_round_trip(options_.threshold) + " must be finite and non-negative");
    require(options_.eps >= 0 && std::isfinite(options_.eps),
            "eps " + util::format_round_trip(options_.eps) + " must be finite and non-negative");
    require(options_.min_lr.size() == 1 || options_.min_lr.size() == groups,
            std::to_string(options_.min_lr.size()) + " min_lr values for " + std::to_string(groups) +
                " parameter groups (give one, or one per group)");
    for (double m : options_.min_lr)
      require(m >= 0 && std::isfinite(m),
              "min_lr " + util::format_round_trip(m) + " must be finite and non-negative");
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
  std::vector<double> last_lr() const {
    std::vector<double> lrs;
    for (const auto& g : optimizer_->param_groups()) lrs.push_back(g.lr);
    return lrs;
  }
  const ReduceLROnPlateauOptions& options() const { return options_; }

  // last_epoch, num_bad_epochs and cooldown_counter as integers, best as a one-element tensor and every
  // group's current rate as `lr` [groups]. In double whatever T is: rates and metrics keep their digits.
  nn::StateDict<double> state_dict() const {
    nn::StateDict<double> d;
    d.insert_integer("last_epoch", last_epoch_);
    d.insert_integer("num_bad_epochs", num_bad_epochs_);
    d.insert_integer("cooldown_counter", cooldown_counter_);
    d.insert("best", Tensor<double>::from_vector({best_}, {1}));
    const std::vector<double> lrs = last_lr();
    d.insert("lr", Tensor<double>::from_vector(lrs, {int64_t(lrs.size())}));
    return d;
  }

  // Restores a state_dict() and sets the groups' rates from it; a state that does not fit (a missing or
  // extra entry, another number of groups, a negative count, a NaN best or a bad rate) changes nothing.
  void load_state_dict(const nn::StateDict<double>& d) {
    require_group_count();
    nn::StateMismatch m;
    const std::size_t groups = optimizer_->param_groups().size();
    for (const char* name : {"last_epoch", "num_bad_epochs", "cooldown_counter", "best", "lr"})
      if (!d.contains(name)) m.missing.push_back(name);
    for (const auto& e : d) {
      if (e.name == "last_epoch" || e.name == "num_bad_epochs" || e.name == "cooldown_counter")
        m.check_count(e);
      else if (e.name == "best")
        m.check_tensor(e, {1}, [](double v) { return !std::isnan(v); });
      else if (e.name == "lr")
        m.check_tensor(e, {int64_t(groups)}, [](double v) { return v >= 0 && std::isfinite(v); });
      else
        m.unexpected.push_back(e.name);
    }
    if (!m.empty())
      throw nn::StateDictError("ReduceLROnPlateau: load_state_dict: the state does not match:", m);
    last_epoch_ = d.integer("last_epoch");
    num_bad_epochs_ = d.integer("num_bad_epochs");
    cooldown_counter_ = d.integer("cooldown_counter");
    best_ = d.tensor("best").data()[0];
    auto& param_groups = optimizer_->param_groups();
    for (std::size_t g = 0; g < groups; ++g) param_groups[g].lr = d.tensor("lr").data()[g];
  }

 private:
  bool is_better(double metric) const {
    const double t = options_.threshold;
    const bool rel = options_.threshold_mode == ThresholdMode::rel;
    if (options_.mode == PlateauMode::min) return metric < (rel ? best_ * (1 - t) : best_ - t);
    return metric > (rel ? best_ * (1 + t) : best_ + t);
  }
  void require(bool ok, const std::string& what) const {
    if (!ok) throw std::invalid_argument("ReduceLROnPlateau: " + what);
  }
  void require_group_count() const {
    if (optimizer_->param_groups().size() != options_.min_lr.size())
      throw std::logic_error(
          "ReduceLROnPlateau: the optimiser has " + std::to_string(optimizer_->param_groups().size()) +
          " parameter groups, the schedule was made for " + std::to_string(options_.min_lr.size()));
  }

  Optimizer<T>* optimizer_;
  ReduceLROnPlateauOptions options_;
  double best_ = options_.mode == PlateauMode::min ? std::numeric_limits<double>::infinity()
                                                   : -std::numeric_limits<double>::infinity();
  int64_t num_bad_epochs_ = 0;
  int64_t cooldown_counter_ = 0;
  int64_t last_epoch_ = 0;
};

}  // namespace sumi::optim
