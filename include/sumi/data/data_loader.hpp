#pragma once
// DataLoader: batches of a Dataset in sequential or seeded-shuffled order, assembled ahead of time on a
// background thread so the training step does not wait on data. Usage:
//
//   DataLoader loader(train_set, {.batch_size = 128, .shuffle = true, .seed = 1});
//   for (int64_t e = 0; e < epochs; ++e)
//     for (const Batch& b : loader.epoch(e)) step(b.images, b.labels);
//
// Epoch e's order depends only on (seed, e), so a resumed run sees the same batches as an uninterrupted one.
// The batch buffers are recycled: a Batch object is valid until the loop advances. Its tensor's storage is
// handed back to the dataset only when nothing else holds it, so a copy of the tensor, or a graph that saved
// it (losses of several batches summed before one backward()), keeps its values.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <iterator>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sumi/data/dataset.hpp"
#include "sumi/tensor/random.hpp"
#include "sumi/tensor/tensor.hpp"

namespace sumi::data {

struct Batch {
  Tensor<float> images;          // [B, ...sample shape]
  std::vector<int64_t> labels;   // B class indices
  std::vector<int64_t> indices;  // the dataset index of each sample, in batch order
  int64_t index = 0;             // position of this batch within its epoch
  int64_t epoch = 0;

  int64_t size() const { return int64_t(indices.size()); }
};

struct DataLoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = false;
  uint64_t seed = 0;
  bool drop_last = false;     // drop the final batch when it would be smaller than batch_size
  int prefetch = 2;           // batches assembled ahead of the one the consumer holds (>= 1)
  bool reuse_buffers = true;  // recycle batch tensors between steps instead of allocating new ones
};

namespace detail {
inline uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
// The shuffling seed of an epoch: hashed, so that (seed, epoch) pairs with equal sums give unrelated orders.
inline uint64_t epoch_seed(uint64_t seed, int64_t epoch) {
  return splitmix64(seed ^ splitmix64(uint64_t(epoch)));
}
}  // namespace detail

template <Dataset D>
class DataLoader {
  // Batch buffers kept between epochs, so a new epoch reuses the previous one's tensors.
  struct Pool {
    std::mutex mutex;
    std::vector<Batch> batches;
  };

 public:
  class Iterator;

  // Batches of `dataset`, which is referenced and must outlive the loader.
  DataLoader(const D& dataset, DataLoaderOptions options = {}) : dataset_(&dataset), options_(options) {
    validate();
  }
  // Batches of a temporary dataset (such as a Subset), which the loader keeps alive.
  DataLoader(D&& dataset, DataLoaderOptions options = {})
      : owned_(std::make_shared<const D>(std::move(dataset))), dataset_(owned_.get()), options_(options) {
    validate();
  }

  const D& dataset() const { return *dataset_; }
  const DataLoaderOptions& options() const { return options_; }
  // Number of batches per epoch.
  int64_t size() const {
    const int64_t n = int64_t(dataset_->size()), b = options_.batch_size;
    return options_.drop_last ? n / b : n / b + (n % b != 0);  // not (n + b - 1) / b: b may be near INT64_MAX
  }

  // The epoch the next iteration uses. Each begin() uses it and then advances it, so plain repeated
  // `for (b : loader)` loops see a new order each time; set_epoch()/epoch(e) pin it for reproducibility.
  int64_t epoch() const { return epoch_; }
  void set_epoch(int64_t e) { epoch_ = e; }
  // set_epoch(e), returning the loader to iterate: `for (const Batch& b : loader.epoch(e))`.
  DataLoader& epoch(int64_t e) {
    set_epoch(e);
    return *this;
  }

  // The sample order of epoch e: 0..N-1, or a permutation from Generator(hash(seed, e)) when shuffling.
  std::vector<int64_t> order(int64_t e) const {
    const int64_t n = int64_t(dataset_->size());
    if (options_.shuffle) {
      Generator gen(detail::epoch_seed(options_.seed, e));
      return random_permutation(n, gen);
    }
    std::vector<int64_t> seq(static_cast<std::size_t>(n));
    for (int64_t i = 0; i < n; ++i) seq[std::size_t(i)] = i;
    return seq;
  }

  // Starts an epoch (epoch()) on a background thread and advances epoch().
  Iterator begin() {
    const int64_t e = epoch_++;
    if (size() == 0) return Iterator();
    return Iterator(*this, e);
  }
  std::default_sentinel_t end() const { return {}; }

  // An input iterator over one epoch's batches. Owns the worker thread; destroying it early (a `break` out of
  // the loop, or an exception) stops the worker and joins it.
  class Iterator {
   public:
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;

    Iterator() = default;
    Iterator(Iterator&&) noexcept = default;
    Iterator& operator=(Iterator&& other) noexcept {
      if (this != &other) {
        shutdown();
        state_ = std::move(other.state_);
      }
      return *this;
    }
    Iterator(const Iterator&) = delete;
    Iterator& operator=(const Iterator&) = delete;
    ~Iterator() { shutdown(); }

    const Batch& operator*() const { return state_->slots[std::size_t(state_->current)]; }
    const Batch* operator->() const { return &**this; }

    // Hands the current batch's buffers back to the worker and waits for the next batch. Rethrows an
    // exception raised while assembling it (the iterator then equals end()).
    Iterator& operator++() {
      State& s = *state_;
      {
        std::lock_guard lock(s.mutex);
        s.free_slots.push_back(s.current);
      }
      s.cv.notify_all();
      if (++s.consumed == s.num_batches) {
        shutdown();
      } else {
        take_next();
      }
      return *this;
    }
    void operator++(int) { ++*this; }

    bool operator==(std::default_sentinel_t) const { return state_ == nullptr; }

   private:
    friend class DataLoader;

    struct State {
      const D* dataset = nullptr;
      std::vector<int64_t> order;
      int64_t batch_size = 0, num_batches = 0, epoch = 0, consumed = 0;
      bool reuse_buffers = true;
      std::shared_ptr<Pool> pool;
      std::vector<Batch> slots;
      int current = -1;

      std::mutex mutex;
      std::condition_variable cv;
      std::deque<int> free_slots;  // guarded by mutex
      std::deque<int> ready;       // filled slots in batch order, guarded by mutex
      std::exception_ptr error;    // guarded by mutex
      bool stop = false;           // guarded by mutex
      std::thread worker;
    };

    Iterator(const DataLoader& loader, int64_t epoch) : state_(std::make_unique<State>()) {
      State& s = *state_;
      s.dataset = loader.dataset_;
      s.order = loader.order(epoch);
      s.batch_size = loader.options_.batch_size;
      s.num_batches = loader.size();
      s.epoch = epoch;
      s.reuse_buffers = loader.options_.reuse_buffers;
      s.pool = loader.pool_;
      const auto slot_count = std::size_t(loader.options_.prefetch) + 1;  // prefetched + the consumer's
      {
        std::lock_guard lock(s.pool->mutex);
        auto& pooled = s.pool->batches;
        while (!pooled.empty() && s.slots.size() < slot_count) {
          s.slots.push_back(std::move(pooled.back()));
          pooled.pop_back();
        }
      }
      s.slots.resize(slot_count);
      for (std::size_t i = 0; i < slot_count; ++i) s.free_slots.push_back(int(i));
      s.worker = std::thread([state = state_.get()] { run_worker(*state); });
      take_next();
    }

    static void run_worker(State& s) {
      for (int64_t k = 0; k < s.num_batches; ++k) {
        int slot;
        {
          std::unique_lock lock(s.mutex);
          s.cv.wait(lock, [&] { return s.stop || !s.free_slots.empty(); });
          if (s.stop) return;
          slot = s.free_slots.front();
          s.free_slots.pop_front();
        }
        try {
          fill(s, s.slots[std::size_t(slot)], k);
        } catch (...) {
          {
            std::lock_guard lock(s.mutex);
            s.error = std::current_exception();
          }
          s.cv.notify_all();
          return;
        }
        {
          std::lock_guard lock(s.mutex);
          s.ready.push_back(slot);
        }
        s.cv.notify_all();
      }
    }

    static void fill(State& s, Batch& b, int64_t k) {
      const int64_t begin = k * s.batch_size;
      const int64_t end = std::min(begin + s.batch_size, int64_t(s.order.size()));
      b.indices.assign(s.order.begin() + begin, s.order.begin() + end);
      b.index = k;
      b.epoch = s.epoch;
      // A buffer something else still holds (a graph, a copy) is not the dataset's to overwrite.
      if (!s.reuse_buffers || !b.images.is_sole_reference())
        b.images = Tensor<float>();
      else  // the last other holder's reads (on another thread) happen before the dataset's writes
        std::atomic_thread_fence(std::memory_order_acquire);
      s.dataset->get_batch(std::span<const int64_t>(b.indices), b.images, b.labels);
      const int64_t n = end - begin;
      if (int64_t(b.labels.size()) != n || b.images.dim() == 0 || b.images.size(0) != n)
        throw std::logic_error("DataLoader: the dataset's get_batch filled " +
                               std::to_string(b.labels.size()) + " labels and images of shape " +
                               shape_str(b.images.shape()) + " for a batch of " + std::to_string(n) +
                               " indices");
    }

    // Waits for the next batch in order; rethrows the worker's exception once the batches before it are used.
    void take_next() {
      State& s = *state_;
      std::exception_ptr error;
      {
        std::unique_lock lock(s.mutex);
        s.cv.wait(lock, [&] { return !s.ready.empty() || s.error; });
        if (!s.ready.empty()) {
          s.current = s.ready.front();
          s.ready.pop_front();
          return;
        }
        error = s.error;
      }
      shutdown();
      std::rethrow_exception(error);
    }

    void shutdown() noexcept {
      if (!state_) return;
      State& s = *state_;
      {
        std::lock_guard lock(s.mutex);
        s.stop = true;
      }
      s.cv.notify_all();
      if (s.worker.joinable()) s.worker.join();
      try {
        std::lock_guard lock(s.pool->mutex);
        for (Batch& b : s.slots) s.pool->batches.push_back(std::move(b));
      } catch (...) {  // the pool is only an optimisation
      }
      state_.reset();
    }

    std::unique_ptr<State> state_;
  };

 private:
  void validate() const {
    if (options_.batch_size < 1)
      throw std::invalid_argument("DataLoader: batch_size must be at least 1, got " +
                                  std::to_string(options_.batch_size));
    if (options_.prefetch < 1)
      throw std::invalid_argument("DataLoader: prefetch must be at least 1, got " +
                                  std::to_string(options_.prefetch));
  }

  std::shared_ptr<const D> owned_;
  const D* dataset_;
  DataLoaderOptions options_;
  int64_t epoch_ = 0;
  std::shared_ptr<Pool> pool_ = std::make_shared<Pool>();
};

}  // namespace sumi::data
