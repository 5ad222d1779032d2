// Writes a module state with known values through nn::save_state, for tests/python/check_safetensors.py
// to read back independently of sumi: write_state FLOAT_FILE [DOUBLE_FILE]
#include <cstdio>
#include <exception>
#include <memory>

#include "sumi/nn/batch_norm.hpp"
#include "sumi/nn/linear.hpp"
#include "sumi/nn/sequential.hpp"
#include "sumi/nn/serialize.hpp"

namespace {

// Sequential(Linear(3, 2), BatchNorm1d(2)) with fixed values:
//   0.weight = [[-1, -0.5, 0], [0.5, 1, 1.5]]   0.bias = [0.25, -0.75]
//   1.weight = [1.5, 2]   1.bias = [0, -1]   1.running_mean = [0.1, 0.2]   1.running_var = [1.1, 1.2]
//   1.num_batches_tracked = 7
// extras: optimizer.0.step = 3 (I64), optimizer.0.exp_avg = [[0, 1/8, 2/8], [3/8, 4/8, 5/8]]
// metadata: epoch = "5", note = "known state"
template <class T>
void write(const char* path) {
  using namespace sumi;
  auto linear = std::make_shared<nn::Linear<T>>(3, 2);
  auto bn = std::make_shared<nn::BatchNorm1d<T>>(2);
  nn::Sequential<T> model(linear, bn);
  for (int64_t i = 0; i < 6; ++i) linear->weight.value().data()[i] = T(0.5) * T(i) - T(1);
  linear->bias.value().copy_(Tensor<T>::from_vector({T(0.25), T(-0.75)}, {2}));
  bn->weight.value().copy_(Tensor<T>::from_vector({T(1.5), T(2)}, {2}));
  bn->bias.value().copy_(Tensor<T>::from_vector({T(0), T(-1)}, {2}));
  bn->running_mean.copy_(Tensor<T>::from_vector({T(0.1), T(0.2)}, {2}));
  bn->running_var.copy_(Tensor<T>::from_vector({T(1.1), T(1.2)}, {2}));
  bn->num_batches_tracked = 7;
  nn::StateDict<T> extra;
  extra.insert_integer("optimizer.0.step", 3);
  Tensor<T> exp_avg = Tensor<T>::arange(T(0), T(6)).view({2, 3});
  scale_inplace(exp_avg, T(0.125));
  extra.insert("optimizer.0.exp_avg", exp_avg);
  nn::save_state(model, path, {{"epoch", "5"}, {"note", "known state"}}, extra);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: %s FLOAT_FILE [DOUBLE_FILE]\n", argv[0]);
    return 2;
  }
  try {
    write<float>(argv[1]);
    if (argc == 3) write<double>(argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "write_state: %s\n", e.what());
    return 1;
  }
  return 0;
}
