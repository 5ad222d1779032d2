#pragma once
// The DCGAN of the PyTorch DCGAN tutorial, with its module and parameter names ("main.0.weight", ...), so
// state dicts are interchangeable with this PyTorch code (image_size 64):
//
//   Generator.main = Sequential(
//       ConvTranspose2d(nz, ngf*8, 4, 1, 0, bias=False), BatchNorm2d(ngf*8), ReLU(True),
//       ConvTranspose2d(ngf*8, ngf*4, 4, 2, 1, bias=False), BatchNorm2d(ngf*4), ReLU(True),
//       ConvTranspose2d(ngf*4, ngf*2, 4, 2, 1, bias=False), BatchNorm2d(ngf*2), ReLU(True),
//       ConvTranspose2d(ngf*2, ngf, 4, 2, 1, bias=False), BatchNorm2d(ngf), ReLU(True),
//       ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), Tanh())
//   Discriminator.main = Sequential(
//       Conv2d(nc, ndf, 4, 2, 1, bias=False), LeakyReLU(0.2, inplace=True),
//       Conv2d(ndf, ndf*2, 4, 2, 1, bias=False), BatchNorm2d(ndf*2), LeakyReLU(0.2, inplace=True),
//       Conv2d(ndf*2, ndf*4, 4, 2, 1, bias=False), BatchNorm2d(ndf*4), LeakyReLU(0.2, inplace=True),
//       Conv2d(ndf*4, ndf*8, 4, 2, 1, bias=False), BatchNorm2d(ndf*8), LeakyReLU(0.2, inplace=True),
//       Conv2d(ndf*8, 1, 4, 1, 0, bias=False), Sigmoid())
//
// image_size 32 drops one block on each side: the generator starts at ngf*4 (4x4) and the discriminator ends
// at ndf*4 (4x4) before its last convolution. Generator: [N, nz, 1, 1] -> [N, nc, S, S] in (-1, 1);
// Discriminator: [N, nc, S, S] -> [N, 1, 1, 1] in (0, 1).
#include <memory>
#include <stdexcept>
#include <string>

#include "sumi/nn/activation.hpp"
#include "sumi/nn/batch_norm.hpp"
#include "sumi/nn/conv.hpp"
#include "sumi/nn/init.hpp"
#include "sumi/nn/module.hpp"
#include "sumi/nn/sequential.hpp"

namespace sumi::models {

struct DcganConfig {
  int64_t nz = 100, ngf = 64, ndf = 64, nc = 3, image_size = 64;

  // The number of stride-2 blocks after the first generator layer (and before the last discriminator one).
  int upsampling_blocks() const { return image_size == 64 ? 4 : 3; }
  void validate() const {
    if (image_size != 64 && image_size != 32)
      throw std::invalid_argument("DCGAN: image size must be 64 or 32, got " + std::to_string(image_size));
    if (nz < 1 || ngf < 1 || ndf < 1 || (nc != 1 && nc != 3))
      throw std::invalid_argument(
          "DCGAN: need nz, ngf, ndf >= 1 and nc 1 or 3, got nz=" + std::to_string(nz) +
          " ngf=" + std::to_string(ngf) + " ndf=" + std::to_string(ndf) + " nc=" + std::to_string(nc));
  }
};

template <std::floating_point T = float>
class DcganGenerator : public nn::Module<T> {
 public:
  explicit DcganGenerator(const DcganConfig& config, Generator& gen = default_generator()) : config(config) {
    config.validate();
    using namespace nn;
    auto main = std::make_shared<Sequential<T>>();
    int64_t channels = config.ngf << (config.upsampling_blocks() - 1);  // ngf*8 at 64x64, ngf*4 at 32x32
    main->push_back(std::make_shared<ConvTranspose2d<T>>(config.nz, channels, 4, 1, 0, 0, 1, 1, false, gen));
    main->push_back(std::make_shared<BatchNorm2d<T>>(channels));
    main->push_back(std::make_shared<ReLU<T>>());
    for (; channels > config.ngf; channels /= 2) {
      main->push_back(
          std::make_shared<ConvTranspose2d<T>>(channels, channels / 2, 4, 2, 1, 0, 1, 1, false, gen));
      main->push_back(std::make_shared<BatchNorm2d<T>>(channels / 2));
      main->push_back(std::make_shared<ReLU<T>>());
    }
    main->push_back(
        std::make_shared<ConvTranspose2d<T>>(config.ngf, config.nc, 4, 2, 1, 0, 1, 1, false, gen));
    main->push_back(std::make_shared<Tanh<T>>());
    this->register_module("main", main);
  }

  Variable<T> forward(const Variable<T>& z) override {
    if (z.dim() != 4 || z.size(1) != config.nz || z.size(2) != 1 || z.size(3) != 1)
      throw std::invalid_argument("DcganGenerator: expected noise of shape [N, " + std::to_string(config.nz) +
                                  ", 1, 1], got " + shape_str(z.shape()));
    return this->child("main")->forward(z);
  }
  std::string type_name() const override { return "Generator"; }

  const DcganConfig config;
};

template <std::floating_point T = float>
class DcganDiscriminator : public nn::Module<T> {
 public:
  explicit DcganDiscriminator(const DcganConfig& config, Generator& gen = default_generator())
      : config(config) {
    config.validate();
    using namespace nn;
    auto main = std::make_shared<Sequential<T>>();
    main->push_back(std::make_shared<Conv2d<T>>(config.nc, config.ndf, 4, 2, 1, 1, 1, false, gen));
    main->push_back(std::make_shared<LeakyReLU<T>>(0.2));
    int64_t channels = config.ndf;
    for (int b = 1; b < config.upsampling_blocks(); ++b, channels *= 2) {
      main->push_back(std::make_shared<Conv2d<T>>(channels, channels * 2, 4, 2, 1, 1, 1, false, gen));
      main->push_back(std::make_shared<BatchNorm2d<T>>(channels * 2));
      main->push_back(std::make_shared<LeakyReLU<T>>(0.2));
    }
    main->push_back(std::make_shared<Conv2d<T>>(channels, 1, 4, 1, 0, 1, 1, false, gen));
    main->push_back(std::make_shared<Sigmoid<T>>());
    this->register_module("main", main);
  }

  Variable<T> forward(const Variable<T>& x) override {
    if (x.dim() != 4 || x.size(1) != config.nc || x.size(2) != config.image_size ||
        x.size(3) != config.image_size)
      throw std::invalid_argument("DcganDiscriminator: expected images of shape [N, " +
                                  std::to_string(config.nc) + ", " + std::to_string(config.image_size) +
                                  ", " + std::to_string(config.image_size) + "], got " +
                                  shape_str(x.shape()));
    return this->child("main")->forward(x);
  }
  std::string type_name() const override { return "Discriminator"; }

  const DcganConfig config;
};

// The tutorial's weights_init: convolution weights ~ N(0, 0.02); BatchNorm weight ~ N(1, 0.02), bias 0.
template <std::floating_point T>
void dcgan_weights_init(nn::Module<T>& model, Generator& gen = default_generator()) {
  model.apply([&gen](nn::Module<T>& m) {
    if (auto* conv = dynamic_cast<nn::Conv2d<T>*>(&m)) {
      nn::init::normal_(conv->weight, 0.0, 0.02, gen);
    } else if (auto* convt = dynamic_cast<nn::ConvTranspose2d<T>*>(&m)) {
      nn::init::normal_(convt->weight, 0.0, 0.02, gen);
    } else if (auto* bn = dynamic_cast<nn::BatchNormBase<T>*>(&m)) {
      nn::init::normal_(bn->weight, 1.0, 0.02, gen);
      nn::init::zeros_(bn->bias);
    }
  });
}

}  // namespace sumi::models
