// Trains y = 2x + 1 with one linear layer and exits 0 when it is learnt.
#include <cmath>
#include <cstdio>

#include "sumi/sumi.hpp"

int main() {
  using namespace sumi;
  Generator gen(1);
  Variable<float> w(Tensor<float>::zeros({1, 1}), true), b(Tensor<float>::zeros({1}), true);
  const Variable<float> x(Tensor<float>::rand({64, 1}, gen, -1, 1));
  const Variable<float> y = x * 2.0f + 1.0f;
  for (int step = 0; step < 500; ++step) {
    w.zero_grad();
    b.zero_grad();
    Variable<float> loss = mean(pow_scalar(linear(x, w, b) - y, 2.0f));
    loss.backward();
    w.value().data()[0] -= 0.1f * w.grad().data()[0];
    b.value().data()[0] -= 0.1f * b.grad().data()[0];
  }
  std::printf("w=%g b=%g\n", double(w.value().data()[0]), double(b.value().data()[0]));
  return std::abs(w.value().data()[0] - 2) < 1e-3 && std::abs(b.value().data()[0] - 1) < 1e-3 ? 0 : 1;
}
