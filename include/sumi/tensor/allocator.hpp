#pragma once
// A caching allocator for tensor storage: freed blocks are kept in per-size free lists and handed out again,
// so a steady-state training step (the same shapes every step) makes no heap allocation.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace sumi {

inline constexpr std::size_t kTensorAlignment = 64;  // one cache line, one AVX-512 register

struct AllocatorStats {
  uint64_t heap_allocations = 0;  // blocks obtained from the system
  uint64_t cache_hits = 0;        // blocks reused from the cache
  std::size_t bytes_in_use = 0;
  std::size_t bytes_cached = 0;
};

class CachingAllocator {
 public:
  static CachingAllocator& instance() {
    static CachingAllocator allocator;
    return allocator;
  }

  void* allocate(std::size_t bytes) {
    const std::size_t size = round_up(bytes);
    {
      std::lock_guard lock(mutex_);
      auto it = free_blocks_.find(size);
      if (it != free_blocks_.end() && !it->second.empty()) {
        void* block = it->second.back();
        it->second.pop_back();
        ++stats_.cache_hits;
        stats_.bytes_cached -= size;
        stats_.bytes_in_use += size;
        return block;
      }
      ++stats_.heap_allocations;
      stats_.bytes_in_use += size;
    }
    void* block = std::aligned_alloc(kTensorAlignment, size);
    if (!block) throw std::bad_alloc();
    return block;
  }

  void deallocate(void* block, std::size_t bytes) noexcept {
    if (!block) return;
    const std::size_t size = round_up(bytes);
    std::lock_guard lock(mutex_);
    stats_.bytes_in_use -= size;
    try {
      free_blocks_[size].push_back(block);
      stats_.bytes_cached += size;
    } catch (...) {
      std::free(block);
    }
  }

  // Returns every cached block to the system.
  void release_cached() {
    std::lock_guard lock(mutex_);
    for (auto& [size, blocks] : free_blocks_)
      for (void* block : blocks) std::free(block);
    free_blocks_.clear();
    stats_.bytes_cached = 0;
  }

  AllocatorStats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }

  ~CachingAllocator() { release_cached(); }

 private:
  CachingAllocator() = default;
  static std::size_t round_up(std::size_t bytes) {
    const std::size_t b = bytes == 0 ? 1 : bytes;
    return (b + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
  }

  mutable std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> free_blocks_;
  AllocatorStats stats_;
};

// A contiguous, aligned buffer of T shared by all tensors that view it.
template <class T>
class Storage {
 public:
  explicit Storage(int64_t size)
      : size_(size),
        data_(static_cast<T*>(CachingAllocator::instance().allocate(sizeof(T) * std::size_t(size)))) {}
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() { CachingAllocator::instance().deallocate(data_, sizeof(T) * std::size_t(size_)); }

  T* data() { return data_; }
  const T* data() const { return data_; }
  int64_t size() const { return size_; }

 private:
  int64_t size_;
  T* data_;
};

}  // namespace sumi
