#pragma once
// Checks shared by the tests of the normalisation ops and layers (layer_norm, group_norm, LayerNorm,
// GroupNorm, InstanceNorm2d).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "gradcheck_helpers.hpp"
#include "max_error.hpp"
#include "sumi/autograd/variable.hpp"
#include "sumi/tensor/tensor.hpp"

namespace sumi::test {

// The inputs of a normalisation case <c> of a fixture (layer_norm, group_norm), requiring gradients: x (of
// the shape in its config), and weight and bias where the config says "affine" (else undefined).
template <class T>
struct NormInputs {
  nlohmann::json config;
  Variable<T> x, weight, bias;
};
template <class T>
NormInputs<T> norm_inputs(const Fixture& fx, const std::string& c) {
  NormInputs<T> in{fx.meta_json(c + ".config"), Variable<T>(fx.input<T>(c + ".x"), true), {}, {}};
  REQUIRE(in.x.shape() == in.config.at("shape").template get<Shape>());
  if (in.config.at("affine").template get<bool>()) {
    in.weight = Variable<T>(fx.input<T>(c + ".weight"), true);
    in.bias = Variable<T>(fx.input<T>(c + ".bias"), true);
  }
  return in;
}

// A normalisation case <c>: y against <c>.y, then, after y.backward(<c>.gy), the gradients of x and of
// weight and bias (where defined) against <c>.gx, <c>.gw and <c>.gb, each element as require_each_close.
template <class T>
void require_norm_case(const Fixture& fx, const std::string& c, const Variable<T>& y, const NormInputs<T>& in,
                       double rtol, double largest_fraction) {
  fx.require_each_close(c + ".y", y.value(), rtol, 0, largest_fraction);
  y.backward(fx.input<T>(c + ".gy"));
  fx.require_each_close(c + ".gx", in.x.grad(), rtol, 0, largest_fraction);
  if (in.weight.defined()) fx.require_each_close(c + ".gw", in.weight.grad(), rtol, 0, largest_fraction);
  if (in.bias.defined()) fx.require_each_close(c + ".gb", in.bias.grad(), rtol, 0, largest_fraction);
}

// The largest |a - e| over two tensors of one shape (a NaN difference kept), in double.
template <class A, class E>
double max_abs_diff(const Tensor<A>& a, const Tensor<E>& e) {
  REQUIRE(a.shape() == e.shape());
  const Tensor<A> ac = a.contiguous();
  const Tensor<E> ec = e.contiguous();
  double m = 0;
  for (int64_t i = 0; i < ac.numel(); ++i)
    m = nan_max(m, std::abs(double(ac.data()[i]) - double(ec.data()[i])));
  return m;
}

// The largest differences between f in float and f in double from the same float inputs: of the outputs,
// and of the gradients of x, weight and bias after backward(gy). f is generic over Variable<float> and
// Variable<double> (x, weight, bias).
struct FloatVsDouble {
  double y, gx, gw, gb;
};
template <class F>
FloatVsDouble float_vs_double(F f, const Tensor<float>& x, const Tensor<float>& weight,
                              const Tensor<float>& bias, const Tensor<float>& gy) {
  Variable<float> xf(x, true), wf(weight, true), bf(bias, true);
  const Variable<float> yf = f(xf, wf, bf);
  yf.backward(gy);
  Variable<double> xd(x.to<double>(), true), wd(weight.to<double>(), true), bd(bias.to<double>(), true);
  const Variable<double> yd = f(xd, wd, bd);
  yd.backward(gy.to<double>());
  return {max_abs_diff(yf.value(), yd.value()), max_abs_diff(xf.grad(), xd.grad()),
          max_abs_diff(wf.grad(), wd.grad()), max_abs_diff(bf.grad(), bd.grad())};
}

// The parameters of layer m are torch's: with affine, weight (ones) and bias (zeros) of `shape`, the bound
// members, requiring gradients, under the state dict keys "weight" and "bias"; without, none and an empty
// state dict (torch registers them as None).
template <class M>
void require_norm_parameters(M& m, bool affine, const Shape& shape) {
  if (!affine) {
    REQUIRE_FALSE(m.weight.defined());
    REQUIRE_FALSE(m.bias.defined());
    REQUIRE(m.named_parameters().empty());
    REQUIRE(m.state_dict().empty());
    return;
  }
  const auto params = m.named_parameters();
  REQUIRE(params.size() == 2);
  REQUIRE(params[0].first == "weight");
  REQUIRE(params[1].first == "bias");
  REQUIRE(params[0].second.id() == m.weight.id());
  REQUIRE(params[1].second.id() == m.bias.id());
  REQUIRE(m.state_dict().names() == std::vector<std::string>{"weight", "bias"});
  for (const auto* p : {&m.weight, &m.bias}) {
    REQUIRE(p->shape() == shape);
    REQUIRE(p->requires_grad());
  }
  for (int64_t i = 0; i < m.weight.numel(); ++i) {
    REQUIRE(m.weight.value().data()[i] == 1);
    REQUIRE(m.bias.value().data()[i] == 0);
  }
}

// Finite-difference checks of a normalisation f(x, weight, bias), an undefined weight or bias standing for
// none: with all three inputs, with each one alone requiring gradients (the ops compute only the required
// ones), without affine, and with only a weight or only a bias. x, weight and bias make the inputs, given
// whether they require gradients.
using NormOf = std::function<Variable<double>(const Variable<double>&, const Variable<double>&,
                                              const Variable<double>&)>;
using MakeInput = std::function<Variable<double>(bool requires_grad)>;
inline void require_norm_gradchecks(const NormOf& f, const MakeInput& x, const MakeInput& weight,
                                    const MakeInput& bias) {
  using V = Variable<double>;
  const auto all = [&](const std::vector<V>& v) { return f(v[0], v[1], v[2]); };
  require_gradcheck(all, {x(true), weight(true), bias(true)});
  require_gradcheck(all, {x(true), weight(false), bias(false)});
  require_gradcheck(all, {x(false), weight(true), bias(false)});
  require_gradcheck(all, {x(false), weight(false), bias(true)});
  require_gradcheck([&](const std::vector<V>& v) { return f(v[0], V(), V()); }, {x(true)});
  require_gradcheck([&](const std::vector<V>& v) { return f(v[0], v[1], V()); }, {x(true), weight(true)});
  require_gradcheck([&](const std::vector<V>& v) { return f(v[0], V(), v[1]); }, {x(true), bias(true)});
}

}  // namespace sumi::test
