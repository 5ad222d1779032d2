// The study's autoencoder (examples/models/autoencoder.hpp) against PyTorch (tests/fixtures/
// autoencoder.safetensors): the fixture's weights loaded by name, then latent, output, loss, every parameter
// gradient, and one Adam step, in double and in float.
#include <catch2/catch.hpp>

#include "../examples/models/autoencoder.hpp"
#include "fixture.hpp"
#include "sumi/ops/loss.hpp"
#include "sumi/optim/adam.hpp"

using namespace sumi;

namespace {

// The fixture's parameters (float32) as a state dict of T, by the model's own names.
template <class T>
nn::StateDict<T> fixture_state(const test::Fixture& fx, const nn::Module<T>& model) {
  nn::StateDict<T> state;
  for (const auto& name : model.state_dict().names()) state.insert(name, fx.file().tensor<T>(name));
  return state;
}

// Forward and backward of mse_loss(decode(encode(x)), x) compared with the fixture; returns the model.
template <class T>
std::unique_ptr<models::Autoencoder<T>> check_forward_backward(const test::Fixture& fx, double rtol) {
  auto model = std::make_unique<models::Autoencoder<T>>(5);
  model->load_state_dict(fixture_state<T>(fx, *model));
  const Variable<T> x(fx.input<T>("input"));
  REQUIRE(x.shape() == Shape{8, 1, 28, 28});
  const Variable<T> latent = model->encode(x);
  fx.require_close("latent", latent.value(), rtol);
  const Variable<T> output = model->decode(latent);
  fx.require_close("output", output.value(), rtol);
  const Variable<T> loss = mse_loss(output, x);
  fx.require_close("loss", loss.value(), rtol);
  loss.backward();
  const auto named = model->named_parameters();
  REQUIRE(named.size() == 20);
  for (const auto& [name, p] : named) {
    INFO("gradient of " << name);
    REQUIRE(p.grad().defined());
    fx.require_close("grad." + name, p.grad(), rtol);
  }
  return model;
}

// One Adam step (lr 1e-3) from the fixture's float32 parameters with the given float gradients.
void check_adam_step(const test::Fixture& fx, const std::map<std::string, Tensor<float>>& grads,
                     double rtol) {
  models::Autoencoder<float> model(5);
  model.load_state_dict(fixture_state<float>(fx, model));
  for (auto& [name, p] : model.named_parameters()) p.grad() = grads.at(name).clone();
  optim::Adam<float> opt(model.parameters(), {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8});
  opt.step();
  for (const auto& [name, p] : model.named_parameters()) {
    INFO("Adam step of " << name);
    fx.require_close("adam1." + name, p.value(), rtol);
    // The step moved every parameter with a non-zero gradient by about lr.
    const Tensor<double> start = fx.file().tensor<double>(name);
    const Tensor<float>& g = grads.at(name);
    for (int64_t i = 0; i < start.numel(); ++i)
      if (std::abs(g.data()[i]) > 1e-6f)
        REQUIRE(std::abs(double(p.value().data()[i]) - start.data()[i]) > 5e-4);
  }
}

}  // namespace

TEST_CASE("autoencoder in double matches PyTorch: latent, output, loss, every gradient",
          "[autoencoder][golden]") {
  test::Fixture fx("autoencoder");
  check_forward_backward<double>(fx, 1e-6);
}

TEST_CASE("autoencoder in float matches PyTorch: latent, output, loss, every gradient",
          "[autoencoder][golden]") {
  test::Fixture fx("autoencoder");
  check_forward_backward<float>(fx, 1e-4);
}

TEST_CASE("one Adam step on the autoencoder matches PyTorch", "[autoencoder][golden][optim]") {
  test::Fixture fx("autoencoder");
  models::Autoencoder<float> names_only(5);
  // With PyTorch's gradients (float64, rounded to float32 as the fixture did).
  std::map<std::string, Tensor<float>> fixture_grads;
  for (const auto& name : names_only.state_dict().names())
    fixture_grads[name] = fx.file().tensor<float>("grad." + name);
  check_adam_step(fx, fixture_grads, 1e-6);

  // With the gradients sumi computes in double, rounded to float32 the same way.
  auto model = check_forward_backward<double>(fx, 1e-6);
  std::map<std::string, Tensor<float>> our_grads;
  for (const auto& [name, p] : model->named_parameters()) our_grads[name] = p.grad().to<float>();
  check_adam_step(fx, our_grads, 1e-6);
}
