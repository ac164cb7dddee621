#include "hazard.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <new>

namespace immunizer::effector::detail {

thread_local HazardRec* tl_hazard_rec IMMUNIZER_TLS_IE = nullptr;

namespace {

// Releases the thread's record at thread exit. Constructed only on the slow path.
struct Detacher {
  HazardRec* rec = nullptr;
  ~Detacher() {
    if (rec) HazardDomain::instance().detach(rec);
  }
};
thread_local Detacher tl_detacher;

bool register_membarrier() noexcept {
#if defined(__SANITIZE_THREAD__) || !defined(__NR_membarrier)
  return false;
#else
  const long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (cmds < 0 || (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#endif
}

}  // namespace

HazardDomain::HazardDomain() noexcept : light_(register_membarrier()) {}

HazardDomain& HazardDomain::instance() noexcept {
  static HazardDomain d;
  return d;
}

HazardRec* HazardDomain::attach() noexcept {
  HazardRec* h = nullptr;
  for (HazardRec* r = head_.load(std::memory_order_acquire); r; r = r->next) {
    bool expected = false;
    if (!r->in_use.load(std::memory_order_relaxed) &&
        r->in_use.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
      h = r;
      break;
    }
  }
  if (!h) {
    h = new (std::nothrow) HazardRec;
    if (!h) std::terminate();  // cannot protect reads without a record
    h->in_use.store(true, std::memory_order_relaxed);
    HazardRec* old = head_.load(std::memory_order_relaxed);
    do {
      h->next = old;
    } while (
        !head_.compare_exchange_weak(old, h, std::memory_order_release, std::memory_order_relaxed));
  }
  tl_hazard_rec = h;
  tl_detacher.rec = h;
  return h;
}

void HazardDomain::detach(HazardRec* h) noexcept {
  h->ptr.store(nullptr, std::memory_order_release);
  h->in_use.store(false, std::memory_order_release);
  tl_hazard_rec = nullptr;  // a later read on this (exiting) thread re-attaches
}

void HazardDomain::heavy_barrier() const noexcept {
#if !defined(__SANITIZE_THREAD__) && defined(__NR_membarrier)
  if (light_ && syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) return;
#endif
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

bool HazardDomain::is_protected(const void* p) const noexcept {
  for (HazardRec* r = head_.load(std::memory_order_acquire); r; r = r->next)
    if (r->ptr.load(std::memory_order_seq_cst) == p) return true;
  return false;
}

}  // namespace immunizer::effector::detail
