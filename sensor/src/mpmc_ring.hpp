// Bounded lock-free queue of pointers (Vyukov's bounded MPMC ring). try_push / try_pop never
// block and never allocate.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace immunizer::sensor::detail {

template <class T>
class MpmcRing {
 public:
  explicit MpmcRing(size_t capacity) {
    size_t cap = 2;
    while (cap < capacity) cap <<= 1;
    mask_ = cap - 1;
    cells_ = std::make_unique<Cell[]>(cap);
    for (size_t i = 0; i < cap; ++i) cells_[i].seq.store(i, std::memory_order_relaxed);
  }

  size_t capacity() const { return mask_ + 1; }

  bool try_push(T* item) noexcept {
    size_t pos = tail_.load(std::memory_order_relaxed);
    for (;;) {
      Cell& c = cells_[pos & mask_];
      const size_t seq = c.seq.load(std::memory_order_acquire);
      const auto dif = static_cast<intptr_t>(seq) - static_cast<intptr_t>(pos);
      if (dif == 0) {
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          c.item = item;
          c.seq.store(pos + 1, std::memory_order_release);
          return true;
        }
      } else if (dif < 0) {
        return false;  // full
      } else {
        pos = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  // Single consumer (the producer thread).
  T* try_pop() noexcept {
    const size_t head = head_.load(std::memory_order_relaxed);
    Cell& c = cells_[head & mask_];
    const size_t seq = c.seq.load(std::memory_order_acquire);
    if (seq != head + 1) return nullptr;
    T* item = c.item;
    c.seq.store(head + mask_ + 1, std::memory_order_release);
    head_.store(head + 1, std::memory_order_relaxed);
    return item;
  }

  // Any number of consumers (used by the record recycler).
  T* try_pop_mc() noexcept {
    size_t pos = head_.load(std::memory_order_relaxed);
    for (;;) {
      Cell& c = cells_[pos & mask_];
      const size_t seq = c.seq.load(std::memory_order_acquire);
      const auto dif = static_cast<intptr_t>(seq) - static_cast<intptr_t>(pos + 1);
      if (dif == 0) {
        if (head_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          T* item = c.item;
          c.seq.store(pos + mask_ + 1, std::memory_order_release);
          return item;
        }
      } else if (dif < 0) {
        return nullptr;  // empty
      } else {
        pos = head_.load(std::memory_order_relaxed);
      }
    }
  }

 private:
  struct Cell {
    std::atomic<size_t> seq{0};
    T* item = nullptr;
  };
  std::unique_ptr<Cell[]> cells_;
  size_t mask_ = 0;
  alignas(64) std::atomic<size_t> tail_{0};
  alignas(64) std::atomic<size_t> head_{0};
};

}  // namespace immunizer::sensor::detail
