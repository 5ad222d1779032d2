#pragma once
// A caching allocator for tensor storage: freed blocks are kept in per-size free lists and handed out again,
// so a steady-state training step (the same shapes every step) makes no heap allocation.
//
// Programs whose phases use different shapes (a GAN's discriminator and generator steps) would otherwise
// keep every phase's blocks at once, so:
//  - a request the cache has no block of its size for takes the smallest cached block of up to twice its
//    size (best fit) before asking the system for memory;
//  - when the cache still misses and holds more than kCacheLimit bytes, cached blocks (the largest first)
//    go back to the system. Blocks of kMappedBytes and more are mapped from the system directly, so that
//    returning them really lowers the footprint (malloc keeps freed memory for its own reuse).
//
// Tensor memory in use never exceeds the machine's memory (the smaller of its physical memory and the
// cgroup's limit): a request beyond it throws std::bad_alloc. Linux overcommits, so without the check a
// batch size too large for the machine gets the process killed once the memory is touched, with no message.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sumi {

inline constexpr std::size_t kTensorAlignment = 64;  // one cache line, one AVX-512 register

namespace detail {
// The memory this process may use: physical memory, or the cgroup (v2) limit when that is smaller.
inline std::size_t system_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  std::size_t bytes = pages > 0 && page > 0 ? std::size_t(pages) * std::size_t(page)
                                            : std::numeric_limits<std::size_t>::max();
  std::ifstream cgroup("/sys/fs/cgroup/memory.max");
  unsigned long long limit = 0;
  if (cgroup >> limit && limit > 0) bytes = std::min<std::size_t>(bytes, std::size_t(limit));  // "max": none
  return bytes;
}
}  // namespace detail

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
    if (bytes > std::numeric_limits<std::size_t>::max() - 4095)
      throw std::bad_alloc();  // round_up would wrap
    const std::size_t size = round_up(bytes);
    std::vector<std::pair<void*, std::size_t>> victims;  // released after the lock
    {
      std::lock_guard lock(mutex_);
      const auto beyond_limit = [&](std::size_t more) {
        return more > memory_limit_ || stats_.bytes_in_use > memory_limit_ - more;
      };
      auto it = free_blocks_.lower_bound(size);  // smallest cached size >= size
      // A cached block counts against the limit too: it was lowered, or the block is larger than asked.
      if (it != free_blocks_.end() && it->first <= 2 * size && !beyond_limit(it->first)) {
        const std::size_t block_size = it->first;
        void* block = it->second.back();
        it->second.pop_back();
        if (it->second.empty()) free_blocks_.erase(it);
        if (block_size != size) larger_blocks_[block] = block_size;
        ++stats_.cache_hits;
        stats_.bytes_cached -= block_size;
        stats_.bytes_in_use += block_size;
        return block;
      }
      if (beyond_limit(size)) throw std::bad_alloc();
      ++stats_.heap_allocations;
      stats_.bytes_in_use += size;
      take_victims(size, victims);
    }
    for (const auto& [block, block_size] : victims) give_back(block, block_size);
    void* block = obtain(size);
    if (!block) {
      std::lock_guard lock(mutex_);
      stats_.bytes_in_use -= size;
      throw std::bad_alloc();
    }
    return block;
  }

  void deallocate(void* block, std::size_t bytes) noexcept {
    if (!block) return;
    std::size_t size = round_up(bytes);
    std::lock_guard lock(mutex_);
    if (const auto larger = larger_blocks_.find(block); larger != larger_blocks_.end()) {
      size = larger->second;
      larger_blocks_.erase(larger);
    }
    stats_.bytes_in_use -= size;
    try {
      free_blocks_[size].push_back(block);
      stats_.bytes_cached += size;
    } catch (...) {
      give_back(block, size);
    }
  }

  // Returns every cached block to the system.
  void release_cached() {
    std::lock_guard lock(mutex_);
    for (auto& [size, blocks] : free_blocks_)
      for (void* block : blocks) give_back(block, size);
    free_blocks_.clear();
    stats_.bytes_cached = 0;
  }

  static constexpr std::size_t kCacheLimit = std::size_t(32) << 20;
  static constexpr std::size_t kMappedBytes = std::size_t(1) << 20;
  static constexpr std::size_t kHugePageBytes = std::size_t(2) << 20;

  // Tensor memory in use is held to `bytes` (0: the machine's memory, the default).
  void set_memory_limit(std::size_t bytes) {
    std::lock_guard lock(mutex_);
    memory_limit_ = bytes == 0 ? detail::system_memory_bytes() : bytes;
  }
  std::size_t memory_limit() const {
    std::lock_guard lock(mutex_);
    return memory_limit_;
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
    const std::size_t unit = b >= kMappedBytes ? 4096 : kTensorAlignment;
    return (b + unit - 1) / unit * unit;
  }

  static void* obtain(std::size_t size) {
    if (size < kMappedBytes) return std::aligned_alloc(kTensorAlignment, size);
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
#ifdef MADV_HUGEPAGE
    // 2 MB pages where the system allows them (transparent huge pages on request): a DCGAN iteration maps
    // hundreds of MB of activations afresh, and faulting them in 4 KB at a time took about 5% of its time.
    if (size >= kHugePageBytes) madvise(p, size, MADV_HUGEPAGE);
#endif
    return p;
  }
  static void give_back(void* block, std::size_t size) {
    if (size < kMappedBytes)
      std::free(block);
    else
      munmap(block, size);
  }

  // With the lock held: moves cached blocks out of the cache into `victims` (released by the caller without
  // the lock) until the cache and the new block fit in kCacheLimit, largest sizes first.
  void take_victims(std::size_t needed, std::vector<std::pair<void*, std::size_t>>& victims) {
    if (stats_.bytes_cached <= kCacheLimit) return;
    const std::size_t keep = kCacheLimit - std::min(needed, kCacheLimit);
    while (stats_.bytes_cached > keep) {
      const auto largest = std::prev(free_blocks_.end());
      victims.push_back({largest->second.back(), largest->first});
      stats_.bytes_cached -= largest->first;
      largest->second.pop_back();
      if (largest->second.empty()) free_blocks_.erase(largest);
    }
  }

  mutable std::mutex mutex_;
  std::map<std::size_t, std::vector<void*>> free_blocks_;  // by size; no empty lists
  std::unordered_map<void*, std::size_t> larger_blocks_;   // handed out for a smaller request
  AllocatorStats stats_;
  std::size_t memory_limit_ = detail::system_memory_bytes();
};

// A contiguous, aligned buffer of T shared by all tensors that view it.
template <class T>
class Storage {
 public:
  explicit Storage(int64_t size)
      : size_(checked_size(size)),
        data_(static_cast<T*>(CachingAllocator::instance().allocate(sizeof(T) * std::size_t(size)))) {}
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() { CachingAllocator::instance().deallocate(data_, sizeof(T) * std::size_t(size_)); }

  T* data() { return data_; }
  const T* data() const { return data_; }
  int64_t size() const { return size_; }

 private:
  // Sizes whose byte count would overflow (and wrap to a small block) are refused up front.
  static int64_t checked_size(int64_t size) {
    if (size < 0 || std::size_t(size) > std::size_t(std::numeric_limits<std::ptrdiff_t>::max()) / sizeof(T))
      throw std::length_error("tensor storage of " + std::to_string(size) + " elements of " +
                              std::to_string(sizeof(T)) + " bytes is too large");
    return size;
  }

  int64_t size_;
  T* data_;
};

}  // namespace sumi
