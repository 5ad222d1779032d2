// Optimisers: Adam, AdamW, SGD, RMSprop and Adagrad against torch.optim (tests/fixtures/optim.safetensors),
// parameter groups, skipped parameters, and state dicts that resume bit-exactly.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include "max_error.hpp"

#include "fixture.hpp"
#include "sumi/nn/init.hpp"
#include "sumi/ops/elementwise.hpp"
#include "sumi/ops/reduction.hpp"
#include "sumi/optim/adagrad.hpp"
#include "sumi/optim/adam.hpp"
#include "sumi/optim/rmsprop.hpp"
#include "sumi/optim/sgd.hpp"

using namespace sumi;
using Catch::Contains;

namespace {

template <class T>
bool bit_equal(const Tensor<T>& a, const Tensor<T>& b) {
  if (a.shape() != b.shape()) return false;
  return std::memcmp(a.data(), b.data(), std::size_t(a.numel()) * sizeof(T)) == 0;
}

std::unique_ptr<optim::Optimizer<float>> make_optimizer(const nlohmann::json& cfg,
                                                        std::vector<Variable<float>> params) {
  const std::string kind = cfg.at("optimizer");
  if (kind == "SGD")
    return std::make_unique<optim::SGD<float>>(params,
                                               optim::SGDOptions{.lr = cfg.at("lr"),
                                                                 .momentum = cfg.at("momentum"),
                                                                 .dampening = cfg.at("dampening"),
                                                                 .weight_decay = cfg.at("weight_decay"),
                                                                 .nesterov = cfg.at("nesterov")});
  if (kind == "RMSprop")
    return std::make_unique<optim::RMSprop<float>>(
        params, optim::RMSpropOptions{.lr = cfg.at("lr"),
                                      .alpha = cfg.at("alpha"),
                                      .eps = cfg.at("eps"),
                                      .weight_decay = cfg.at("weight_decay"),
                                      .momentum = cfg.at("momentum"),
                                      .centered = cfg.at("centered")});
  if (kind == "Adagrad")
    return std::make_unique<optim::Adagrad<float>>(
        params, optim::AdagradOptions{.lr = cfg.at("lr"),
                                      .lr_decay = cfg.at("lr_decay"),
                                      .weight_decay = cfg.at("weight_decay"),
                                      .initial_accumulator_value = cfg.at("initial_accumulator_value"),
                                      .eps = cfg.at("eps")});
  const optim::AdamOptions options{.lr = cfg.at("lr"),
                                   .beta1 = cfg.at("betas")[0],
                                   .beta2 = cfg.at("betas")[1],
                                   .eps = cfg.at("eps"),
                                   .weight_decay = cfg.at("weight_decay"),
                                   .amsgrad = cfg.value("amsgrad", false)};
  if (kind == "AdamW") return std::make_unique<optim::AdamW<float>>(params, options);
  REQUIRE(kind == "Adam");
  return std::make_unique<optim::Adam<float>>(params, options);
}

// The two parameters of optim.safetensors and the gradient before step t.
std::vector<Variable<float>> fixture_params(const test::Fixture& fx) {
  return {Variable<float>(fx.input<float>("p0"), true), Variable<float>(fx.input<float>("p1"), true)};
}
void set_fixture_grads(const test::Fixture& fx, std::vector<Variable<float>>& params, int t) {
  for (std::size_t j = 0; j < params.size(); ++j)
    params[j].grad() = fx.input<float>("grad.p" + std::to_string(j) + ".step" + std::to_string(t));
}

}  // namespace

TEST_CASE("optimisers match torch.optim step by step", "[optim][fixtures]") {
  test::Fixture fx("optim");
  const auto runs = fx.meta_json("runs");
  REQUIRE(runs.size() == 13);
  for (const std::string run : runs) {
    INFO("run " << run);
    auto params = fixture_params(fx);
    auto opt = make_optimizer(fx.meta_json(run + ".config"), params);
    std::vector<Tensor<float>> previous = {params[0].value().clone(), params[1].value().clone()};
    for (int t = 1; t <= 3; ++t) {
      INFO("step " << t);
      set_fixture_grads(fx, params, t);
      opt->step();
      for (std::size_t j = 0; j < 2; ++j) {
        const std::string name = run + ".p" + std::to_string(j) + ".step" + std::to_string(t);
        // Within 1e-6 of the tensor's scale (float32 rounding of the parameters is ~6e-8)...
        fx.require_close(name, params[j].value(), 1e-6);
        // ...and the update itself (p_t - p_{t-1}) within 1e-5 of its size: Adam's runs come out
        // bit-identical to torch's, SGD's within an ulp (torch fuses multiply-adds); eps inside the sqrt
        // would fail this.
        const Tensor<double> expected = fx.file().tensor<double>(name);
        double worst = 0, size = 0;
        for (int64_t i = 0; i < expected.numel(); ++i) {
          const double ours = double(params[j].value().data()[i]) - double(previous[j].data()[i]);
          const double theirs = expected.data()[i] - double(previous[j].data()[i]);
          worst = sumi::test::nan_max(worst, std::abs(ours - theirs));
          size = std::max(size, std::abs(theirs));
        }
        INFO(name << ": update error " << worst << " for updates up to " << size);
        REQUIRE(size > 0);
        REQUIRE(worst <= 1e-5 * size);
        previous[j] = params[j].value().clone();
      }
    }
  }
}

TEST_CASE("weight decay does not modify the stored gradient", "[optim]") {
  test::Fixture fx("optim");
  for (const char* run :
       {"adam_wd", "adamw", "sgd_nesterov", "rmsprop_momentum", "rmsprop_centered", "adagrad_decay"}) {
    INFO(run);
    auto params = fixture_params(fx);
    auto opt = make_optimizer(fx.meta_json(std::string(run) + ".config"), params);
    set_fixture_grads(fx, params, 1);
    const Tensor<float> grad = params[0].grad().clone();
    opt->step();
    REQUIRE(bit_equal(params[0].grad(), grad));
  }
}

TEMPLATE_TEST_CASE("amsgrad's running maximum takes a NaN second moment, as torch.maximum does",
                   "[optim][adam]", float, double) {
  // 37 elements: whole vector packets and a tail; NaN gradients at packet starts, middles and the tail.
  const int64_t n = 37;
  const std::vector<int64_t> nan_at = {0, 5, 16, 23, 36};
  Variable<TestType> p(Tensor<TestType>::zeros({n}), true);
  optim::Adam<TestType> opt({p}, {.lr = 1e-3, .amsgrad = true});
  Tensor<TestType> v_max_before;
  for (int step = 0; step < 3; ++step) {
    Tensor<TestType> grad = Tensor<TestType>::zeros({n});
    for (int64_t i = 0; i < n; ++i) grad.data()[i] = TestType(1 + (i * 7 + step * 3) % 5);
    if (step == 1)
      for (int64_t i : nan_at) grad.data()[i] = std::numeric_limits<TestType>::quiet_NaN();
    p.grad() = grad;
    opt.step();
    const auto& buffers = opt.state(p)->buffers;
    const Tensor<TestType>& v = buffers.at("exp_avg_sq");
    const Tensor<TestType>& v_max = buffers.at("max_exp_avg_sq");
    for (int64_t i = 0; i < n; ++i) {
      INFO("step " << step << ", element " << i);
      const bool poisoned = step >= 1 && std::find(nan_at.begin(), nan_at.end(), i) != nan_at.end();
      CHECK(std::isnan(v_max.data()[i]) == poisoned);
      CHECK(std::isnan(p.value().data()[i]) == poisoned);
      if (!poisoned)
        CHECK(v_max.data()[i] == (step == 0 ? v.data()[i] : std::max(v_max_before.data()[i], v.data()[i])));
    }
    v_max_before = v_max.clone();
  }
}

TEST_CASE("parameter groups have their own learning rates", "[optim][groups]") {
  test::Fixture fx("optim");
  auto params = fixture_params(fx);
  const Tensor<float> p1_start = params[1].value().clone();
  optim::Adam<float> opt(optim::AdamOptions{.lr = 1e-3});
  opt.add_param_group({params[0]}, 1e-3);
  opt.add_param_group({params[1]}, 0.0);  // frozen by its learning rate
  REQUIRE(opt.param_groups().size() == 2);
  REQUIRE(opt.num_params() == 2);
  set_fixture_grads(fx, params, 1);
  opt.step();
  fx.require_close("adam.p0.step1", params[0].value(), 1e-6);
  REQUIRE(bit_equal(params[1].value(), p1_start));

  // A schedule changes a group's learning rate between steps: group 1 at 1e-3 from step 2 on moves p1.
  opt.param_groups()[1].lr = 1e-3;
  set_fixture_grads(fx, params, 2);
  opt.step();
  fx.require_close("adam.p0.step2", params[0].value(), 1e-6);
  REQUIRE_FALSE(bit_equal(params[1].value(), p1_start));
  opt.set_lr(0.5);
  REQUIRE(opt.param_groups()[0].lr == 0.5);

  // A parameter belongs to one group only.
  REQUIRE_THROWS_WITH(opt.add_param_group({params[0]}, 1e-3), Contains("more than one parameter group"));
  REQUIRE_THROWS_WITH(optim::SGD<float>({params[0], params[0]}), Contains("twice"));
  REQUIRE_THROWS_AS(opt.add_param_group({Variable<float>(Tensor<float>::zeros({2}))}, -1.0),
                    std::invalid_argument);
}

TEST_CASE("parameters without a gradient or frozen are skipped and get no state", "[optim]") {
  Variable<float> a(Tensor<float>::ones({3}), true), b(Tensor<float>::ones({3}), true),
      frozen(Tensor<float>::ones({3}), true);
  optim::Adam<float> opt({a, b, frozen}, {.lr = 0.1});
  a.grad() = Tensor<float>::full({3}, 0.5f);
  // b: no gradient at all. frozen: a gradient, but requires_grad is off.
  frozen.grad() = Tensor<float>::full({3}, 0.5f);
  frozen.set_requires_grad(false);
  opt.step();
  REQUIRE(a.value().data()[0] < 1.0f);
  REQUIRE(b.value().data()[0] == 1.0f);
  REQUIRE(frozen.value().data()[0] == 1.0f);
  REQUIRE(opt.state(a) != nullptr);
  REQUIRE(opt.state(b) == nullptr);
  REQUIRE(opt.state(frozen) == nullptr);
  REQUIRE(opt.num_states() == 1);
  const auto sd = opt.state_dict();
  REQUIRE(sd.names() ==
          std::vector<std::string>{"param_groups.0.num_params", "0.step", "0.exp_avg", "0.exp_avg_sq"});

  // zero_grad clears every gradient.
  opt.zero_grad();
  REQUIRE_FALSE(a.grad().defined());
  REQUIRE_FALSE(frozen.grad().defined());

  // A gradient of the wrong shape is an error, not a silent broadcast.
  a.grad() = Tensor<float>::ones({4});
  REQUIRE_THROWS_WITH(opt.step(), Contains("gradient of shape [4]"));
}

TEST_CASE("plain SGD is p - lr * grad, and options are validated", "[optim][sgd]") {
  Variable<double> p(Tensor<double>::from_vector({1.0, -2.0}, {2}), true);
  optim::SGD<double> opt({p}, {.lr = 0.25});
  p.grad() = Tensor<double>::from_vector({4.0, 8.0}, {2});
  opt.step();
  REQUIRE(p.value().data()[0] == 0.0);
  REQUIRE(p.value().data()[1] == -4.0);
  REQUIRE(opt.state_dict().names() ==
          std::vector<std::string>{"param_groups.0.num_params", "0.step"});  // no momentum buffer
  REQUIRE_THROWS_WITH(optim::SGD<double>({p}, {.lr = 0.1, .nesterov = true}), Contains("Nesterov"));
  REQUIRE_THROWS_AS(optim::Adam<double>({p}, {.beta1 = 1.0}), std::invalid_argument);
  REQUIRE_THROWS_AS(optim::Adam<double>({p}, {.lr = -1.0}), std::invalid_argument);
  REQUIRE(optim::AdamW<double>({p}).name() == "AdamW");
}

TEST_CASE("RMSprop and Adagrad validate their options and keep the buffers their settings need",
          "[optim][rmsprop][adagrad]") {
  Variable<double> p(Tensor<double>::from_vector({1.0, -2.0}, {2}), true);
  CHECK_THROWS_WITH(optim::RMSprop<double>({p}, {.alpha = -0.5}), Contains("RMSprop: invalid alpha"));
  CHECK_THROWS_WITH(optim::RMSprop<double>({p}, {.momentum = -1}), Contains("RMSprop: invalid momentum"));
  CHECK_THROWS_WITH(optim::RMSprop<double>({p}, {.eps = -1e-8}), Contains("RMSprop: invalid eps"));
  CHECK_THROWS_WITH(optim::Adagrad<double>({p}, {.lr_decay = -0.1}), Contains("Adagrad: invalid lr_decay"));
  CHECK_THROWS_WITH(optim::Adagrad<double>({p}, {.initial_accumulator_value = -1}),
                    Contains("Adagrad: invalid initial_accumulator_value"));
  CHECK_THROWS_WITH(optim::Adagrad<double>({p}, {.lr = std::nan("")}),
                    Contains("Adagrad: invalid learning rate"));

  const auto state_names = [&](optim::Optimizer<double>& opt) {
    p.grad() = Tensor<double>::from_vector({0.5, -0.25}, {2});
    opt.step();
    return opt.state_dict().names();
  };
  optim::RMSprop plain({p});
  CHECK(state_names(plain) ==
        std::vector<std::string>{"param_groups.0.num_params", "0.step", "0.square_avg"});
  optim::RMSprop full({p}, {.momentum = 0.9, .centered = true});
  CHECK(state_names(full) == std::vector<std::string>{"param_groups.0.num_params", "0.step", "0.grad_avg",
                                                      "0.momentum_buffer", "0.square_avg"});
  optim::Adagrad adagrad(std::vector{p}, {.initial_accumulator_value = 0.5});
  CHECK(state_names(adagrad) == std::vector<std::string>{"param_groups.0.num_params", "0.step", "0.sum"});
  // The accumulator starts at initial_accumulator_value: 0.5 + g^2.
  CHECK(adagrad.state(p)->buffers.at("sum").data()[0] == 0.75);
  static_assert(std::is_same_v<decltype(plain), optim::RMSprop<double>>);
  static_assert(std::is_same_v<decltype(adagrad), optim::Adagrad<double>>);

  // A state without the buffers that momentum and centering need is reported, each by name.
  optim::RMSprop<double> needs_all({p}, {.momentum = 0.9, .centered = true});
  try {
    needs_all.load_state_dict(plain.state_dict());
    FAIL("load_state_dict accepted a state without momentum_buffer and grad_avg");
  } catch (const nn::StateDictError& e) {
    CHECK_THAT(e.what(), Contains("0.momentum_buffer") && Contains("0.grad_avg"));
  }
}

TEST_CASE("optimisers take their parameters as a vector, a braced list or not at all", "[optim]") {
  Variable<float> p(Tensor<float>::zeros({2}), true), q(Tensor<float>::zeros({3}), true);
  const std::vector<Variable<float>> both{p, q};
  const auto group_sizes = [](const optim::Optimizer<float>& opt) {
    std::vector<std::size_t> sizes;
    for (const auto& g : opt.param_groups()) sizes.push_back(g.params.size());
    return sizes;
  };
  // Options alone, braced by name: no group yet, the options kept (this did not compile under GCC 12 while
  // the parameters were a plain std::vector, which a braced list could also construct).
  optim::SGD<float> sgd({.lr = 0.5, .momentum = 0.9});
  optim::Adam<float> adam({.lr = 0.25});
  optim::AdamW<float> adamw({.weight_decay = 0.125});
  CHECK(group_sizes(sgd).empty());
  CHECK(sgd.options().momentum == 0.9);
  CHECK(adam.options().lr == 0.25);
  CHECK(adamw.options().weight_decay == 0.125);
  sgd.add_param_group(both, 0.1);
  CHECK(group_sizes(sgd) == std::vector<std::size_t>{2});
  // A vector (lvalue, const or moved) or a braced list of variables: one group with the options' rate.
  std::vector<Variable<float>> moved = both;
  CHECK(group_sizes(optim::Adam<float>(both)) == std::vector<std::size_t>{2});
  CHECK(group_sizes(optim::Adam<float>(std::move(moved), {.lr = 0.5})) == std::vector<std::size_t>{2});
  CHECK(optim::SGD<float>({p, q}, {.lr = 0.75}).param_groups()[0].lr == 0.75);
  CHECK(group_sizes(optim::AdamW<float>({q})) == std::vector<std::size_t>{1});
  // The element type deduced from the parameters, double as float.
  const std::vector<Variable<double>> doubles{Variable<double>(Tensor<double>::zeros({2}), true)};
  optim::SGD deduced_sgd(doubles, {.lr = 0.1});
  optim::Adam deduced_adam(doubles);
  optim::AdamW deduced_adamw(both);
  static_assert(std::is_same_v<decltype(deduced_sgd), optim::SGD<double>>);
  static_assert(std::is_same_v<decltype(deduced_adam), optim::Adam<double>>);
  static_assert(std::is_same_v<decltype(deduced_adamw), optim::AdamW<float>>);
  CHECK(deduced_sgd.param_groups()[0].lr == 0.1);
  // An empty list is refused, as PyTorch's "optimizer got an empty parameter list".
  CHECK_THROWS_WITH(optim::SGD<float>({}), Contains("SGD: got an empty parameter list"));
  CHECK_THROWS_WITH(optim::AdamW<float>(std::vector<Variable<float>>{}, {.lr = 0.1}),
                    Contains("AdamW: got an empty parameter list"));
}

TEST_CASE("optimiser state dicts resume runs bit-exactly", "[optim][state]") {
  test::Fixture fx("optim");
  for (const std::string run : fx.meta_json("runs")) {
    INFO(run);
    const auto cfg = fx.meta_json(run + ".config");
    // Three steps in one go.
    auto straight = fixture_params(fx);
    auto opt = make_optimizer(cfg, straight);
    for (int t = 1; t <= 3; ++t) {
      set_fixture_grads(fx, straight, t);
      opt->step();
    }
    // One step, then the parameters and state move to a fresh optimiser, then two more steps.
    auto first = fixture_params(fx);
    auto opt1 = make_optimizer(cfg, first);
    set_fixture_grads(fx, first, 1);
    opt1->step();
    const nn::StateDict<float> state = opt1->state_dict();
    REQUIRE(state.integer("0.step") == 1);
    std::vector<Variable<float>> resumed = {Variable<float>(first[0].value().clone(), true),
                                            Variable<float>(first[1].value().clone(), true)};
    auto opt2 = make_optimizer(cfg, resumed);
    opt2->load_state_dict(state);
    for (int t = 2; t <= 3; ++t) {
      set_fixture_grads(fx, resumed, t);
      opt2->step();
    }
    REQUIRE(opt2->state(resumed[0])->step == 3);
    for (std::size_t j = 0; j < 2; ++j) REQUIRE(bit_equal(resumed[j].value(), straight[j].value()));
    // Without the state the resumed run would differ (Adam's bias correction, SGD's momentum, the running
    // averages of RMSprop and the sums of Adagrad).
    auto cold = std::vector<Variable<float>>{Variable<float>(first[0].value().clone(), true),
                                             Variable<float>(first[1].value().clone(), true)};
    auto opt3 = make_optimizer(cfg, cold);
    for (int t = 2; t <= 3; ++t) {
      set_fixture_grads(fx, cold, t);
      opt3->step();
    }
    REQUIRE_FALSE(bit_equal(cold[0].value(), straight[0].value()));
  }
}

TEST_CASE("optimiser load_state_dict reports every problem", "[optim][state]") {
  Variable<float> a(Tensor<float>::ones({2, 3}), true), b(Tensor<float>::ones({4}), true);
  optim::Adam<float> opt({a, b});
  a.grad() = Tensor<float>::ones({2, 3});
  b.grad() = Tensor<float>::ones({4});
  opt.step();
  const auto good = opt.state_dict();
  REQUIRE(good.size() == 7);

  nn::StateDict<float> bad;
  bad.insert_integer("0.step", 1);
  bad.insert("0.exp_avg", Tensor<float>::zeros({3, 2}));  // wrong shape
  // 0.exp_avg_sq missing
  bad.insert("1.momentum_buffer", Tensor<float>::zeros({4}));  // not an Adam buffer
  bad.insert_integer("1.step", 1);
  bad.insert("1.exp_avg", Tensor<float>::zeros({4}));
  bad.insert("1.exp_avg_sq", Tensor<float>::zeros({4}));
  bad.insert("7.exp_avg", Tensor<float>::zeros({4}));  // no parameter 7
  try {
    opt.load_state_dict(bad);
    FAIL("accepted a bad state");
  } catch (const nn::StateDictError& e) {
    const std::string what = e.what();
    REQUIRE_THAT(what, Contains("0.exp_avg: expected [2, 3], found [3, 2]"));
    REQUIRE_THAT(what, Contains("missing (1): 0.exp_avg_sq"));
    REQUIRE_THAT(what, Contains("1.momentum_buffer"));
    REQUIRE_THAT(what, Contains("7.exp_avg"));
  }
  // Nothing changed: the state is still the good one.
  REQUIRE(opt.state(a)->step == 1);
  REQUIRE(bit_equal(opt.state_dict().tensor("0.exp_avg"), good.tensor("0.exp_avg")));

  // A state for other parameters is refused even where the shapes line up: here the same two parameters
  // with a new one in front, which would take the first one's moments.
  Variable<float> c(Tensor<float>::ones({2, 3}), true);
  optim::Adam<float> extended({c, a, b});
  REQUIRE_THROWS_WITH(extended.load_state_dict(good),
                      Contains("param_groups.0.num_params: the state is for 2 parameters, this group has 3"));
  REQUIRE(extended.num_states() == 0);
  optim::Adam<float> two_groups({a});
  two_groups.add_param_group({b}, 1e-3);
  REQUIRE_THROWS_WITH(
      two_groups.load_state_dict(good),
      Contains("param_groups.0.num_params") && Contains("missing (1): param_groups.1.num_params"));
  // A state written before group sizes were recorded is still read, checked parameter by parameter.
  nn::StateDict<float> without_sizes;
  for (const auto& e : good)
    if (e.is_integer && !e.name.starts_with("param_groups."))
      without_sizes.insert_integer(e.name, e.integer);
    else if (!e.is_integer)
      without_sizes.insert(e.name, e.tensor);
  REQUIRE(without_sizes.size() == 6);
  optim::Adam<float> same({a, b});
  same.load_state_dict(without_sizes);
  REQUIRE(same.num_states() == 2);
  REQUIRE(same.state(b)->step == 1);

  // Loading an empty state clears it.
  opt.load_state_dict(nn::StateDict<float>());
  REQUIRE(opt.num_states() == 0);
}

TEST_CASE("a parameter taken out of an optimiser leaves its state behind, not to a new parameter",
          "[optim][state]") {
  optim::Adam<float> opt({Variable<float>(Tensor<float>::ones({64}), true)});
  opt.param_groups()[0].params[0].grad() = Tensor<float>::ones({64});
  opt.step();
  opt.param_groups()[0].params.clear();  // the only other owner of the parameter is gone
  for (int i = 0; i < 8;
       ++i) {  // new parameters of the same size, where the old one's memory would be reused
    Variable<float> fresh(Tensor<float>::ones({64}), true);
    REQUIRE(opt.state(fresh) == nullptr);
  }
}

TEST_CASE("step() checks what may have changed since the parameters were added", "[optim][errors]") {
  Variable<float> a(Tensor<float>::ones({3}), true), b(Tensor<float>::ones({2}), true);
  optim::Adam<float> opt({a, b}, {.lr = 0.1});
  a.grad() = Tensor<float>::ones({3});
  b.grad() = Tensor<float>::ones({2});
  opt.step();

  // A learning rate set to NaN or below zero is refused, naming set_lr, and nothing changes.
  REQUIRE_THROWS_WITH(opt.set_lr(std::nan("")), Contains("learning rate") && Contains("set_lr"));
  REQUIRE_THROWS_WITH(opt.set_lr(-1), Contains("learning rate"));
  REQUIRE(opt.param_groups()[0].lr == 0.1);
  opt.param_groups()[0].weight_decay = -1;
  REQUIRE_THROWS_WITH(opt.step(), Contains("weight_decay") && Contains("group 0"));
  opt.param_groups()[0].weight_decay = 0;

  // A value replaced by a larger tensor no longer fits the moment buffers sized for the old one. The check
  // comes before any update: parameter 0 is not updated either.
  const float a_before = a.value().data()[0];
  const int64_t a_steps = opt.state(a)->step;
  b.value() = Tensor<float>::ones({5});
  b.grad() = Tensor<float>::ones({5});
  REQUIRE_THROWS_WITH(opt.step(),
                      Contains("parameter 1") && Contains("[5]") && Contains("'exp_avg'") && Contains("[2]"));
  REQUIRE(a.value().data()[0] == a_before);
  REQUIRE(opt.state(a)->step == a_steps);
  b.value() = Tensor<float>::ones({2});
  b.grad() = Tensor<float>::ones({2});

  // A strided value would be updated in the wrong order.
  a.value() = Tensor<float>::arange(0, 6).view({2, 3}).transpose(0, 1).select(0);
  a.grad() = Tensor<float>::ones({2});
  REQUIRE_THROWS_WITH(opt.step(), Contains("parameter 0") && Contains("contiguous"));
}

TEST_CASE("a graph recorded before an optimiser step refuses to back-propagate, leaving the gradients alone",
          "[optim][errors]") {
  Variable<double> w(Tensor<double>::from_vector({1, 2}, {2}), true);
  const Variable<double> x(Tensor<double>::from_vector({3, 4}, {2}));
  optim::SGD<double> sgd({w}, {.lr = 0.1});
  sum(w * w).backward();
  const Variable<double> stale = sum(w * x);  // recorded from w = [1, 2]
  sgd.step();                                 // w changes in place
  REQUIRE(w.version() == 1);
  const Tensor<double> grad_before = w.grad().clone();
  REQUIRE_THROWS_WITH(stale.backward(), Contains("input 0 of 'mul' (shape [2]) was modified in place"));
  REQUIRE(bit_equal(w.grad(), grad_before));
  // Recorded again from the new value, it back-propagates.
  w.zero_grad();
  sum(w * x).backward();
  REQUIRE(w.grad().data()[0] == 3.0);
  // Loading a state and the in-place initialisers count as changes too.
  const Variable<double> before_init = sum(w * x);
  nn::init::constant_(w, 0.5);
  REQUIRE_THROWS_WITH(before_init.backward(), Contains("modified in place"));
}
