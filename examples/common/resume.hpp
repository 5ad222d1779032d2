#pragma once
// Resuming training from a checkpoint saved by an example.
#include <cstddef>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "sumi/nn/state_dict.hpp"
#include "sumi/optim/optimizer.hpp"

namespace sumi::examples {

// Loads `state` (the checkpoint's "optimizer." entries, prefix stripped) into `optimizer` and requires state
// for every parameter: each one has Adam moments after a step, so a checkpoint without them would silently
// restart Adam for those parameters.
template <class T>
void load_complete_optimizer_state(optim::Optimizer<T>& optimizer, const nn::StateDict<T>& state,
                                   const std::filesystem::path& checkpoint) {
  optimizer.load_state_dict(state);
  const std::size_t n_params = optimizer.num_params();
  for (std::size_t i = 0; i < n_params; ++i)
    if (!state.contains(std::to_string(i) + ".step"))
      throw std::runtime_error(checkpoint.string() + ": no optimizer state for parameter " +
                               std::to_string(i) + " of " + std::to_string(n_params) + " (optimizer." +
                               std::to_string(i) + ".step missing): the checkpoint is incomplete");
}

}  // namespace sumi::examples
