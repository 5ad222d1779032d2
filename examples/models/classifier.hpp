#pragma once
// The study's fine-tuned classifier: the autoencoder's Encoder with its last layer Linear(64, k) replaced by
// a new Linear(64, classes). In PyTorch terms:
//
//   encoder.encoder_lin[2] = nn.Linear(64, 10)
//   for p in encoder.encoder_cnn.parameters(): p.requires_grad = False
//
// Parameter names are the encoder's under "encoder." ("encoder.encoder_cnn.0.weight", ...,
// "encoder.encoder_lin.2.weight" for the new head). The convolutional part (encoder_cnn, then flatten) is
// the "prefix": [N, 1, 28, 28] -> [N, 288]; the rest (encoder_lin) maps those features to logits. Once the
// prefix is frozen it has no randomness and no trainable state, so its output can be computed once and
// cached (see common/classifier_training.hpp).
#include <filesystem>
#include <memory>
#include <string>

#include "models/autoencoder.hpp"
#include "sumi/io/safetensors.hpp"
#include "sumi/nn/serialize.hpp"

namespace sumi::models {

template <std::floating_point T = float>
class Classifier : public nn::Module<T> {
 public:
  // Takes `encoder` (trained or not) and puts a new Linear(64, classes), initialised from `gen`, in place
  // of its last layer.
  Classifier(std::shared_ptr<Encoder<T>> encoder, int64_t classes, Generator& gen = default_generator())
      : classes(classes) {
    if (classes < 2)
      throw std::invalid_argument("Classifier: need at least 2 classes, got " + std::to_string(classes));
    encoder->encoder_lin()->replace(2, std::make_shared<nn::Linear<T>>(64, classes, true, gen));
    this->register_module("encoder", std::move(encoder));
  }

  // A classifier whose encoder is the one saved in an autoencoder checkpoint (as examples/autoencoder
  // writes it, names "encoder.*"); the latent size is read from the file. Errors name the file.
  static std::shared_ptr<Classifier> from_autoencoder_file(const std::filesystem::path& path, int64_t classes,
                                                           Generator& gen) {
    const std::string key = "encoder.encoder_lin.2.weight";
    const io::SafetensorsFile file = io::read_safetensors(path);
    if (!file.contains(key))
      throw std::runtime_error("'" + path.string() + "' holds no autoencoder encoder (no tensor '" + key +
                               "')");
    // A classifier checkpoint has the same encoder names, its head in place of the latent layer.
    if (!file.contains("decoder.decoder_lin.0.weight"))
      throw std::runtime_error("'" + path.string() +
                               "' holds no autoencoder (no decoder tensors; a classifier checkpoint?)");
    const Shape shape = file.record(key).shape;
    if (shape.size() != 2 || shape[1] != 64)
      throw std::runtime_error("'" + path.string() + "': " + key + " has shape " + shape_str(shape) +
                               ", expected [k, 64]");
    auto encoder = std::make_shared<Encoder<T>>(shape[0]);  // no dropout: the classifier is trained without
    nn::load_state(*encoder, path, {.prefix = "encoder.", .strict = true});
    return std::make_shared<Classifier>(std::move(encoder), classes, gen);
  }

  std::shared_ptr<Encoder<T>> encoder() const { return this->template child_as<Encoder<T>>("encoder"); }

  // Freezes (or unfreezes) the three convolutions.
  void set_prefix_frozen(bool frozen) { encoder()->encoder_cnn()->set_requires_grad(!frozen); }

  // The convolutional prefix: [N, 1, 28, 28] -> [N, 288].
  Variable<T> features(const Variable<T>& x) {
    return encoder()->child("flatten")->forward(encoder()->encoder_cnn()->forward(x));
  }
  // The rest: features [N, 288] -> logits [N, classes].
  Variable<T> head(const Variable<T>& features) { return encoder()->encoder_lin()->forward(features); }

  Variable<T> forward(const Variable<T>& x) override { return head(features(x)); }

  const int64_t classes;
};

}  // namespace sumi::models
