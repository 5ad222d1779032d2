#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "sumi/ops/reduction.hpp"
#include "sumi/optim/lr_scheduler.hpp"
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
