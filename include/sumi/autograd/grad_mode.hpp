#pragma once
// Whether ops record the graph. Thread-local, like PyTorch's grad mode.
namespace sumi {

inline bool& grad_mode_enabled() {
  thread_local bool enabled = true;
  return enabled;
}

// Disables graph recording for its lifetime (evaluation, optimiser updates).
class NoGradGuard {
 public:
  NoGradGuard() : previous_(grad_mode_enabled()) { grad_mode_enabled() = false; }
  ~NoGradGuard() { grad_mode_enabled() = previous_; }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace sumi
