#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "sumi/nn/linear.hpp"
#include "sumi/nn/serialize.hpp"
#include "sumi/ops/reduction.hpp"
#include "sumi/optim/lr_scheduler.hpp"
#include "sumi/optim/reduce_lr_on_plateau.hpp"
#include "sumi/optim/sgd.hpp"

using namespace sumi;
using Catch::Matchers::Contains;

namespace {

// An SGD optimiser with one single-element parameter per base rate, one group each.
std::unique_ptr<optim::SGD<double>> optimizer_with_groups(const std::vector<double>& base_lrs) {
  auto opt = std::make_unique<optim::SGD<double>>(optim::SGDOptions{});
  for (double lr : base_lrs) opt->add_param_group({Variable<double>(Tensor<double>::zeros({1}), true)}, lr);
  return opt;
}

std::unique_ptr<optim::LRScheduler<double>> make_schedule(const std::string& run,
                                                          optim::Optimizer<double>& opt) {
  if (run == "step") return std::make_unique<optim::StepLR<double>>(opt, optim::StepLROptions{3, 0.5});
  if (run == "multistep")
    return std::make_unique<optim::MultiStepLR<double>>(opt, optim::MultiStepLROptions{{9, 5, 2, 5}, 0.1});
  if (run == "exponential")
    return std::make_unique<optim::ExponentialLR<double>>(opt, optim::ExponentialLROptions{0.9});
  if (run == "cosine")
    return std::make_unique<optim::CosineAnnealingLR<double>>(opt,
                                                              optim::CosineAnnealingLROptions{10, 0.001});
  if (run == "linear")
    return std::make_unique<optim::LinearLR<double>>(opt, optim::LinearLROptions{1.0 / 3, 1.0, 4});
  if (run == "sequential") {
    auto warmup = std::make_shared<optim::LinearLR<double>>(opt, optim::LinearLROptions{0.1, 1.0, 5});
    auto decay =
        std::make_shared<optim::CosineAnnealingLR<double>>(opt, optim::CosineAnnealingLROptions{15, 0.001});
    return std::make_unique<optim::SequentialLR<double>>(
        opt, std::vector<std::shared_ptr<const optim::LRScheduler<double>>>{warmup, decay},
        std::vector<int64_t>{5});
  }
  FAIL("unknown schedule " << run);
  return nullptr;
}

// The settings of a reduce_lr_on_plateau.safetensors run.
optim::ReduceLROnPlateauOptions plateau_options(const nlohmann::json& cfg) {
  optim::ReduceLROnPlateauOptions options{
      .mode = cfg.at("mode") == "min" ? optim::PlateauMode::min : optim::PlateauMode::max,
      .factor = cfg.at("factor"),
      .patience = cfg.at("patience"),
      .threshold = cfg.at("threshold"),
      .threshold_mode =
          cfg.at("threshold_mode") == "rel" ? optim::ThresholdMode::rel : optim::ThresholdMode::abs,
      .cooldown = cfg.at("cooldown"),
      .eps = cfg.at("eps")};
  const auto& min_lr = cfg.at("min_lr");
  options.min_lr =
      min_lr.is_array() ? min_lr.get<std::vector<double>>() : std::vector<double>{min_lr.get<double>()};
  return options;
}

}  // namespace

TEST_CASE("learning-rate schedules give PyTorch's rates epoch by epoch", "[optim][lr_scheduler][fixture]") {
  test::Fixture fx("lr_scheduler");
  const auto base_lrs = fx.meta_json("base_lrs").get<std::vector<double>>();
  const auto runs = fx.meta_json("runs").get<std::vector<std::string>>();
  REQUIRE(runs.size() == 6);
  for (const std::string& run : runs) {
    INFO("schedule " << run << " " << fx.meta(run + ".config"));
    auto opt = optimizer_with_groups(base_lrs);
    auto schedule = make_schedule(run, *opt);
    const Shape shape = fx.shape(run + ".lr");
    REQUIRE(shape == Shape{26, 2});
    Tensor<double> lrs = Tensor<double>::empty(shape);
    for (int64_t epoch = 0; epoch < shape[0]; ++epoch) {
      if (epoch > 0) schedule->step();
      CHECK(schedule->last_epoch() == epoch);
      for (int64_t g = 0; g < 2; ++g) lrs.data()[epoch * 2 + g] = opt->param_groups()[std::size_t(g)].lr;
    }
    fx.require_close(run + ".lr", lrs, 1e-6);
    CHECK(schedule->base_lrs() == base_lrs);
    CHECK(schedule->last_lr() == std::vector<double>{lrs.data()[50], lrs.data()[51]});
  }
}

TEST_CASE("a schedule resumed with step_to continues as if it had stepped", "[optim][lr_scheduler]") {
  for (const std::string run : {"step", "multistep", "exponential", "cosine", "linear", "sequential"}) {
    INFO("schedule " << run);
    auto stepped_opt = optimizer_with_groups({0.1, 0.02});
    auto stepped = make_schedule(run, *stepped_opt);
    for (int i = 0; i < 7; ++i) stepped->step();
    // A new run: the optimiser is rebuilt with the base rates, the schedule moved to epoch 7.
    auto resumed_opt = optimizer_with_groups({0.1, 0.02});
    auto resumed = make_schedule(run, *resumed_opt);
    resumed->step_to(7);
    for (int i = 0; i < 5; ++i) {
      CHECK(resumed->last_lr() == stepped->last_lr());
      stepped->step();
      resumed->step();
    }
    CHECK(resumed->last_epoch() == 12);
  }
}

TEST_CASE("a schedule's state dict resumes it, base rates included", "[optim][lr_scheduler][state]") {
  for (const std::string run : {"step", "multistep", "exponential", "cosine", "linear", "sequential"}) {
    INFO("schedule " << run);
    // A group's rate was changed by hand before the schedule was made: its base rate is that one.
    auto stepped_opt = optimizer_with_groups({0.1, 0.02});
    stepped_opt->param_groups()[1].lr = 0.04;
    auto stepped = make_schedule(run, *stepped_opt);
    for (int i = 0; i < 7; ++i) stepped->step();
    const nn::StateDict<double> state = stepped->state_dict();
    CHECK(state.integer("last_epoch") == 7);
    // The new run's optimiser has the rates of its options; the state brings the base rates and epoch.
    auto resumed_opt = optimizer_with_groups({0.1, 0.02});
    auto resumed = make_schedule(run, *resumed_opt);
    resumed->load_state_dict(state);
    CHECK(resumed->base_lrs() == std::vector<double>{0.1, 0.04});
    for (int i = 0; i < 5; ++i) {
      CHECK(resumed->last_lr() == stepped->last_lr());
      stepped->step();
      resumed->step();
    }
  }
  // A state for three groups, with a negative epoch: both named, nothing changed.
  auto opt = optimizer_with_groups({0.1, 0.02});
  optim::StepLR<double> schedule(*opt, {.step_size = 2, .gamma = 0.5});
  schedule.step();
  nn::StateDict<double> bad;
  bad.insert_integer("last_epoch", -3);
  bad.insert_real("base_lrs.0", 0.1);
  bad.insert_real("base_lrs.1", 0.2);
  bad.insert_real("base_lrs.2", 0.3);
  CHECK_THROWS_WITH(schedule.load_state_dict(bad), Contains("StepLR: load_state_dict") &&
                                                       Contains("last_epoch: negative (-3)") &&
                                                       Contains("unexpected (1): base_lrs.2"));
  CHECK(schedule.last_epoch() == 1);
  CHECK(schedule.base_lrs() == std::vector<double>{0.1, 0.02});
  // A rate the schedule refuses at the state's epoch: refused, the base rates and the epoch kept.
  auto lambda_opt = optimizer_with_groups({0.1});
  optim::LambdaLR<double> lambda(*lambda_opt, [](int64_t epoch) { return epoch < 5 ? 1.0 : -1.0; });
  nn::StateDict<double> at_epoch_6;
  at_epoch_6.insert_integer("last_epoch", 6);
  at_epoch_6.insert_real("base_lrs.0", 0.5);
  CHECK_THROWS_WITH(lambda.load_state_dict(at_epoch_6), Contains("at epoch 6 is -0.5"));
  CHECK(lambda.base_lrs() == std::vector<double>{0.1});
  CHECK(lambda.last_epoch() == 0);
  CHECK(lambda_opt->param_groups()[0].initial_lr == 0.1);
}

TEST_CASE("schedule states go through a float model's checkpoint exactly", "[optim][lr_scheduler][state]") {
  // Rates that float cannot hold, and ReduceLROnPlateau's best before its first step (infinite).
  Variable<float> p(Tensor<float>::zeros({1}), true);
  optim::SGD<float> opt({p}, {.lr = 0.1});
  optim::CosineAnnealingLR<float> cosine(opt, {.T_max = 7, .eta_min = 1e-3});
  for (int i = 0; i < 3; ++i) cosine.step();
  optim::ReduceLROnPlateau<float> plateau(opt, {.factor = 0.3});
  nn::StateDict<float> extra = cosine.state_dict().with_prefix("cosine.");
  for (const auto& e : plateau.state_dict().with_prefix("plateau."))  // integers and reals only
    extra.insert_integer(e.name, e.integer);
  nn::Linear<float> model(2, 1);
  const auto path = std::filesystem::temp_directory_path() / "sumi_schedule_state.safetensors";
  nn::save_state(model, path, {}, extra);
  const nn::LoadedState<float> loaded = nn::load_state(model, path);
  std::filesystem::remove(path);

  optim::SGD<float> resumed_opt({Variable<float>(Tensor<float>::zeros({1}), true)}, {.lr = 0.1});
  optim::CosineAnnealingLR<float> resumed_cosine(resumed_opt, {.T_max = 7, .eta_min = 1e-3});
  resumed_cosine.load_state_dict(loaded.extra.strip_prefix("cosine."));
  CHECK(resumed_cosine.last_lr() == cosine.last_lr());
  CHECK(resumed_cosine.base_lrs() == cosine.base_lrs());
  optim::ReduceLROnPlateau<float> resumed_plateau(resumed_opt, {.factor = 0.3});
  resumed_plateau.load_state_dict(loaded.extra.strip_prefix("plateau."));
  CHECK(resumed_plateau.best() == std::numeric_limits<double>::infinity());
  CHECK(resumed_plateau.last_lr() == cosine.last_lr());
}

TEST_CASE("the optimiser steps with the scheduled rate", "[optim][lr_scheduler]") {
  Variable<double> p(Tensor<double>::ones({1}), true);
  optim::SGD<double> opt({p}, {.lr = 0.5});
  optim::StepLR<double> schedule(opt, {.step_size = 1, .gamma = 0.5});
  double expected = 1;
  for (double lr : {0.5, 0.25, 0.125}) {
    opt.zero_grad();
    sum(p).backward();  // gradient 1
    opt.step();
    expected -= lr;
    CHECK(p.value().data()[0] == expected);
    schedule.step();
  }
}

TEST_CASE("LambdaLR scales the base rate by the function of the epoch", "[optim][lr_scheduler]") {
  auto opt = optimizer_with_groups({0.1, 0.4});
  optim::LambdaLR<double> schedule(*opt, [](int64_t epoch) { return 1.0 / double(epoch + 1); });
  CHECK(schedule.last_lr() == std::vector<double>{0.1, 0.4});
  schedule.step();
  schedule.step();
  CHECK(schedule.last_lr() == std::vector<double>{0.1 / 3, 0.4 / 3});
}

TEST_CASE("a second schedule starts from the rate the first one started from, as PyTorch's initial_lr",
          "[optim][lr_scheduler]") {
  auto opt = optimizer_with_groups({0.1});
  optim::LinearLR<double> warmup(*opt, {.start_factor = 0.25, .total_iters = 4});
  CHECK(opt->param_groups()[0].lr == 0.025);
  optim::CosineAnnealingLR<double> decay(*opt, {.T_max = 10});
  CHECK(decay.base_lrs() == std::vector<double>{0.1});  // PyTorch: [0.1]
  CHECK(opt->param_groups()[0].lr == 0.1);
  // A schedule refused for its settings records nothing: the next one starts from the rate set by hand.
  auto fresh = optimizer_with_groups({0.1});
  CHECK_THROWS(optim::LinearLR<double>(*fresh, {.start_factor = 2.0}));
  CHECK_THROWS(optim::LambdaLR<double>(*fresh, [](int64_t) { return -1.0; }));
  fresh->set_lr(0.5);
  optim::StepLR<double> step(*fresh, {.step_size = 3, .gamma = 0.1});
  CHECK(step.base_lrs() == std::vector<double>{0.5});
  CHECK(fresh->param_groups()[0].lr == 0.5);
}

TEST_CASE("a cosine schedule stays exact for huge periods and epochs", "[optim][lr_scheduler]") {
  constexpr int64_t max = std::numeric_limits<int64_t>::max();
  auto opt = optimizer_with_groups({0.1});
  optim::CosineAnnealingLR<double> huge_period(*opt, {.T_max = max, .eta_min = 0.0});
  huge_period.step_to(max);  // the end of the half period: eta_min
  CHECK(opt->param_groups()[0].lr == Approx(0.0).margin(1e-12));
  huge_period.step_to(max / 2 + 1);  // half way down
  CHECK(opt->param_groups()[0].lr == Approx(0.05));
  // A period of 20 epochs: an epoch far beyond double's integers is reduced exactly first (10 past a whole
  // number of periods: eta_min).
  auto opt2 = optimizer_with_groups({0.1});
  optim::CosineAnnealingLR<double> small_period(*opt2, {.T_max = 10, .eta_min = 0.001});
  small_period.step_to(max / 20 * 20 - 10);
  CHECK(opt2->param_groups()[0].lr == Approx(0.001).epsilon(1e-12));
}

TEST_CASE("schedules refuse bad settings and rates, naming them", "[optim][lr_scheduler][errors]") {
  auto opt = optimizer_with_groups({0.1});
  CHECK_THROWS_WITH(optim::StepLR<double>(*opt, {.step_size = 0}),
                    Contains("StepLR") && Contains("step_size 0"));
  CHECK_THROWS_WITH(optim::ExponentialLR<double>(*opt, {.gamma = std::nan("")}),
                    Contains("ExponentialLR") && Contains("gamma nan"));
  CHECK_THROWS_WITH(optim::MultiStepLR<double>(*opt, {.milestones = {3, -1}}), Contains("milestone -1"));
  CHECK_THROWS_WITH(optim::CosineAnnealingLR<double>(*opt, {.T_max = 0}), Contains("T_max 0"));
  CHECK_THROWS_WITH(optim::LinearLR<double>(*opt, {.start_factor = 0}), Contains("start_factor 0"));
  CHECK_THROWS_WITH(optim::LambdaLR<double>(*opt, nullptr), Contains("LambdaLR") && Contains("empty"));
  // A rate the function makes negative is refused before any group changes.
  optim::LambdaLR<double> schedule(*opt, [](int64_t epoch) { return epoch < 2 ? 1.0 : -1.0; });
  schedule.step();
  CHECK_THROWS_WITH(schedule.step(), Contains("group 0") && Contains("epoch 2") && Contains("-0.1"));
  CHECK(opt->param_groups()[0].lr == 0.1);
  CHECK(schedule.last_epoch() == 1);
  CHECK_THROWS_WITH(schedule.step_to(-1), Contains("epoch -1"));
  auto other = optimizer_with_groups({0.1});
  const auto step = std::make_shared<optim::StepLR<double>>(*opt, optim::StepLROptions{});
  const auto foreign = std::make_shared<optim::StepLR<double>>(*other, optim::StepLROptions{});
  using Schedules = std::vector<std::shared_ptr<const optim::LRScheduler<double>>>;
  CHECK_THROWS_WITH(optim::SequentialLR<double>(*opt, Schedules{step, step}, {}),
                    Contains("SequentialLR") && Contains("2 schedules need 1 milestones, got 0"));
  CHECK_THROWS_WITH(optim::SequentialLR<double>(*opt, Schedules{step, foreign}, {3}),
                    Contains("schedule 1 belongs to another optimiser"));
  CHECK_THROWS_WITH(optim::SequentialLR<double>(*opt, Schedules{step, step, step}, {3, 3}),
                    Contains("milestone 1 is 3"));
  CHECK_THROWS_WITH(optim::SequentialLR<double>(*opt, Schedules{}, {}), Contains("no schedules"));
  opt->add_param_group({Variable<double>(Tensor<double>::zeros({1}), true)}, 0.2);
  CHECK_THROWS_WITH(schedule.step_to(0), Contains("2 parameter groups") && Contains("made for 1"));
}

TEST_CASE("ReduceLROnPlateau gives PyTorch's rates, counters and best metric step by step",
          "[optim][lr_scheduler][plateau][fixture]") {
  test::Fixture fx("reduce_lr_on_plateau");
  const auto base_lrs = fx.meta_json("base_lrs").get<std::vector<double>>();
  const auto runs = fx.meta_json("runs").get<std::vector<std::string>>();
  REQUIRE(runs.size() == 4);
  for (const std::string& run : runs) {
    INFO("run " << run << " " << fx.meta(run + ".config"));
    auto opt = optimizer_with_groups(base_lrs);
    optim::ReduceLROnPlateau<double> plateau(*opt, plateau_options(fx.meta_json(run + ".config")));
    const Tensor<double> metrics = fx.file().tensor<double>(run + ".metrics");
    const int64_t steps = metrics.numel();
    Tensor<double> lrs = Tensor<double>::empty({steps, 2}), bad = Tensor<double>::empty({steps}),
                   cooldown = Tensor<double>::empty({steps}), best = Tensor<double>::empty({steps});
    int64_t reductions = 0;
    for (int64_t e = 0; e < steps; ++e) {
      const std::vector<double> before = plateau.last_lr();
      const bool changed = plateau.step(metrics.data()[e]);
      CHECK(changed == (plateau.last_lr() != before));
      reductions += changed;
      for (int64_t g = 0; g < 2; ++g) lrs.data()[e * 2 + g] = opt->param_groups()[std::size_t(g)].lr;
      bad.data()[e] = double(plateau.num_bad_epochs());
      cooldown.data()[e] = double(plateau.cooldown_counter());
      best.data()[e] = plateau.best();
    }
    CHECK(plateau.last_epoch() == steps);
    CHECK(reductions >= 2);  // every run exercises the reduction more than once
    // Each element to float32's rounding of the stored values (the smallest rates are 1e-7 of the largest).
    fx.require_each_close(run + ".lr", lrs, 1e-7);
    fx.require_each_close(run + ".num_bad_epochs", bad, 0);
    fx.require_each_close(run + ".cooldown_counter", cooldown, 0);
    fx.require_each_close(run + ".best", best, 1e-7);
  }
}

TEST_CASE("ReduceLROnPlateau resumes from its state dict, rates included", "[optim][lr_scheduler][plateau]") {
  test::Fixture fx("reduce_lr_on_plateau");
  const auto base_lrs = fx.meta_json("base_lrs").get<std::vector<double>>();
  const auto options = plateau_options(fx.meta_json("min_abs_cooldown.config"));
  const Tensor<double> metrics = fx.file().tensor<double>("min_abs_cooldown.metrics");
  // Every group's rate after each step from `from` on.
  const auto rates_from = [&](optim::ReduceLROnPlateau<double>& plateau, int64_t from) {
    std::vector<std::vector<double>> rates;
    for (int64_t e = from; e < metrics.numel(); ++e) {
      plateau.step(metrics.data()[e]);
      rates.push_back(plateau.last_lr());
    }
    return rates;
  };
  // Stopped after step 5, in a cooldown with reduced rates, then resumed on a fresh optimiser.
  auto first_opt = optimizer_with_groups(base_lrs);
  optim::ReduceLROnPlateau<double> first(*first_opt, options);
  for (int64_t e = 0; e < 5; ++e) first.step(metrics.data()[e]);
  REQUIRE(first.cooldown_counter() > 0);
  REQUIRE(first.last_lr() != base_lrs);
  const nn::StateDict<double> state = first.state_dict();
  auto resumed_opt = optimizer_with_groups(base_lrs);
  optim::ReduceLROnPlateau<double> resumed(*resumed_opt, options);
  resumed.load_state_dict(state);
  CHECK(resumed.last_lr() == first.last_lr());
  CHECK(resumed.best() == first.best());
  CHECK(resumed.last_epoch() == 5);
  // The first run goes on: the resumed one follows it step by step.
  const auto resumed_rates = rates_from(resumed, 5);
  CHECK(resumed_rates == rates_from(first, 5));
  // Without the state, the same metrics from step 5 on give other rates.
  auto cold_opt = optimizer_with_groups(base_lrs);
  optim::ReduceLROnPlateau<double> cold(*cold_opt, options);
  CHECK(rates_from(cold, 5) != resumed_rates);
}

TEST_CASE("ReduceLROnPlateau refuses bad settings, NaN metrics and states that do not fit",
          "[optim][lr_scheduler][plateau][errors]") {
  auto opt = optimizer_with_groups({0.1, 0.02});
  using Options = optim::ReduceLROnPlateauOptions;
  CHECK_THROWS_WITH(optim::ReduceLROnPlateau<double>(*opt, Options{.factor = 1.0}),
                    Contains("ReduceLROnPlateau: factor 1 must be in [0, 1)"));
  CHECK_THROWS_WITH(optim::ReduceLROnPlateau<double>(*opt, Options{.patience = -1}), Contains("patience -1"));
  CHECK_THROWS_WITH(optim::ReduceLROnPlateau<double>(*opt, Options{.threshold = std::nan("")}),
                    Contains("threshold nan"));
  CHECK_THROWS_WITH(optim::ReduceLROnPlateau<double>(*opt, Options{.min_lr = {0.0, 0.0, 0.0}}),
                    Contains("3 min_lr values for 2 parameter groups"));
  CHECK_THROWS_WITH(optim::ReduceLROnPlateau<double>(*opt, Options{.min_lr = {-1.0}}), Contains("min_lr -1"));

  optim::ReduceLROnPlateau<double> plateau(*opt, {.patience = 0});
  plateau.step(1.0);
  CHECK_THROWS_WITH(plateau.step(std::nan("")), Contains("the metric of epoch 2 is NaN"));
  CHECK(plateau.last_epoch() == 1);
  CHECK(plateau.best() == 1.0);

  // A state for another number of groups, with a NaN best and an unknown entry: every problem named, and
  // nothing changed.
  auto three_opt = optimizer_with_groups({0.1, 0.02, 0.5});
  optim::ReduceLROnPlateau<double> three(*three_opt);
  nn::StateDict<double> state = three.state_dict();
  nn::StateDict<double> bad;
  for (const auto& e : state)
    if (e.name == "best")
      bad.insert_real("best", std::nan(""));
    else
      bad.insert_integer(e.name, e.name == "mode" ? 1 : e.integer);
  bad.insert_integer("patience", 3);
  try {
    plateau.load_state_dict(bad);
    FAIL("load_state_dict accepted a state for three groups");
  } catch (const nn::StateDictError& e) {
    CHECK_THAT(e.what(), Contains("unexpected (2): lr.2, patience") && Contains("best: nan") &&
                             Contains("mode: 1 (max), this schedule's is 0 (min)"));
  }
  CHECK(plateau.last_epoch() == 1);
  CHECK(plateau.best() == 1.0);
  CHECK(plateau.last_lr() == std::vector<double>{0.1, 0.02});

  // Groups added after the schedule was made are refused, not silently left at their rate.
  opt->add_param_group({Variable<double>(Tensor<double>::zeros({1}), true)}, 0.3);
  CHECK_THROWS_WITH(plateau.step(2.0),
                    Contains("the optimiser has 3 parameter groups, the schedule was made for 2"));
}
