#pragma once
// A dataset held in memory as one tensor of samples [N, ...] and N labels, as
// torch.utils.data.TensorDataset(samples, labels): batches are [B, ...] copies of the picked rows.
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "sumi/data/dataset.hpp"
#include "sumi/tensor/tensor.hpp"

namespace sumi::data {

class TensorDataset {
 public:
  // samples has at least one dimension, its first the number of labels. A contiguous tensor's storage is
  // shared (as torch's), a strided one is copied to contiguous rows once, here.
  TensorDataset(Tensor<float> samples, std::vector<int64_t> labels)
      : samples_(std::move(samples)), labels_(std::move(labels)) {
    if (!samples_.defined() || samples_.dim() == 0 || samples_.size(0) != int64_t(labels_.size()))
      throw std::invalid_argument("TensorDataset: samples of shape " +
                                  (samples_.defined() ? shape_str(samples_.shape()) : "(undefined)") +
                                  " for " + std::to_string(labels_.size()) + " labels (expected [" +
                                  std::to_string(labels_.size()) + ", ...])");
    samples_ = samples_.contiguous();
    sample_shape_.assign(samples_.shape().begin() + 1, samples_.shape().end());
    sample_numel_ = shape_numel(sample_shape_);
  }

  int64_t size() const { return int64_t(labels_.size()); }
  // Shape of one sample, without the leading N.
  const Shape& sample_shape() const { return sample_shape_; }
  const Tensor<float>& samples() const { return samples_; }
  const std::vector<int64_t>& labels() const { return labels_; }

  void get_batch(std::span<const int64_t> indices, Tensor<float>& batch, std::vector<int64_t>& labels) const {
    Shape shape{int64_t(indices.size())};
    shape.insert(shape.end(), sample_shape_.begin(), sample_shape_.end());
    prepare_batch_tensor(batch, shape);
    labels.resize(indices.size());
    for (std::size_t k = 0; k < indices.size(); ++k) {
      const int64_t i = indices[k];
      if (i < 0 || i >= size())
        throw std::out_of_range("TensorDataset: index " + std::to_string(i) + " out of range for " +
                                std::to_string(size()) + " samples");
      std::memcpy(batch.data() + int64_t(k) * sample_numel_, samples_.data() + i * sample_numel_,
                  std::size_t(sample_numel_) * sizeof(float));
      labels[k] = labels_[std::size_t(i)];
    }
  }

 private:
  Tensor<float> samples_;
  std::vector<int64_t> labels_;
  Shape sample_shape_;
  int64_t sample_numel_ = 0;
};

static_assert(Dataset<TensorDataset>);

}  // namespace sumi::data
