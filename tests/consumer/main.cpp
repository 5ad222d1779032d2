// A downstream program: a small convolutional classifier learns to tell horizontal bars from vertical ones,
// and exits 0 when it has. It goes through the parts a project reaches for first (layers in a Sequential,
// cross entropy, Adam with a schedule, evaluation mode, a state dict), so each compiler that builds it
// instantiates them.
#include <cstdio>
#include <memory>
#include <vector>

#include "sumi/sumi.hpp"

#if defined(SUMI_CONSUMER_EXPECT_STB_ELSEWHERE) && !defined(SUMI_CONSUMER_STB_ELSEWHERE_INCLUDED)
#error "stb came from the compiler's search path, not from the SUMI_STB_INCLUDE_DIR the package was given"
#endif

int main() {
  using namespace sumi;
  // 64 images 1x8x8 of noise, each with a bright row (label 0) or column (label 1).
  Generator gen(1);
  const int64_t n = 64;
  Tensor<float> images = Tensor<float>::rand({n, 1, 8, 8}, gen, 0.0f, 0.3f);
  std::vector<int64_t> labels(n);
  for (int64_t i = 0; i < n; ++i) {
    labels[std::size_t(i)] = i % 2;
    const int64_t line = 1 + (i / 2) % 6;
    for (int64_t k = 0; k < 8; ++k) images.data()[i * 64 + (i % 2 ? k * 8 + line : line * 8 + k)] = 1.0f;
  }
  auto model = std::make_shared<nn::Sequential<float>>(
      std::make_shared<nn::Conv2d<float>>(1, 4, 3, 1, 1), std::make_shared<nn::BatchNorm2d<float>>(4),
      std::make_shared<nn::ReLU<float>>(), std::make_shared<nn::MaxPool2d<float>>(2),
      std::make_shared<nn::Flatten<float>>(), std::make_shared<nn::Linear<float>>(64, 2));
  optim::Adam<float> adam(model->parameters(), {.lr = 0.02});
  optim::StepLR<float> schedule(adam, {.step_size = 40, .gamma = 0.5});
  const Variable<float> x(images);
  for (int step = 0; step < 80; ++step) {
    adam.zero_grad();
    Variable<float> loss = cross_entropy((*model)(x), labels);
    loss.backward();
    adam.step();
    schedule.step();
  }
  model->eval();
  const Variable<float> logits = (*model)(x);
  const std::vector<int64_t> predicted = argmax(logits.value(), 1);
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) correct += predicted[std::size_t(i)] == labels[std::size_t(i)];
  const double loss = cross_entropy(logits, labels).value().data()[0];
  // The state dict holds the layers' parameters and BatchNorm's running statistics.
  const std::size_t state_entries = model->state_dict().size();
  std::printf("accuracy %lld/%lld, loss %g, %zu state entries\n", static_cast<long long>(correct),
              static_cast<long long>(n), loss, state_entries);
  return correct == n && loss < 0.1 && state_entries == 9 ? 0 : 1;
}
