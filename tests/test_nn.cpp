// nn::Module and the layers: PyTorch names, modes, freezing, replacing children, printing, state dicts,
// default initialisation and each layer's forward.
#include <Eigen/Core>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numbers>
#include <set>
#include <string>
#include <tuple>
#include <typeinfo>
#include <vector>

#include "../examples/models/autoencoder.hpp"
#include "fixture.hpp"
#include "sumi/nn/activation.hpp"
#include "sumi/nn/batch_norm.hpp"
#include "sumi/nn/conv.hpp"
#include "sumi/nn/dropout.hpp"
#include "sumi/nn/flatten.hpp"
#include "sumi/nn/init.hpp"
#include "sumi/nn/linear.hpp"
#include "sumi/nn/sequential.hpp"
#include "sumi/ops/loss.hpp"
#include "sumi/ops/reduction.hpp"
#include "sumi/optim/adam.hpp"
#include "sumi/optim/sgd.hpp"

using namespace sumi;
using Catch::Contains;

namespace {

template <class T>
bool bit_equal(const Tensor<T>& a, const Tensor<T>& b) {
  if (a.shape() != b.shape()) return false;
  const Tensor<T> ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data(), cb.data(), std::size_t(ca.numel()) * sizeof(T)) == 0;
}

template <class T>
double max_abs(const Tensor<T>& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::abs(double(t.data()[i])));
  return m;
}

// The PyTorch names of the autoencoder's parameters, in named_parameters() order (from make_fixtures.py).
const std::vector<std::string> kAutoencoderNames = {
    "encoder.encoder_cnn.0.weight",  "encoder.encoder_cnn.0.bias",    "encoder.encoder_cnn.2.weight",
    "encoder.encoder_cnn.2.bias",    "encoder.encoder_cnn.4.weight",  "encoder.encoder_cnn.4.bias",
    "encoder.encoder_lin.0.weight",  "encoder.encoder_lin.0.bias",    "encoder.encoder_lin.2.weight",
    "encoder.encoder_lin.2.bias",    "decoder.decoder_lin.0.weight",  "decoder.decoder_lin.0.bias",
    "decoder.decoder_lin.2.weight",  "decoder.decoder_lin.2.bias",    "decoder.decoder_conv.0.weight",
    "decoder.decoder_conv.0.bias",   "decoder.decoder_conv.2.weight", "decoder.decoder_conv.2.bias",
    "decoder.decoder_conv.4.weight", "decoder.decoder_conv.4.bias"};

// The DCGAN tutorial's generator (tests/fixtures/README.md, dcgan.safetensors), nz = 16, ngf = 8, nc = 3.
template <class T>
std::shared_ptr<nn::Sequential<T>> dcgan_generator_main(Generator& gen) {
  using namespace nn;
  auto convt = [&](int64_t in, int64_t out, int64_t s, int64_t p) {
    return std::make_shared<ConvTranspose2d<T>>(in, out, 4, s, p, 0, 1, 1, false, gen);
  };
  return std::make_shared<Sequential<T>>(
      convt(16, 64, 1, 0), std::make_shared<BatchNorm2d<T>>(64), std::make_shared<ReLU<T>>(),
      convt(64, 32, 2, 1), std::make_shared<BatchNorm2d<T>>(32), std::make_shared<ReLU<T>>(),
      convt(32, 16, 2, 1), std::make_shared<BatchNorm2d<T>>(16), std::make_shared<ReLU<T>>(),
      convt(16, 8, 2, 1), std::make_shared<BatchNorm2d<T>>(8), std::make_shared<ReLU<T>>(), convt(8, 3, 2, 1),
      std::make_shared<Tanh<T>>());
}

// A module holding a child "main", as the tutorial's Generator class.
template <class T>
class Holder : public nn::Module<T> {
 public:
  explicit Holder(std::shared_ptr<nn::Module<T>> main) { this->register_module("main", std::move(main)); }
  Variable<T> forward(const Variable<T>& x) override { return this->child("main")->forward(x); }
  std::string type_name() const override { return "Generator"; }
};

}  // namespace

TEST_CASE("autoencoder parameter names and shapes are PyTorch's", "[nn][names]") {
  models::Autoencoder<float> model(5);
  const auto named = model.named_parameters();
  std::vector<std::string> names;
  for (const auto& [name, p] : named) names.push_back(name);
  REQUIRE(names == kAutoencoderNames);

  // Every parameter of the PyTorch fixture, with the same shape; nothing more, nothing less.
  test::Fixture fx("autoencoder");
  std::set<std::string> fixture_params;
  for (const auto& [name, record] : fx.file().tensors)
    if (name.rfind("encoder.", 0) == 0 || name.rfind("decoder.", 0) == 0) fixture_params.insert(name);
  REQUIRE(fixture_params == std::set<std::string>(names.begin(), names.end()));
  for (const auto& [name, p] : named) {
    INFO(name);
    REQUIRE(p.shape() == fx.file().record(name).shape);
    REQUIRE(p.requires_grad());
  }
  // No buffers: the state dict is exactly the parameters.
  REQUIRE(model.named_buffers().empty());
  REQUIRE(model.state_dict().names() == names);
  REQUIRE(model.count_parameters().total() == 49670);  // PyTorch's sum(p.numel()) for k = 5
}

TEST_CASE("buffers and counters are named as PyTorch's, in PyTorch's order", "[nn][names]") {
  Generator gen(1);
  Holder<float> g(dcgan_generator_main<float>(gen));
  const auto buffers = g.named_buffers();
  REQUIRE(buffers.size() == 12);
  REQUIRE(buffers[0].name == "main.1.running_mean");
  REQUIRE(buffers[1].name == "main.1.running_var");
  REQUIRE(buffers[2].name == "main.1.num_batches_tracked");
  REQUIRE(buffers[2].is_counter());
  REQUIRE_FALSE(buffers[0].is_counter());
  REQUIRE(buffers[3].name == "main.4.running_mean");

  // The state dict names, shapes and kinds match PyTorch's G.* state dict in dcgan.safetensors.
  test::Fixture fx("dcgan");
  std::set<std::string> expected;
  for (const auto& [name, record] : fx.file().tensors)
    if (name.rfind("G.", 0) == 0) expected.insert(name.substr(2));
  const auto state = g.state_dict();
  std::vector<std::string> names = state.names();
  REQUIRE(std::set<std::string>(names.begin(), names.end()) == expected);
  REQUIRE(names.size() == expected.size());
  // PyTorch's order within a module: parameters, then buffers.
  REQUIRE(std::vector<std::string>(names.begin(), names.begin() + 7) ==
          std::vector<std::string>{"main.0.weight", "main.1.weight", "main.1.bias", "main.1.running_mean",
                                   "main.1.running_var", "main.1.num_batches_tracked", "main.3.weight"});
  for (const auto& e : state) {
    INFO(e.name);
    const auto& record = fx.file().record("G." + e.name);
    REQUIRE(e.shape() == record.shape);
    REQUIRE(e.is_integer == (record.dtype == "I64"));
  }
}

TEST_CASE("train() and eval() propagate to every descendant", "[nn][modes]") {
  models::Autoencoder<float> model(3);
  auto all_modes = [&](bool mode) {
    for (auto& [name, m] : model.named_modules())
      if (m->is_training() != mode) return false;
    return true;
  };
  REQUIRE(model.named_modules().size() == 1 + 2 + 3 + 6 + 3 + 3 + 4 + 5);
  REQUIRE(all_modes(true));
  model.eval();
  REQUIRE(all_modes(false));
  REQUIRE_FALSE(model.encoder()->encoder_cnn()->at<nn::Conv2d<float>>(0)->is_training());
  model.train();
  REQUIRE(all_modes(true));
  model.train(false);
  REQUIRE(all_modes(false));
  // A replacement child takes the parent's mode.
  model.decoder()->decoder_conv()->replace(1, std::make_shared<nn::LeakyReLU<float>>(0.1));
  REQUIRE_FALSE(model.decoder()->decoder_conv()->operator[](1)->is_training());
}

TEST_CASE("freezing: frozen parameters stay bit-identical and get no optimiser state", "[nn][freeze]") {
  Generator gen(11);
  models::Autoencoder<float> model(4, 0.0, gen);
  model.encoder()->set_requires_grad(false);                                        // a whole module
  auto head_bias = model.decoder()->decoder_lin()->at<nn::Linear<float>>(0)->bias;  // a single parameter
  head_bias.set_requires_grad(false);

  std::vector<std::pair<std::string, Tensor<float>>> before;
  for (auto& [name, p] : model.named_parameters()) before.emplace_back(name, p.value().clone());

  optim::Adam<float> opt(model.parameters(), {.lr = 1e-2});
  const Variable<float> x(Tensor<float>::rand({2, 1, 28, 28}, gen));
  for (int step = 0; step < 2; ++step) {
    opt.zero_grad();
    Variable<float> loss = mse_loss(model.forward(x), x);
    loss.backward();
    opt.step();
  }

  std::size_t frozen = 0, trainable = 0;
  const auto named = model.named_parameters();
  for (std::size_t i = 0; i < named.size(); ++i) {
    const auto& [name, p] = named[i];
    INFO(name);
    const bool is_frozen = name.rfind("encoder.", 0) == 0 || name == "decoder.decoder_lin.0.bias";
    REQUIRE(p.requires_grad() == !is_frozen);
    if (is_frozen) {
      ++frozen;
      REQUIRE(bit_equal(p.value(), before[i].second));
      REQUIRE_FALSE(p.grad().defined());
      REQUIRE(opt.state(p) == nullptr);
    } else {
      ++trainable;
      REQUIRE_FALSE(bit_equal(p.value(), before[i].second));
      REQUIRE(opt.state(p) != nullptr);
      REQUIRE(opt.state(p)->step == 2);
    }
  }
  REQUIRE(frozen == 11);
  REQUIRE(opt.num_states() == trainable);
  REQUIRE(opt.state_dict().size() == trainable * 3 + 1);  // step, exp_avg, exp_avg_sq; the group size

  // Unfreezing is recursive too.
  model.set_requires_grad(true);
  for (auto& [name, p] : model.named_parameters()) REQUIRE(p.requires_grad());
}

TEST_CASE("FrozenScope: gradients pass through a frozen module, which gets none and is restored after",
          "[nn][freeze]") {
  Generator gen(12);
  models::Autoencoder<float> model(4, 0.0, gen);
  auto pre_frozen = model.encoder()->encoder_lin()->at<nn::Linear<float>>(0)->bias;
  pre_frozen.set_requires_grad(false);
  const Tensor<float> x_value = Tensor<float>::rand({2, 1, 28, 28}, gen);

  // Reference: the gradient with respect to the input with every parameter trainable except pre_frozen.
  Variable<float> x(x_value.clone(), true);
  mse_loss(model.forward(x), Variable<float>(x_value)).backward();
  const Tensor<float> expected_input_grad = x.grad().clone();
  model.zero_grad();

  {
    const nn::FrozenScope<float> frozen(*model.encoder());
    for (auto& [name, p] : model.encoder()->named_parameters()) REQUIRE_FALSE(p.requires_grad());
    Variable<float> x2(x_value.clone(), true);
    mse_loss(model.forward(x2), Variable<float>(x_value)).backward();
    REQUIRE(bit_equal(x2.grad(), expected_input_grad));  // the gradient still flows through the encoder
    for (auto& [name, p] : model.encoder()->named_parameters()) {
      INFO(name);
      REQUIRE_FALSE(p.grad().defined());
    }
    for (auto& [name, p] : model.decoder()->named_parameters()) REQUIRE(p.grad().defined());
  }
  // Each parameter gets its own setting back: the one frozen before the scope stays frozen.
  for (auto& [name, p] : model.named_parameters()) {
    INFO(name);
    REQUIRE(p.requires_grad() == (name != "encoder.encoder_lin.0.bias"));
  }
}

TEST_CASE("summary prints PyTorch's repr, frozen marks and parameter counts", "[nn][print]") {
  models::Autoencoder<float> model(5);
  const std::string expected_repr = R"(Autoencoder(
  (encoder): Encoder(
    (encoder_cnn): Sequential(
      (0): Conv2d(1, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))
      (1): ReLU()
      (2): Conv2d(8, 16, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))
      (3): ReLU()
      (4): Conv2d(16, 32, kernel_size=(3, 3), stride=(2, 2))
      (5): ReLU()
    )
    (flatten): Flatten(start_dim=1, end_dim=-1)
    (encoder_lin): Sequential(
      (0): Linear(in_features=288, out_features=64, bias=True)
      (1): ReLU()
      (2): Linear(in_features=64, out_features=5, bias=True)
    )
  )
  (decoder): Decoder(
    (decoder_lin): Sequential(
      (0): Linear(in_features=5, out_features=64, bias=True)
      (1): ReLU()
      (2): Linear(in_features=64, out_features=288, bias=True)
      (3): ReLU()
    )
    (unflatten): Unflatten(dim=1, unflattened_size=(32, 3, 3))
    (decoder_conv): Sequential(
      (0): ConvTranspose2d(32, 16, kernel_size=(3, 3), stride=(2, 2))
      (1): ReLU()
      (2): ConvTranspose2d(16, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), output_padding=(1, 1))
      (3): ReLU()
      (4): ConvTranspose2d(8, 1, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), output_padding=(1, 1))
    )
  )
))";
  REQUIRE(model.repr() == expected_repr);
  REQUIRE(model.summary() ==
          expected_repr + "\nTrainable parameters: 49670\nFrozen parameters: 0\nTotal parameters: 49670");
  std::ostringstream os;
  os << model;
  REQUIRE(os.str() == expected_repr);

  model.encoder()->encoder_cnn()->set_requires_grad(false);
  model.decoder()->decoder_lin()->at<nn::Linear<float>>(2)->bias.set_requires_grad(false);
  const std::string s = model.summary();
  REQUIRE_THAT(s,
               Contains("(0): Conv2d(1, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1)) [frozen]\n"));
  REQUIRE_THAT(s, Contains("(4): Conv2d(16, 32, kernel_size=(3, 3), stride=(2, 2)) [frozen]\n"));
  REQUIRE_THAT(s, Contains("(2): Linear(in_features=64, out_features=288, bias=True) [frozen: bias]\n"));
  REQUIRE_THAT(s, Contains("(0): Linear(in_features=288, out_features=64, bias=True)\n"));  // not frozen
  const int64_t frozen = 80 + 1168 + 4640 + 288;
  REQUIRE_THAT(s, Contains("Trainable parameters: " + std::to_string(49670 - frozen) +
                           "\nFrozen parameters: " + std::to_string(frozen) + "\nTotal parameters: 49670"));
  const nn::ParameterCount c = model.count_parameters();
  REQUIRE(c.frozen == frozen);
  REQUIRE(c.trainable == 49670 - frozen);
}

TEST_CASE("grouped conv layers hold PyTorch's weight shapes and run their groups", "[nn][conv]") {
  Generator gen(5);
  nn::Conv2d<float> conv(4, 6, 3, 1, 1, 1, 2, true, gen);
  REQUIRE(conv.weight.shape() == Shape{6, 2, 3, 3});
  // PyTorch's default init bound 1 / sqrt(fan_in), fan_in = in_channels / groups * kh * kw = 18.
  const Tensor<float> w = conv.weight.value();
  const float bound = float(1 / std::sqrt(18.0));
  REQUIRE(std::all_of(w.data(), w.data() + w.numel(), [bound](float v) { return std::abs(v) <= bound; }));
  REQUIRE(
      std::any_of(w.data(), w.data() + w.numel(), [bound](float v) { return std::abs(v) > 0.9f * bound; }));
  const Variable<float> x(Tensor<float>::ones({2, 4, 5, 5}));
  REQUIRE(conv.forward(x).shape() == Shape{2, 6, 5, 5});
  nn::ConvTranspose2d<float> convt(4, 6, 3, 2, 1, 1, 1, 2, true, gen);
  REQUIRE(convt.weight.shape() == Shape{4, 3, 3, 3});
  REQUIRE(convt.forward(x).shape() == Shape{2, 6, 10, 10});
  REQUIRE_THROWS_WITH(nn::Conv2d<float>(4, 6, 3, 1, 0, 1, 4),
                      Catch::Contains("Conv2d") && Catch::Contains("groups 4"));
  REQUIRE_THROWS_WITH(nn::ConvTranspose2d<float>(4, 6, 3, 1, 0, 0, 1, 0),
                      Catch::Contains("ConvTranspose2d") && Catch::Contains("groups 0"));
}

TEST_CASE("layer reprs follow PyTorch's formatting", "[nn][print]") {
  REQUIRE(nn::Linear<float>(3, 2, false).repr() == "Linear(in_features=3, out_features=2, bias=False)");
  REQUIRE(nn::Conv2d<float>(3, 5, {3, 2}, 1, 0, 2, 1, false).repr() ==
          "Conv2d(3, 5, kernel_size=(3, 2), stride=(1, 1), dilation=(2, 2), bias=False)");
  REQUIRE(nn::ConvTranspose2d<float>(16, 8, 4, 2, 1).repr() ==
          "ConvTranspose2d(16, 8, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1))");
  REQUIRE(nn::Conv2d<float>(4, 6, 3, 1, 1, 1, 2).repr() ==
          "Conv2d(4, 6, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=2)");
  REQUIRE(nn::ConvTranspose2d<float>(4, 6, 3, 2, 1, 1, 1, 2, false).repr() ==
          "ConvTranspose2d(4, 6, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), output_padding=(1, 1), "
          "groups=2, bias=False)");
  REQUIRE(nn::BatchNorm1d<float>(7).repr() ==
          "BatchNorm1d(7, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)");
  REQUIRE(nn::Dropout<float>(0.2).repr() == "Dropout(p=0.2, inplace=False)");
  REQUIRE(nn::LeakyReLU<float>(0.2).repr() == "LeakyReLU(negative_slope=0.2)");
  REQUIRE(nn::LeakyReLU<double>().repr() == "LeakyReLU(negative_slope=0.01)");
  REQUIRE(nn::Sigmoid<float>().repr() == "Sigmoid()");
  REQUIRE(nn::Tanh<float>().repr() == "Tanh()");
  REQUIRE(nn::Unflatten<float>(1, {5}).repr() == "Unflatten(dim=1, unflattened_size=(5,))");
  REQUIRE(nn::Sequential<float>().repr() == "Sequential()");
  REQUIRE(models::Encoder<float>(2, 0.25).repr().rfind(
              "Encoder(\n  dropout=0.25\n  (encoder_cnn): Sequential(", 0) == 0);

  using nn::detail::python_float_repr;
  REQUIRE(python_float_repr(0.5) == "0.5");
  REQUIRE(python_float_repr(1e-5) == "1e-05");
  REQUIRE(python_float_repr(1.0) == "1.0");
  REQUIRE(python_float_repr(0.0001) == "0.0001");
  REQUIRE(python_float_repr(1e16) == "1e+16");
  REQUIRE(python_float_repr(123.25) == "123.25");
  REQUIRE(python_float_repr(-3e-7) == "-3e-07");
  REQUIRE(python_float_repr(0.2f) == "0.2");
  REQUIRE(python_float_repr(0.0) == "0.0");
}

TEST_CASE("Sequential: names, indexing, push_back and replacing a child", "[nn][sequential]") {
  Generator gen(5);
  auto seq = std::make_shared<nn::Sequential<float>>(std::make_shared<nn::Linear<float>>(4, 3, true, gen),
                                                     std::make_shared<nn::ReLU<float>>());
  REQUIRE(seq->size() == 2);
  seq->push_back(std::make_shared<nn::Linear<float>>(3, 2, true, gen));
  REQUIRE(seq->size() == 3);
  std::vector<std::string> names;
  for (auto& [name, p] : seq->named_parameters()) names.push_back(name);
  REQUIRE(names == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  REQUIRE((*seq)[1]->type_name() == "ReLU");
  REQUIRE((*seq)[-1] == (*seq)[2]);
  REQUIRE(seq->at<nn::Linear<float>>(2)->out_features == 2);
  REQUIRE_THROWS_AS((*seq)[3], std::out_of_range);
  REQUIRE_THROWS_AS((*seq)[-4], std::out_of_range);
  REQUIRE_THROWS_WITH(seq->at<nn::Linear<float>>(1), Contains("'1' is a ReLU"));

  const Variable<float> x(Tensor<float>::rand({5, 4}, gen));
  REQUIRE(seq->forward(x).shape() == Shape{5, 2});

  // Swap the head: same name, new shape, forward uses the new module.
  auto old = seq->replace(2, std::make_shared<nn::Linear<float>>(3, 7, true, gen));
  REQUIRE(old->type_name() == "Linear");
  REQUIRE(seq->forward(x).shape() == Shape{5, 7});
  REQUIRE(seq->named_parameters()[2].first == "2.weight");
  REQUIRE(seq->named_parameters()[2].second.shape() == Shape{7, 3});
  REQUIRE_THROWS_WITH(seq->replace_module("head", std::make_shared<nn::ReLU<float>>()),
                      Contains("no child module named 'head'") && Contains("children: 0 1 2"));

  // From a vector of modules.
  nn::Sequential<float> from_vector(std::vector<std::shared_ptr<nn::Module<float>>>{
      std::make_shared<nn::Tanh<float>>(), std::make_shared<nn::Sigmoid<float>>()});
  REQUIRE(from_vector.size() == 2);
  REQUIRE(from_vector[1]->type_name() == "Sigmoid");

  // The autoencoder's head can be swapped the same way; the state name is unchanged.
  models::Autoencoder<float> model(5, 0.0, gen);
  model.encoder()->encoder_lin()->replace(2, std::make_shared<nn::Linear<float>>(64, 9, true, gen));
  REQUIRE(model.named_parameters()[8].first == "encoder.encoder_lin.2.weight");
  REQUIRE(model.named_parameters()[8].second.shape() == Shape{9, 64});
  REQUIRE(model.encode(Variable<float>(Tensor<float>::rand({2, 1, 28, 28}, gen))).shape() == Shape{2, 9});
}

TEST_CASE("Sequential runs a convolution and the ReLU after it as one fused step, with the same results",
          "[nn][sequential][relu]") {
  Generator gen(6);
  auto seq = std::make_shared<nn::Sequential<float>>(
      std::make_shared<nn::Conv2d<float>>(2, 4, 3, 2, 1, 1, 1, true, gen),
      std::make_shared<nn::ReLU<float>>(),
      std::make_shared<nn::ConvTranspose2d<float>>(4, 3, 3, 2, 1, 1, 1, 1, true, gen),
      std::make_shared<nn::ReLU<float>>(),
      std::make_shared<nn::Conv2d<float>>(3, 2, 3, 1, 1, 1, 1, true, gen),
      std::make_shared<nn::Sigmoid<float>>());
  const Tensor<float> input = Tensor<float>::rand({18, 2, 10, 10}, gen, -1, 1);
  auto gradients = [&] {
    std::vector<Tensor<float>> g;
    for (auto& [name, p] : seq->named_parameters()) {
      g.push_back(p.grad().contiguous());
      p.zero_grad();
    }
    return g;
  };
  const Variable<float> x1(input, true);
  const Variable<float> fused = seq->forward(x1);
  // the nodes that ran, from the output back: two fused convolutions, then the last one on its own
  std::vector<std::string> ops;
  for (auto node = fused.grad_fn(); node;) {
    ops.push_back(node->op_name);
    node = node->inputs.empty() ? nullptr : node->inputs[0]->grad_fn;
  }
  REQUIRE(ops == std::vector<std::string>{"sigmoid", "conv2d", "conv_transpose2d_relu", "conv2d_relu"});
  sum(fused).backward();
  const std::vector<Tensor<float>> fused_grads = gradients();

  const Variable<float> x2(input, true);
  Variable<float> h = x2;
  for (std::size_t i = 0; i < seq->size(); ++i) h = (*seq)[int64_t(i)]->forward(h);  // one child at a time
  sum(h).backward();
  const std::vector<Tensor<float>> separate_grads = gradients();

  REQUIRE(bit_equal(fused.value(), h.value()));
  REQUIRE(bit_equal(x1.grad(), x2.grad()));
  REQUIRE(fused_grads.size() == 6);
  for (std::size_t k = 0; k < fused_grads.size(); ++k) REQUIRE(bit_equal(fused_grads[k], separate_grads[k]));
}

TEST_CASE("Sequential runs subclasses of a convolution or ReLU through their own forward",
          "[nn][sequential][relu]") {
  struct ScaledConv : nn::Conv2d<float> {
    using nn::Conv2d<float>::Conv2d;
    Variable<float> forward(const Variable<float>& x) override {
      return nn::Conv2d<float>::forward(x) * 10.0f;
    }
  };
  struct CountingReLU : nn::ReLU<float> {
    int calls = 0;
    Variable<float> forward(const Variable<float>& x) override {
      ++calls;
      return nn::ReLU<float>::forward(x);
    }
  };
  Generator gen(8);
  const Variable<float> x(Tensor<float>::rand({2, 1, 6, 6}, gen, -1, 1), false);
  auto scaled = std::make_shared<ScaledConv>(1, 2, 3, 1, 1, 1, 1, true, gen);
  const Tensor<float> expected = relu(scaled->forward(x)).value();
  REQUIRE(bit_equal(nn::Sequential<float>(scaled, std::make_shared<nn::ReLU<float>>())(x).value(), expected));
  auto counting = std::make_shared<CountingReLU>();
  auto conv = std::make_shared<nn::Conv2d<float>>(1, 2, 3, 1, 1, 1, 1, true, gen);
  const Variable<float> y = nn::Sequential<float>(conv, counting)(x);
  REQUIRE(counting->calls == 1);
  REQUIRE(y.grad_fn()->op_name == "relu");  // run on its own, not fused into the convolution
  REQUIRE(bit_equal(y.value(), relu(conv->forward(x)).value()));
}

namespace {
template <class T>
struct Outer {
  struct Inner {};
};
std::string name_of_local_class(std::vector<int>) {
  struct Local {};
  return nn::detail::class_name(typeid(Local));
}
struct ScaledConv : nn::Conv2d<float> {
  using nn::Conv2d<float>::Conv2d;
};
}  // namespace

TEST_CASE("a class's name for repr is its own, without scopes or template arguments", "[nn]") {
  CHECK(nn::detail::class_name(typeid(Outer<float>::Inner)) == "Inner");
  CHECK(nn::detail::class_name(typeid(Outer<std::vector<int>>)) == "Outer");
  CHECK(nn::detail::class_name(typeid(nn::Linear<double>)) == "Linear");
  CHECK(name_of_local_class({}) == "Local");
  // A layer subclass prints as itself, as in PyTorch; the built-in layers by their own class names.
  CHECK(ScaledConv(1, 2, 3).repr() == "ScaledConv(1, 2, kernel_size=(3, 3), stride=(1, 1))");
  CHECK(nn::BatchNorm2d<float>(4).type_name() == "BatchNorm2d");
  CHECK(nn::BatchNorm1d<float>(4).type_name() == "BatchNorm1d");
  CHECK(nn::LeakyReLU<float>().type_name() == "LeakyReLU");
}

TEST_CASE("assigning a layer's parameter member replaces the parameter everywhere, as in PyTorch", "[nn]") {
  auto linear = std::make_shared<nn::Linear<double>>(2, 1);
  linear->bias.value().fill_(0);
  // linear.weight = nn.Parameter(torch.ones(1, 2)): forward, parameters(), the state dict and an optimiser
  // built afterwards all use the new one.
  linear->weight = Variable<double>(Tensor<double>::ones({1, 2}), true);
  REQUIRE(linear->parameters()[0].id() == linear->weight.id());
  optim::SGD<double> sgd(linear->parameters(), {.lr = 0.1, .momentum = 0});
  const Variable<double> x(Tensor<double>::from_vector({1, 2}, {1, 2}));
  for (int i = 0; i < 3; ++i) {
    sgd.zero_grad();
    sum((*linear)(x)).backward();
    sgd.step();
  }
  REQUIRE(linear->weight.value().at({0, 0}) == Approx(0.7));  // PyTorch: [0.7, 0.4], output 1.2
  REQUIRE(linear->weight.value().at({0, 1}) == Approx(0.4));
  REQUIRE(linear->state_dict().tensor("weight").at({0, 1}) == Approx(0.4));
  REQUIRE(sum((*linear)(x)).item() == Approx(1.2));  // 0.7 + 2 * 0.4 and the bias, which learnt -0.3

  // Tying: decoder.weight = encoder.weight; the shared parameter is listed once.
  auto tied = std::make_shared<nn::Sequential<double>>(std::make_shared<nn::Linear<double>>(3, 3, false),
                                                       std::make_shared<nn::Linear<double>>(3, 3, false));
  tied->at<nn::Linear<double>>(1)->weight = tied->at<nn::Linear<double>>(0)->weight;
  REQUIRE(tied->parameters().size() == 1);
  // The state dict names it twice, as PyTorch's does.
  REQUIRE(tied->state_dict().names() == std::vector<std::string>{"0.weight", "1.weight"});

  // A layer built without bias gets one by assignment (a parameter registered as None, then set).
  auto no_bias = std::make_shared<nn::Linear<double>>(2, 1, false);
  REQUIRE(no_bias->state_dict().names() == std::vector<std::string>{"weight"});
  REQUIRE_THROWS_WITH(no_bias->parameter("bias"), Contains("no parameter named 'bias'"));
  no_bias->bias = Variable<double>(Tensor<double>::zeros({1}), true);
  REQUIRE(no_bias->state_dict().names() == std::vector<std::string>{"weight", "bias"});
  // A computed Variable is no parameter: refused where the parameters are listed, naming it.
  no_bias->bias = no_bias->bias * 2.0;
  REQUIRE_THROWS_WITH(no_bias->parameters(),
                      Contains("Linear") && Contains("'bias'") && Contains("not a leaf"));
}

TEST_CASE("Module registration rejects bad and duplicate names; shared parameters are listed once", "[nn]") {
  class Tied : public nn::Module<float> {
   public:
    Tied() {
      a = register_module("a", std::make_shared<nn::Linear<float>>(3, 3));
      b = register_module("b", std::make_shared<nn::Linear<float>>(3, 3));
      b->register_parameter("tied", a->weight);
    }
    std::shared_ptr<nn::Linear<float>> a, b;
  } tied;
  const auto named = tied.named_parameters();
  REQUIRE(named.size() == 4);  // a.weight, a.bias, b.weight, b.bias; "b.tied" is a.weight again
  REQUIRE(tied.state_dict().size() == 5);
  REQUIRE(tied.state_dict().contains("b.tied"));
  REQUIRE_THROWS_WITH(tied.register_module("a", std::make_shared<nn::ReLU<float>>()), Contains("'a'"));
  REQUIRE_THROWS_WITH(tied.register_buffer("x.y", Tensor<float>::zeros({1})), Contains("'x.y'"));
  REQUIRE_THROWS_WITH(tied.a->register_parameter("weight", Tensor<float>::zeros({1})), Contains("taken"));
  REQUIRE_THROWS_WITH(tied.forward(Variable<float>(Tensor<float>::zeros({1, 3}))),
                      Contains("not implemented"));
  // A class without its own type_name() is shown by its name, as PyTorch shows a subclass.
  REQUIRE(tied.type_name() == "Tied");
  REQUIRE(tied.repr().rfind("Tied(", 0) == 0);

  int visited = 0;
  tied.apply([&](nn::Module<float>&) { ++visited; });
  REQUIRE(visited == 3);
  const auto modules = tied.named_modules();
  REQUIRE(modules.size() == 3);
  REQUIRE(modules[0].first.empty());
  REQUIRE(modules[2].first == "b");
  // A child registered twice is one child: apply visits it once, as torch's (a scaling applied twice would
  // scale twice).
  const auto shared = std::make_shared<nn::Linear<float>>(1, 1, false);
  nn::Sequential<float> twice(shared, shared);
  int calls = 0;
  twice.apply([&](nn::Module<float>&) { ++calls; });
  REQUIRE(calls == 2);
  REQUIRE(twice.named_children().size() == 1);
  REQUIRE(twice.named_children()[0].first == "0");
}

namespace {
// One parameter registered under two names (tied weights).
struct TiedWeights : nn::Module<double> {
  explicit TiedWeights(const Variable<double>& w) {
    register_parameter("a_weight", w);
    register_parameter("b_weight", w);
  }
};
}  // namespace

TEST_CASE("loading a tied parameter under either of its names makes graphs recorded before stale",
          "[nn][state]") {
  Variable<double> w(Tensor<double>::from_vector({1, 1}, {2}), true);
  TiedWeights tied(w);
  const Variable<double> x(Tensor<double>::from_vector({3, 4}, {2}));
  const Variable<double> stale = sum(w * w * x);
  nn::StateDict<double> state;
  state.insert("b_weight", Tensor<double>::from_vector({10, 20}, {2}));  // only the second name
  tied.load_state_dict(state, /*strict=*/false);
  REQUIRE(w.value().data()[1] == 20.0);
  REQUIRE_THROWS_WITH(stale.backward(), Catch::Contains("modified in place"));
}

TEST_CASE("state_dict / load_state_dict round-trip and strict checking", "[nn][state]") {
  Generator g1(1), g2(2);
  models::Autoencoder<float> a(3, 0.0, g1), b(3, 0.0, g2);
  const Variable<float> x(Tensor<float>::rand({2, 1, 28, 28}, g1));
  REQUIRE_FALSE(bit_equal(a.forward(x).value(), b.forward(x).value()));
  auto b_weight = b.parameters()[0];  // a handle held elsewhere (an optimiser) must see the load
  const uint64_t version_before = b_weight.version();
  const auto result = b.load_state_dict(a.state_dict());
  REQUIRE(b_weight.version() == version_before + 1);  // a graph recorded before the load would be stale
  REQUIRE(result.missing_keys.empty());
  REQUIRE(result.unexpected_keys.empty());
  REQUIRE(bit_equal(a.forward(x).value(), b.forward(x).value()));
  REQUIRE(bit_equal(b_weight.value(), a.parameters()[0].value()));

  // state_dict() is a snapshot, not a view.
  auto snapshot = a.state_dict();
  a.parameters()[0].value().fill_(7.0f);
  REQUIRE(snapshot.tensor("encoder.encoder_cnn.0.weight").data()[0] != 7.0f);

  // A state with one name missing, one unexpected and two mis-shaped: one error names them all, and
  // nothing is loaded.
  nn::StateDict<float> bad;
  for (const auto& e : a.state_dict()) {
    if (e.name == "decoder.decoder_lin.2.bias") continue;
    if (e.name == "encoder.encoder_lin.0.weight")
      bad.insert(e.name, Tensor<float>::zeros({288, 64}));
    else if (e.name == "decoder.decoder_conv.4.bias")
      bad.insert(e.name, Tensor<float>::zeros({2}));
    else
      bad.insert(e.name, e.tensor);
  }
  bad.insert("encoder.extra.weight", Tensor<float>::zeros({1}));
  const auto before = b.state_dict();
  try {
    b.load_state_dict(bad);
    FAIL("load_state_dict accepted a mismatched state");
  } catch (const nn::StateDictError& e) {
    const std::string what = e.what();
    REQUIRE_THAT(what, Contains("missing (1): decoder.decoder_lin.2.bias"));
    REQUIRE_THAT(what, Contains("unexpected (1): encoder.extra.weight"));
    REQUIRE_THAT(what, Contains("encoder.encoder_lin.0.weight: expected [64, 288], found [288, 64]"));
    REQUIRE_THAT(what, Contains("decoder.decoder_conv.4.bias: expected [1], found [2]"));
    REQUIRE(e.mismatch().mis_shaped.size() == 2);
  }
  for (const auto& e : b.state_dict()) REQUIRE(bit_equal(e.tensor, before.tensor(e.name)));

  // Non-strict: missing and unexpected names are skipped and reported, shapes must still match.
  REQUIRE_THROWS_AS(b.load_state_dict(bad, false), nn::StateDictError);
  nn::StateDict<float> partial;
  partial.insert("encoder.encoder_cnn.0.bias", Tensor<float>::full({8}, 0.5f));
  partial.insert("not.a.param", Tensor<float>::zeros({3}));
  const auto skipped = b.load_state_dict(partial, false);
  REQUIRE(skipped.missing_keys.size() == kAutoencoderNames.size() - 1);
  REQUIRE(skipped.unexpected_keys == std::vector<std::string>{"not.a.param"});
  REQUIRE(b.state_dict().tensor("encoder.encoder_cnn.0.bias").data()[7] == 0.5f);

  // A tensor where an integer counter is expected is a type error.
  nn::BatchNorm1d<float> bn(2);
  auto bn_state = bn.state_dict();
  REQUIRE(bn_state.integer("num_batches_tracked") == 0);
  nn::StateDict<float> wrong;
  for (const auto& e : bn_state)
    if (e.is_integer)
      wrong.insert(e.name, Tensor<float>::zeros({}));
    else
      wrong.insert(e.name, e.tensor);
  REQUIRE_THROWS_WITH(bn.load_state_dict(wrong),
                      Contains("num_batches_tracked: expected an integer, found a tensor"));
  // A state without the counter (written by a tool that drops it) loads strictly and resets it to 0, as
  // torch's BatchNorm does for a state without version metadata.
  bn.num_batches_tracked = 7;
  nn::StateDict<float> without_counter;
  for (const auto& e : bn_state)
    if (!e.is_integer) without_counter.insert(e.name, e.tensor);
  REQUIRE(bn.load_state_dict(without_counter).missing_keys.empty());
  REQUIRE(bn.num_batches_tracked == 0);
}

TEST_CASE("default initialisation matches PyTorch's bounds and is reproducible", "[nn][init]") {
  Generator gen(123);
  // A big Linear: |w| <= 1/sqrt(fan_in), uniform, so the variance is bound^2 / 3.
  nn::Linear<float> big(256, 2000, true, gen);
  const double bound = 1.0 / std::sqrt(256.0);
  const Tensor<float>& w = big.weight.value();
  REQUIRE(max_abs(w) <= float(bound));
  REQUIRE(max_abs(w) > 0.999 * bound);
  double mean = 0, var = 0;
  for (int64_t i = 0; i < w.numel(); ++i) mean += w.data()[i];
  mean /= double(w.numel());
  for (int64_t i = 0; i < w.numel(); ++i) var += (w.data()[i] - mean) * (w.data()[i] - mean);
  var /= double(w.numel());
  REQUIRE(std::abs(mean) < 0.01 * bound);
  REQUIRE(var == Approx(bound * bound / 3).epsilon(0.01));
  REQUIRE(max_abs(big.bias.value()) <= float(bound));
  REQUIRE(max_abs(big.bias.value()) > 0.9 * bound);

  // Conv2d: fan_in = in * kh * kw.
  nn::Conv2d<float> conv(16, 32, 3, 1, 0, 1, 1, true, gen);
  REQUIRE(max_abs(conv.weight.value()) <= float(1 / std::sqrt(144.0)));
  REQUIRE(max_abs(conv.weight.value()) > 0.95 / std::sqrt(144.0));
  REQUIRE(max_abs(conv.bias.value()) <= float(1 / std::sqrt(144.0)));

  // ConvTranspose2d [in, out, k, k]: fan_in = out * k * k, as torch computes it (not in * k * k).
  nn::ConvTranspose2d<float> convt(64, 2, 3, 1, 0, 0, 1, 1, true, gen);
  REQUIRE(convt.weight.shape() == Shape{64, 2, 3, 3});
  REQUIRE(max_abs(convt.weight.value()) <= float(1 / std::sqrt(18.0)));
  REQUIRE(max_abs(convt.weight.value()) > 0.95 / std::sqrt(18.0));  // far above 1 / sqrt(576)
  REQUIRE(max_abs(convt.bias.value()) <= float(1 / std::sqrt(18.0)));
  REQUIRE(nn::init::calculate_fans({64, 2, 3, 3}).fan_in == 18);
  REQUIRE(nn::init::calculate_fans({64, 2, 3, 3}).fan_out == 576);
  REQUIRE_THROWS_AS(nn::init::calculate_fans({5}), std::invalid_argument);

  // Same seed, same weights; another seed, other weights.
  Generator s1(42), s2(42), s3(43);
  models::Autoencoder<float> m1(5, 0.0, s1), m2(5, 0.0, s2), m3(5, 0.0, s3);
  const auto p1 = m1.parameters(), p2 = m2.parameters(), p3 = m3.parameters();
  for (std::size_t i = 0; i < p1.size(); ++i) {
    REQUIRE(bit_equal(p1[i].value(), p2[i].value()));
    REQUIRE_FALSE(bit_equal(p1[i].value(), p3[i].value()));
  }
  // The default generator is used when none is given.
  manual_seed(9);
  nn::Linear<float> d1(3, 3);
  manual_seed(9);
  nn::Linear<float> d2(3, 3);
  REQUIRE(bit_equal(d1.weight.value(), d2.weight.value()));
}

namespace {
// Mean and (biased) variance of a tensor's elements.
template <class T>
std::pair<double, double> moments(const Tensor<T>& t) {
  double mean = 0, var = 0;
  for (int64_t i = 0; i < t.numel(); ++i) mean += double(t.data()[i]);
  mean /= double(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) var += (double(t.data()[i]) - mean) * (double(t.data()[i]) - mean);
  return {mean, var / double(t.numel())};
}
double normal_pdf(double x) {
  return std::exp(-0.5 * x * x) / std::sqrt(2 * std::numbers::pi);
}
// Phi(b) - Phi(a) for a < b, without cancellation above the mean.
double normal_mass(double a, double b) {
  return a > 0 ? 0.5 * (std::erfc(a / std::sqrt(2.0)) - std::erfc(b / std::sqrt(2.0)))
               : 0.5 * (std::erfc(-b / std::sqrt(2.0)) - std::erfc(-a / std::sqrt(2.0)));
}
}  // namespace

TEST_CASE("trunc_normal_ draws the truncated normal, far in a tail too", "[nn][init]") {
  // log Phi is exact on both sides of the switch to its asymptotic series (Phi(-37.5) = 4.6e-308 is still
  // a normal double), and the quantile inverts it over the whole range of double.
  for (double x : {-37.5, -37.0001})
    CHECK(nn::init::detail::log_normal_cdf(x) ==
          Approx(std::log(0.5 * std::erfc(-x / std::sqrt(2.0)))).epsilon(1e-13));
  for (double x : {-300.0, -37.5, -20.0, -3.0, -0.5, 0.0, 0.7, 3.0, 7.5})
    CHECK(nn::init::detail::normal_quantile_of_log(nn::init::detail::log_normal_cdf(x)) ==
          Approx(x).margin(1e-12).epsilon(1e-12));
  // Its ends, where Newton's method would give NaN: p = 0 and p = 1.
  CHECK(nn::init::detail::normal_quantile_of_log(-std::numeric_limits<double>::infinity()) ==
        -std::numeric_limits<double>::infinity());
  CHECK(nn::init::detail::normal_quantile_of_log(0.0) == std::numeric_limits<double>::infinity());
  // (mean, std, a, b): the default interval, one above the mean (drawn mirrored), one 8 standard deviations
  // out, one reaching infinity.
  const double inf = std::numeric_limits<double>::infinity();
  for (const auto& [mean, std, a, b] : {std::tuple{0.0, 1.0, -2.0, 2.0}, std::tuple{1.0, 0.5, 1.5, 3.0},
                                        std::tuple{0.0, 1.0, 8.0, 9.0}, std::tuple{-1.0, 2.0, -inf, -2.0}}) {
    INFO("mean " << mean << ", std " << std << ", [" << a << ", " << b << "]");
    Generator gen(11);
    Tensor<double> t = Tensor<double>::empty({400, 250});
    nn::init::trunc_normal_(t, mean, std, a, b, gen);
    double lo = inf, hi = -inf;
    for (int64_t i = 0; i < t.numel(); ++i) lo = std::min(lo, t.data()[i]), hi = std::max(hi, t.data()[i]);
    CHECK(lo >= a);
    CHECK(hi <= b);
    // The truncated normal's mean and variance: with alpha, beta the standardised bounds and Z their mass,
    // mean + std (phi(alpha) - phi(beta)) / Z and std^2 (1 + (alpha phi(alpha) - beta phi(beta)) / Z -
    // ((phi(alpha)
    // - phi(beta)) / Z)^2), an infinite bound contributing 0.
    const double alpha = (a - mean) / std, beta = (b - mean) / std, z = normal_mass(alpha, beta);
    const auto x_pdf = [](double x) { return std::isinf(x) ? 0.0 : x * normal_pdf(x); };
    const double shift = (normal_pdf(alpha) - normal_pdf(beta)) / z;
    const double expected_mean = mean + std * shift;
    const double expected_var = std * std * (1 + (x_pdf(alpha) - x_pdf(beta)) / z - shift * shift);
    const auto [sample_mean, sample_var] = moments(t);
    // 100,000 draws: the sample mean within 5 standard errors, the variance within 2%.
    CHECK(std::abs(sample_mean - expected_mean) < 5 * std::sqrt(expected_var / double(t.numel())));
    CHECK(sample_var == Approx(expected_var).epsilon(0.02));
  }
  Tensor<float> t = Tensor<float>::empty({3});
  CHECK_THROWS_WITH(nn::init::trunc_normal_(t, 0.0, 1.0, 2.0, 2.0), Contains("a < b") && Contains("[2, 2]"));
  CHECK_THROWS_WITH(nn::init::trunc_normal_(t, 0.0, 0.0), Contains("std 0"));
}

TEST_CASE("orthogonal_, xavier_normal_ and eye_ fill as torch.nn.init's", "[nn][init]") {
  // Wide ([6, 10]: orthonormal rows) and tall ([10, 4, 1, 1] seen as [10, 4]: orthonormal columns), scaled
  // by the gain; the same seed gives the same matrix.
  for (const Shape& shape : {Shape{6, 10}, Shape{10, 4, 1, 1}}) {
    INFO("shape " << shape_str(shape));
    Generator gen(5), again(5);
    Variable<float> w(Tensor<float>::empty(shape), true);
    nn::init::orthogonal_(w, 2.0, gen);
    const Eigen::Index rows = shape[0], cols = w.numel() / shape[0];
    const Eigen::MatrixXd q =
        Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
            w.value().data(), rows, cols)
            .cast<double>();
    const Eigen::MatrixXd gram =
        rows < cols ? Eigen::MatrixXd(q * q.transpose()) : Eigen::MatrixXd(q.transpose() * q);
    CHECK((gram - 4 * Eigen::MatrixXd::Identity(gram.rows(), gram.cols())).cwiseAbs().maxCoeff() < 1e-5);
    Tensor<float> same = Tensor<float>::empty(shape);
    nn::init::orthogonal_(same, 2.0, again);
    CHECK(bit_equal(same, w.value()));
    // As torch's: Q of the QR of the draws (row-major over the tensor; transposed when wide), signed so that
    // R = Q^T draws is upper triangular with a positive diagonal.
    Generator redraw(5);
    Eigen::MatrixXd draws(rows, cols);
    for (Eigen::Index r = 0; r < rows; ++r)
      for (Eigen::Index c = 0; c < cols; ++c) draws(r, c) = redraw.normal();
    const Eigen::MatrixXd r_factor =
        rows < cols ? Eigen::MatrixXd(q / 2 * draws.transpose()) : Eigen::MatrixXd(q.transpose() / 2 * draws);
    for (Eigen::Index i = 0; i < r_factor.rows(); ++i) {
      CHECK(r_factor(i, i) > 0);
      for (Eigen::Index j = 0; j < i; ++j) CHECK(std::abs(r_factor(i, j)) < 1e-5);
    }
  }
  CHECK_THROWS_WITH(nn::init::orthogonal_(Tensor<float>::empty({5})),
                    Contains("at least 2 dimensions") && Contains("[5]"));

  Generator gen(3);
  Tensor<double> x = Tensor<double>::empty({300, 200});
  nn::init::xavier_normal_(x, 0.5, gen);
  const auto [mean, var] = moments(x);
  CHECK(std::abs(mean) < 0.002);
  CHECK(std::sqrt(var) == Approx(0.5 * std::sqrt(2.0 / 500)).epsilon(0.01));

  Tensor<float> e = Tensor<float>::full({3, 5}, 7.0f);
  nn::init::eye_(e);
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < 5; ++c) CHECK(e.data()[r * 5 + c] == (r == c ? 1.0f : 0.0f));
  CHECK_THROWS_WITH(nn::init::eye_(Tensor<float>::empty({2, 2, 2})),
                    Contains("2-d") && Contains("[2, 2, 2]"));
}

TEST_CASE("init functions fill tensors and variables in place", "[nn][init]") {
  Generator gen(7);
  Tensor<double> t = Tensor<double>::empty({200, 300});
  nn::init::normal_(t, 2.0, 0.5, gen);
  double mean = 0, var = 0;
  for (int64_t i = 0; i < t.numel(); ++i) mean += t.data()[i];
  mean /= double(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) var += (t.data()[i] - mean) * (t.data()[i] - mean);
  var /= double(t.numel());
  REQUIRE(mean == Approx(2.0).margin(0.01));
  REQUIRE(std::sqrt(var) == Approx(0.5).epsilon(0.01));

  nn::init::uniform_(t, -3.0, -1.0, gen);
  double lo = 0, hi = -10;
  for (int64_t i = 0; i < t.numel(); ++i) lo = std::min(lo, t.data()[i]), hi = std::max(hi, t.data()[i]);
  REQUIRE(lo >= -3.0);
  REQUIRE(lo < -2.99);
  REQUIRE(hi < -1.0);
  REQUIRE(hi > -1.01);

  // kaiming_uniform_ with a = 0 (ReLU-style gain): bound sqrt(6 / fan_in).
  Variable<float> v(Tensor<float>::zeros({100, 50, 2, 2}), true);
  nn::init::kaiming_uniform_(v, 0.0, nn::init::FanMode::fan_in, nn::init::Nonlinearity::leaky_relu, gen);
  REQUIRE(max_abs(v.value()) <= float(std::sqrt(6.0 / 200)));
  REQUIRE(max_abs(v.value()) > 0.99 * std::sqrt(6.0 / 200));
  nn::init::kaiming_uniform_(v, 0.0, nn::init::FanMode::fan_out, nn::init::Nonlinearity::relu, gen);
  REQUIRE(max_abs(v.value()) <= float(std::sqrt(6.0 / 400)));
  REQUIRE(max_abs(v.value()) > 0.99 * std::sqrt(6.0 / 400));

  nn::init::constant_(v, 0.25);
  REQUIRE(v.value().data()[17] == 0.25f);
  nn::init::zeros_(v);
  REQUIRE(max_abs(v.value()) == 0.0);
  nn::init::ones_(v.value());
  REQUIRE(v.value().data()[v.numel() - 1] == 1.0f);

  // A non-contiguous view is filled element by element, leaving the rest alone.
  Tensor<float> base = Tensor<float>::zeros({4, 6});
  nn::init::constant_(base.transpose(0, 1).slice(1, 3), 5.0);
  REQUIRE(base.at({0, 1}) == 5.0f);
  REQUIRE(base.at({3, 2}) == 5.0f);
  REQUIRE(base.at({0, 0}) == 0.0f);
  REQUIRE(base.at({0, 3}) == 0.0f);

  REQUIRE(nn::init::calculate_gain(nn::init::Nonlinearity::relu) == Approx(std::sqrt(2.0)));
  REQUIRE(nn::init::calculate_gain(nn::init::Nonlinearity::tanh) == Approx(5.0 / 3.0));
  REQUIRE(nn::init::calculate_gain(nn::init::Nonlinearity::leaky_relu, std::sqrt(5.0)) ==
          Approx(std::sqrt(1.0 / 3)));
}

TEST_CASE("layers compute what their PyTorch namesakes compute", "[nn][layers]") {
  Generator gen(3);
  nn::Linear<double> lin(3, 2, true, gen);
  const Tensor<double> xt = Tensor<double>::rand({4, 3}, gen, -1, 1);
  const Variable<double> x(xt);
  const Tensor<double> y = lin.forward(x).value();
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t o = 0; o < 2; ++o) {
      double expected = lin.bias.value().at({o});
      for (int64_t k = 0; k < 3; ++k) expected += xt.at({i, k}) * lin.weight.value().at({o, k});
      REQUIRE(y.at({i, o}) == Approx(expected).epsilon(1e-12));
    }
  nn::Linear<double> no_bias(3, 2, false, gen);
  REQUIRE(no_bias.named_parameters().size() == 1);
  REQUIRE_FALSE(no_bias.bias.defined());
  REQUIRE(lin(x).shape() == Shape{4, 2});  // operator()

  // Conv2d / ConvTranspose2d shapes (the autoencoder's geometry).
  nn::Conv2d<float> conv(1, 8, 3, 2, 1, 1, 1, true, gen);
  REQUIRE(conv.forward(Variable<float>(Tensor<float>::zeros({2, 1, 28, 28}))).shape() == Shape{2, 8, 14, 14});
  nn::ConvTranspose2d<float> convt(16, 8, 3, 2, 1, 1, 1, 1, true, gen);
  const auto yt = convt.forward(Variable<float>(Tensor<float>::zeros({2, 16, 7, 7}))).value();
  REQUIRE(yt.shape() == Shape{2, 8, 14, 14});
  REQUIRE(yt.at({1, 3, 5, 5}) == convt.bias.value().at({3}));  // zero input: the bias everywhere

  // Activations.
  const Variable<float> a(Tensor<float>::from_vector({-2.f, 0.5f}, {2}));
  REQUIRE(nn::ReLU<float>().forward(a).value().at({0}) == 0.0f);
  REQUIRE(nn::LeakyReLU<float>(0.2).forward(a).value().at({0}) == Approx(-0.4f));
  REQUIRE(nn::Sigmoid<float>().forward(a).value().at({1}) == Approx(1 / (1 + std::exp(-0.5f))));
  REQUIRE(nn::Tanh<float>().forward(a).value().at({0}) == Approx(std::tanh(-2.0f)));

  // Flatten / Unflatten.
  const Variable<float> img(Tensor<float>::zeros({2, 32, 3, 3}));
  REQUIRE(nn::Flatten<float>().forward(img).shape() == Shape{2, 288});
  REQUIRE(nn::Flatten<float>(0, 1).forward(img).shape() == Shape{64, 3, 3});
  REQUIRE(
      nn::Unflatten<float>(1, {32, 3, 3}).forward(Variable<float>(Tensor<float>::zeros({2, 288}))).shape() ==
      Shape{2, 32, 3, 3});
}

TEST_CASE("Dropout follows the training flag and its generator", "[nn][dropout]") {
  const Variable<float> x(Tensor<float>::ones({100, 100}));
  nn::Dropout<float> drop(0.3, uint64_t(5));
  drop.eval();
  REQUIRE(bit_equal(drop.forward(x).value(), x.value()));
  drop.train();
  const Tensor<float> y = drop.forward(x).value();
  int64_t zeros = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    if (y.data()[i] == 0.0f)
      ++zeros;
    else
      REQUIRE(y.data()[i] == Approx(1 / 0.7f));
  }
  REQUIRE(double(zeros) / double(y.numel()) == Approx(0.3).margin(0.02));
  // Seeded generators reproduce the mask; the module's generator advances.
  nn::Dropout<float> same(0.3, uint64_t(5));
  REQUIRE(bit_equal(same.forward(x).value(), y));
  REQUIRE_FALSE(bit_equal(same.forward(x).value(), y));
  Generator shared(5);
  nn::Dropout<float> by_ref(0.3, shared);
  REQUIRE(bit_equal(by_ref.forward(x).value(), y));
  REQUIRE(&by_ref.generator() == &shared);
  REQUIRE_THROWS_AS(nn::Dropout<float>(1.5), std::invalid_argument);
}

TEST_CASE("autoencoder dropout keeps the names and is active in training only",
          "[nn][dropout][autoencoder]") {
  Generator g1(8), g2(8);
  models::Autoencoder<float> plain(5, 0.0, g1), dropped(5, 0.5, g2);
  REQUIRE(plain.state_dict().names() == dropped.state_dict().names());
  for (std::size_t i = 0; i < plain.parameters().size(); ++i)
    REQUIRE(bit_equal(plain.parameters()[i].value(), dropped.parameters()[i].value()));
  Generator data(1);
  const Variable<float> x(Tensor<float>::rand({3, 1, 28, 28}, data));
  plain.eval();
  dropped.eval();
  const Tensor<float> reference = plain.forward(x).value();
  REQUIRE(bit_equal(dropped.forward(x).value(), reference));
  dropped.train();
  plain.train();
  REQUIRE(bit_equal(plain.forward(x).value(), reference));  // p = 0: training changes nothing
  REQUIRE_FALSE(bit_equal(dropped.forward(x).value(), reference));
  REQUIRE(dropped.encoder()->dropout_p == 0.5f);
  REQUIRE_THROWS_AS(models::Autoencoder<float>(0), std::invalid_argument);
  REQUIRE_THROWS_AS(models::Autoencoder<float>(5, 1.0), std::invalid_argument);
}

TEST_CASE("BatchNorm modules match PyTorch and count training batches", "[nn][batchnorm]") {
  test::Fixture fx("batchnorm");
  auto run = [&](nn::BatchNormBase<float>& bn, const std::string& p) {
    INFO(p);
    bn.weight.value().copy_(fx.input<float>(p + ".weight"));
    bn.bias.value().copy_(fx.input<float>(p + ".bias"));
    REQUIRE(bn.num_batches_tracked == 0);
    bn.train();
    fx.require_close(p + ".y_train", bn.forward(Variable<float>(fx.input<float>(p + ".x"))).value(), 1e-5);
    fx.require_close(p + ".rm1", bn.running_mean, 1e-6);
    fx.require_close(p + ".rv1", bn.running_var, 1e-6);
    REQUIRE(bn.num_batches_tracked == 1);
    bn.forward(Variable<float>(fx.input<float>(p + ".x2")));
    fx.require_close(p + ".rm2", bn.running_mean, 1e-6);
    fx.require_close(p + ".rv2", bn.running_var, 1e-6);
    REQUIRE(bn.num_batches_tracked == 2);
    bn.eval();
    fx.require_close(p + ".y_eval", bn.forward(Variable<float>(fx.input<float>(p + ".x2"))).value(), 1e-5);
    REQUIRE(bn.num_batches_tracked == 2);  // eval forwards do not count
    // The registered buffers are the public members.
    REQUIRE(bn.named_buffers()[0].tensor == &bn.running_mean);
    REQUIRE(*bn.named_buffers()[2].counter == 2);
    REQUIRE(bn.state_dict().integer("num_batches_tracked") == 2);
    bn.reset_running_stats();
    REQUIRE(bn.running_var.data()[0] == 1.0f);
    REQUIRE(bn.num_batches_tracked == 0);
  };
  nn::BatchNorm1d<float> bn1(5);
  run(bn1, "bn1d");
  nn::BatchNorm2d<float> bn2(4);
  run(bn2, "bn2d");
  REQUIRE_THROWS_WITH(bn2.forward(Variable<float>(Tensor<float>::zeros({3, 4, 5}))),
                      Contains("expected 4D input"));
  REQUIRE_THROWS_WITH(bn2.forward(Variable<float>(Tensor<float>::zeros({3, 5, 2, 2}))),
                      Contains("expected 4"));
  REQUIRE_THROWS_WITH(bn1.forward(Variable<float>(Tensor<float>::zeros({3, 5, 2, 2}))), Contains("2D or 3D"));
}

TEST_CASE("a module cannot become its own descendant", "[nn][errors]") {
  auto outer = std::make_shared<nn::Sequential<float>>();
  auto inner = std::make_shared<nn::Sequential<float>>();
  outer->push_back(inner);
  REQUIRE_THROWS_WITH(outer->push_back(outer), Contains("own descendant"));
  REQUIRE_THROWS_WITH(inner->push_back(outer), Contains("own descendant"));
  REQUIRE_THROWS_WITH(inner->register_module("loop", inner), Contains("'loop'"));
  REQUIRE_THROWS_WITH(outer->replace_module("0", outer), Contains("own descendant"));
  // Sharing a module between two parents is not a cycle.
  auto relu = std::make_shared<nn::ReLU<float>>();
  outer->push_back(relu);
  inner->push_back(relu);
  REQUIRE(outer->named_modules().size() == 3);  // outer, inner, relu (listed once)
  outer->train(false);
  REQUIRE_FALSE(relu->is_training());
}
