#pragma once
// Training and evaluation of models::Classifier with cross entropy, on images or on cached prefix features.
//
// Caching: the classifier's frozen convolutional prefix has no randomness (no dropout, no batch norm) and
// its parameters never change, so its output for an image is the same at every step. A data::TensorDataset
// holds that output, computed once per image, with the labels; a DataLoader over it with the same options
// produces the same batches (same order, same labels) as one over the images, and training on it skips the
// convolutions' forward pass at every step.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/divergence.hpp"
#include "models/classifier.hpp"
#include "sumi/autograd/grad_mode.hpp"
#include "sumi/data/data_loader.hpp"
#include "sumi/data/dataset.hpp"
#include "sumi/data/tensor_dataset.hpp"
#include "sumi/ops/loss.hpp"
#include "sumi/ops/reduction.hpp"
#include "sumi/optim/optimizer.hpp"
#include "sumi/util/progress_bar.hpp"

namespace sumi::examples {

// The prefix's output for every image of `images` (in dataset order), computed in batches of `batch`.
template <class Dataset>
data::TensorDataset compute_prefix_features(models::Classifier<float>& model, const Dataset& images,
                                            int64_t batch = 1000) {
  NoGradGuard no_grad;
  data::DataLoader loader(images, {.batch_size = batch});
  Tensor<float> features;
  std::vector<int64_t> labels;
  int64_t row = 0, width = 0;
  for (const data::Batch& b : loader) {
    const Tensor<float> f = model.features(Variable<float>(b.images)).value().contiguous();
    if (!features.defined()) {
      width = f.size(1);
      features = Tensor<float>::empty({int64_t(images.size()), width});
    }
    std::memcpy(features.data() + row * width, f.data(), std::size_t(f.numel()) * sizeof(float));
    labels.insert(labels.end(), b.labels.begin(), b.labels.end());
    row += b.size();
  }
  if (!features.defined()) features = Tensor<float>::empty({0, 288});
  return {std::move(features), std::move(labels)};
}

struct ClassifierEpoch {
  double loss = 0;      // mean cross entropy
  double accuracy = 0;  // fraction correct, 0..1
};

namespace detail {
inline int64_t count_correct(const Tensor<float>& logits, const std::vector<int64_t>& labels,
                             std::vector<int64_t>* predictions = nullptr) {
  const std::vector<int64_t> predicted = argmax(logits, 1);
  int64_t correct = 0;
  for (std::size_t i = 0; i < predicted.size(); ++i) correct += predicted[i] == labels[i];
  if (predictions) predictions->insert(predictions->end(), predicted.begin(), predicted.end());
  return correct;
}
}  // namespace detail

// One epoch of cross-entropy training. The loader yields images ([B, 1, 28, 28], the whole classifier runs)
// or cached features ([B, 288], only the head runs), told apart by the batch's rank. Loss and accuracy are
// of the training batches as they were seen (train mode, before each step's update).
template <class Loader>
ClassifierEpoch train_classifier_epoch(models::Classifier<float>& model, optim::Optimizer<float>& optimizer,
                                       Loader& loader, util::ProgressBar* bar = nullptr) {
  model.train();
  double total = 0;
  int64_t seen = 0, correct = 0;
  for (const data::Batch& batch : loader) {
    const Variable<float> x(batch.images);
    const Variable<float> logits = batch.images.dim() == 2 ? model.head(x) : model(x);
    Variable<float> loss = cross_entropy(logits, batch.labels);
    const float value = loss.item();
    require_finite(value, "the loss");
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    total += double(value) * double(batch.size());
    correct += detail::count_correct(logits.value(), batch.labels);
    seen += batch.size();
    if (bar) {
      bar->set_postfix("loss", value);
      bar->update();
    }
  }
  return {seen ? total / double(seen) : 0.0, seen ? double(correct) / double(seen) : 0.0};
}

struct ClassifierEvaluation {
  double loss = 0, accuracy = 0;
  Tensor<float> logits;                      // [N, classes], when kept
  std::vector<int64_t> labels, predictions;  // when kept
};

// Mean cross entropy and accuracy over the loader (images or cached features), in eval mode; with
// `keep_outputs`, also every logit row, label and prediction in loader order.
template <class Loader>
ClassifierEvaluation evaluate_classifier(models::Classifier<float>& model, Loader& loader,
                                         bool keep_outputs = false) {
  model.eval();
  NoGradGuard no_grad;
  ClassifierEvaluation result;
  double total = 0;
  int64_t seen = 0, correct = 0;
  std::vector<float> logits;
  for (const data::Batch& batch : loader) {
    const Variable<float> x(batch.images);
    const Tensor<float> out = (batch.images.dim() == 2 ? model.head(x) : model(x)).value().contiguous();
    total += double(cross_entropy(Variable<float>(out), batch.labels).item()) * double(batch.size());
    correct += detail::count_correct(out, batch.labels, keep_outputs ? &result.predictions : nullptr);
    seen += batch.size();
    if (keep_outputs) {
      logits.insert(logits.end(), out.data(), out.data() + out.numel());
      result.labels.insert(result.labels.end(), batch.labels.begin(), batch.labels.end());
    }
  }
  model.train();
  result.loss = seen ? total / double(seen) : 0.0;
  result.accuracy = seen ? double(correct) / double(seen) : 0.0;
  if (keep_outputs) {
    result.logits = Tensor<float>::empty({seen, int64_t(model.classes)});
    std::copy(logits.begin(), logits.end(), result.logits.data());
  }
  return result;
}

}  // namespace sumi::examples
