#pragma once
// The study's convolutional autoencoder for 28x28 single-channel images, with latent size k. Module and
// parameter names are exactly those of this PyTorch code, so state dicts are interchangeable with it:
//
//   class Encoder(nn.Module):
//       encoder_cnn = Sequential(Conv2d(1, 8, 3, stride=2, padding=1), ReLU, Conv2d(8, 16, 3, stride=2,
//       padding=1),
//                                ReLU, Conv2d(16, 32, 3, stride=2, padding=0), ReLU)
//       flatten = Flatten(start_dim=1)
//       encoder_lin = Sequential(Linear(288, 64), ReLU, Linear(64, k))
//   class Decoder(nn.Module):
//       decoder_lin = Sequential(Linear(k, 64), ReLU, Linear(64, 288), ReLU)
//       unflatten = Unflatten(1, (32, 3, 3))
//       decoder_conv = Sequential(ConvTranspose2d(32, 16, 3, stride=2, output_padding=0), ReLU,
//                                 ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1), ReLU,
//                                 ConvTranspose2d(8, 1, 3, stride=2, padding=1, output_padding=1))
//       forward: sigmoid(decoder_conv(unflatten(decoder_lin(z))))
//
// Autoencoder holds them as children "encoder" and "decoder": "encoder.encoder_cnn.0.weight", ...
//
// Dropout (p > 0) is applied in forward, without a module, so the names above never change with p: after
// every ReLU child of encoder_lin and decoder_lin, i.e. after each hidden Linear + ReLU (encoder_lin.1,
// decoder_lin.1 and decoder_lin.3). It is active in training mode only and draws its masks from the
// Generator given to the constructor (which must outlive the model; the default generator does).
// Weight decay is an optimiser option (optim::AdamOptions::weight_decay), not part of the model.
#include <memory>

#include "sumi/nn/activation.hpp"
#include "sumi/nn/conv.hpp"
#include "sumi/nn/flatten.hpp"
#include "sumi/nn/linear.hpp"
#include "sumi/nn/module.hpp"
#include "sumi/nn/sequential.hpp"
#include "sumi/ops/dropout.hpp"
#include "sumi/ops/elementwise.hpp"

namespace sumi::models {

namespace detail {
// Runs `seq`, applying dropout after each ReLU child when p > 0.
template <class T>
Variable<T> run_with_dropout(nn::Sequential<T>& seq, Variable<T> x, T p, bool training, Generator& gen) {
  for (std::size_t i = 0; i < seq.size(); ++i) {
    auto layer = seq[int64_t(i)];
    x = layer->forward(x);
    if (p > T(0) && std::dynamic_pointer_cast<nn::ReLU<T>>(layer)) x = dropout(x, p, training, gen);
  }
  return x;
}
inline void check_autoencoder_args(int64_t latent, double p) {
  if (latent < 1)
    throw std::invalid_argument("Autoencoder: latent size must be positive, got " + std::to_string(latent));
  if (!(p >= 0 && p < 1))
    throw std::invalid_argument("Autoencoder: dropout " + std::to_string(p) + " is not in [0, 1)");
}
}  // namespace detail

// [N, 1, 28, 28] -> [N, k]
template <std::floating_point T = float>
class Encoder : public nn::Module<T> {
 public:
  Encoder(int64_t latent, double dropout = 0.0, Generator& gen = default_generator())
      : latent(latent), dropout_p(T(dropout)), gen_(&gen) {
    detail::check_autoencoder_args(latent, dropout);
    using namespace nn;
    this->register_module(
        "encoder_cnn",
        std::make_shared<Sequential<T>>(
            std::make_shared<Conv2d<T>>(1, 8, 3, 2, 1, 1, 1, true, gen), std::make_shared<ReLU<T>>(),
            std::make_shared<Conv2d<T>>(8, 16, 3, 2, 1, 1, 1, true, gen), std::make_shared<ReLU<T>>(),
            std::make_shared<Conv2d<T>>(16, 32, 3, 2, 0, 1, 1, true, gen), std::make_shared<ReLU<T>>()));
    this->register_module("flatten", std::make_shared<Flatten<T>>(1));
    this->register_module(
        "encoder_lin", std::make_shared<Sequential<T>>(std::make_shared<Linear<T>>(288, 64, true, gen),
                                                       std::make_shared<ReLU<T>>(),
                                                       std::make_shared<Linear<T>>(64, latent, true, gen)));
  }

  std::shared_ptr<nn::Sequential<T>> encoder_cnn() const {
    return this->template child_as<nn::Sequential<T>>("encoder_cnn");
  }
  std::shared_ptr<nn::Sequential<T>> encoder_lin() const {
    return this->template child_as<nn::Sequential<T>>("encoder_lin");
  }

  Variable<T> forward(const Variable<T>& x) override {
    Variable<T> h = this->child("flatten")->forward(encoder_cnn()->forward(x));
    return detail::run_with_dropout(*encoder_lin(), h, dropout_p, this->is_training(), *gen_);
  }

  std::string extra_repr() const override {
    return dropout_p > T(0) ? "dropout=" + nn::detail::python_float_repr(dropout_p) : "";
  }

  const int64_t latent;
  const T dropout_p;

 private:
  Generator* gen_;
};

// [N, k] -> [N, 1, 28, 28], in (0, 1)
template <std::floating_point T = float>
class Decoder : public nn::Module<T> {
 public:
  Decoder(int64_t latent, double dropout = 0.0, Generator& gen = default_generator())
      : latent(latent), dropout_p(T(dropout)), gen_(&gen) {
    detail::check_autoencoder_args(latent, dropout);
    using namespace nn;
    this->register_module("decoder_lin",
                          std::make_shared<Sequential<T>>(
                              std::make_shared<Linear<T>>(latent, 64, true, gen), std::make_shared<ReLU<T>>(),
                              std::make_shared<Linear<T>>(64, 288, true, gen), std::make_shared<ReLU<T>>()));
    this->register_module("unflatten", std::make_shared<Unflatten<T>>(1, Shape{32, 3, 3}));
    this->register_module("decoder_conv",
                          std::make_shared<Sequential<T>>(
                              std::make_shared<ConvTranspose2d<T>>(32, 16, 3, 2, 0, 0, 1, 1, true, gen),
                              std::make_shared<ReLU<T>>(),
                              std::make_shared<ConvTranspose2d<T>>(16, 8, 3, 2, 1, 1, 1, 1, true, gen),
                              std::make_shared<ReLU<T>>(),
                              std::make_shared<ConvTranspose2d<T>>(8, 1, 3, 2, 1, 1, 1, 1, true, gen)));
  }

  std::shared_ptr<nn::Sequential<T>> decoder_lin() const {
    return this->template child_as<nn::Sequential<T>>("decoder_lin");
  }
  std::shared_ptr<nn::Sequential<T>> decoder_conv() const {
    return this->template child_as<nn::Sequential<T>>("decoder_conv");
  }

  Variable<T> forward(const Variable<T>& z) override {
    Variable<T> h = detail::run_with_dropout(*decoder_lin(), z, dropout_p, this->is_training(), *gen_);
    return sigmoid(decoder_conv()->forward(this->child("unflatten")->forward(h)));
  }

  std::string extra_repr() const override {
    return dropout_p > T(0) ? "dropout=" + nn::detail::python_float_repr(dropout_p) : "";
  }

  const int64_t latent;
  const T dropout_p;

 private:
  Generator* gen_;
};

// Encoder then Decoder. Parameters are initialised from `gen` in PyTorch's order (the encoder's layers,
// then the decoder's), with PyTorch's default initialisation.
template <std::floating_point T = float>
class Autoencoder : public nn::Module<T> {
 public:
  explicit Autoencoder(int64_t latent, double dropout = 0.0, Generator& gen = default_generator())
      : latent(latent), dropout_p(T(dropout)) {
    this->register_module("encoder", std::make_shared<Encoder<T>>(latent, dropout, gen));
    this->register_module("decoder", std::make_shared<Decoder<T>>(latent, dropout, gen));
  }

  std::shared_ptr<Encoder<T>> encoder() const { return this->template child_as<Encoder<T>>("encoder"); }
  std::shared_ptr<Decoder<T>> decoder() const { return this->template child_as<Decoder<T>>("decoder"); }

  // [N, 1, 28, 28] -> [N, k]
  Variable<T> encode(const Variable<T>& x) { return this->child("encoder")->forward(x); }
  // [N, k] -> [N, 1, 28, 28]
  Variable<T> decode(const Variable<T>& z) { return this->child("decoder")->forward(z); }
  Variable<T> forward(const Variable<T>& x) override { return decode(encode(x)); }

  const int64_t latent;
  const T dropout_p;
};

}  // namespace sumi::models
