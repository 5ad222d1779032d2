#pragma once
// One DCGAN training iteration in the PyTorch DCGAN tutorial's order, shared by the dcgan example and its
// test against PyTorch:
//   (1) D: zero D's gradients; BCE(D(real), 1) backward; fake = G(z); BCE(D(fake.detach()), 0) backward;
//       D step.
//   (2) G: zero G's gradients; BCE(D(fake), 1) backward through the updated D; G step.
// In (2) D is frozen (nn::FrozenScope): the tutorial also accumulates D's weight gradients there, which the
// next iteration's zero_grad discards, so only the gradient with respect to D's input is computed. The
// updates are the same; the saving is every D weight-gradient convolution of the G pass.
#include <cmath>
#include <stdexcept>
#include <string>

#include "common/divergence.hpp"
#include "sumi/autograd/grad_mode.hpp"
#include "sumi/nn/module.hpp"
#include "sumi/ops/loss.hpp"
#include "sumi/ops/reduction.hpp"
#include "sumi/ops/shape_ops.hpp"
#include "sumi/optim/optimizer.hpp"

namespace sumi::examples {

struct DcganStepResult {
  float loss_d = 0;    // BCE(D(x), 1) + BCE(D(G(z)), 0)
  float loss_g = 0;    // BCE(D(G(z)), 1) after the D step
  float d_x = 0;       // mean D(x)
  float d_g_z1 = 0;    // mean D(G(z)) before the D step
  float d_g_z2 = 0;    // mean D(G(z)) after the D step
  Tensor<float> fake;  // G(z) of this iteration
};

template <class G, class D>
DcganStepResult dcgan_train_step(G& netG, D& netD, optim::Optimizer<float>& optG,
                                 optim::Optimizer<float>& optD, const Tensor<float>& real,
                                 const Tensor<float>& noise) {
  const int64_t n = real.size(0);
  if (noise.size(0) != n)
    throw std::invalid_argument("dcgan_train_step: " + std::to_string(real.size(0)) + " images but " +
                                std::to_string(noise.size(0)) + " noise vectors");
  netG.train();
  netD.train();
  const Variable<float> ones(Tensor<float>::ones({n})), zeros(Tensor<float>::zeros({n}));
  auto probabilities = [n](const Variable<float>& out) { return reshape(out, {n}); };
  DcganStepResult r;

  optD.zero_grad();
  // D's outputs are checked before the loss, which refuses a NaN probability with a message of its own.
  const auto checked = [](Variable<float> d_out, const char* what) {
    require_finite(d_out.value(), what);
    return d_out;
  };
  Variable<float> out = checked(probabilities(netD(Variable<float>(real))), "D(x)");
  Variable<float> err_real = bce_loss(out, ones);
  err_real.backward();
  r.d_x = mean(out.detach()).item();
  const Variable<float> fake = netG(Variable<float>(noise));
  out = checked(probabilities(netD(fake.detach())), "D(G(z))");
  Variable<float> err_fake = bce_loss(out, zeros);
  err_fake.backward();
  r.d_g_z1 = mean(out.detach()).item();
  r.loss_d = err_real.item() + err_fake.item();
  optD.step();

  optG.zero_grad();
  {
    const nn::FrozenScope<float> frozen_d(netD);
    out = checked(probabilities(netD(fake)), "D(G(z))");
    Variable<float> err_g = bce_loss(out, ones);
    err_g.backward();
    r.loss_g = err_g.item();
  }
  r.d_g_z2 = mean(out.detach()).item();
  optG.step();
  r.fake = fake.value();
  require_finite(r.loss_d, "loss D");
  require_finite(r.loss_g, "loss G");
  return r;
}

}  // namespace sumi::examples
