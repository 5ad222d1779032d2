#pragma once
// Grow-only scratch memory for the kernels, so that steady-state calls do not touch the heap.
//
// Each thread (the caller and every OpenMP worker) owns a few buffers, one per purpose (slot). A buffer
// only grows: after the first call with the largest shape, later calls reuse it. The caller's buffers may
// be shared with the workers of the parallel region it starts (e.g. packed weights, which the team may fill
// together), but only the caller obtains or grows them.
#include <array>
#include <cstddef>
#include <cstring>
#include <new>

namespace sumi::kernels {

class AlignedBuffer {
 public:
  static constexpr std::size_t kAlign = 64;  // a cache line, and an AVX-512 vector
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { release(); }

  // At least `count` elements of T, 64-byte aligned. Contents are unspecified (kept when not grown).
  template <class T>
  T* get(std::size_t count) {
    const std::size_t bytes = count * sizeof(T);
    if (bytes > capacity_) {
      // Grow geometrically so that a slowly increasing series of shapes reallocates only a few times.
      std::size_t cap = capacity_ * 2 > bytes ? capacity_ * 2 : bytes;
      cap = (cap + kAlign - 1) / kAlign * kAlign;
      release();
      data_ = static_cast<std::byte*>(::operator new (cap, std::align_val_t{kAlign}));
      capacity_ = cap;
    }
    return reinterpret_cast<T*>(data_);
  }

  std::size_t capacity_bytes() const { return capacity_; }

 private:
  void release() {
    if (data_) ::operator delete (data_, std::align_val_t{kAlign});
    data_ = nullptr;
    capacity_ = 0;
  }
  std::byte* data_ = nullptr;
  std::size_t capacity_ = 0;
};

// What each buffer of a thread holds during a kernel call.
enum class WorkspaceSlot : int {
  packed_weights,  // the caller's: weights reordered for the micro-kernel (Winograd weight gradients: the
                   // transformed output gradient, the team's or a worker's own)
  source,          // a worker's: padded / phase-split copy of its images
  packed_panel,    // a worker's: the operand block packed for the micro-kernel
  accumulators,    // a worker's: micro-kernel results before they are written out
  partial_sums,    // a worker's: its share of the weight gradient
  tables,          // the caller's: small index tables
  thread_results,  // the caller's: per-thread pointers, published to the whole team
  count
};

// The calling thread's buffer for `slot`.
inline AlignedBuffer& thread_workspace(WorkspaceSlot slot) {
  thread_local std::array<AlignedBuffer, static_cast<int>(WorkspaceSlot::count)> buffers;
  return buffers[static_cast<int>(slot)];
}

}  // namespace sumi::kernels
