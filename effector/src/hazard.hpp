// Read-side protection for the effector's snapshots: one hazard pointer per thread, in a
// process-wide list. A reader publishes the snapshot it is about to read; a writer that
// swapped the snapshot out frees it only when no hazard names it. On Linux the reader's
// store needs no fence: the writer issues membarrier(PRIVATE_EXPEDITED) instead (the
// asymmetric fence of liburcu-memb and folly's hazptr). Elsewhere, under ThreadSanitizer
// (which does not model membarrier), or when the syscall is unavailable, readers use
// sequentially consistent stores.
#pragma once

#include <atomic>
#include <cstdint>

namespace immunizer::effector::detail {

struct HazardRec {
  std::atomic<const void*> ptr{nullptr};
  std::atomic<bool> in_use{false};
  HazardRec* next = nullptr;  // immutable once linked
};

#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
#define IMMUNIZER_TLS_IE __attribute__((tls_model("initial-exec")))
#else
#define IMMUNIZER_TLS_IE
#endif
extern thread_local HazardRec* tl_hazard_rec IMMUNIZER_TLS_IE;

class HazardDomain {
 public:
  static HazardDomain& instance() noexcept;
  // This thread's record (claimed on first use, released at thread exit).
  static HazardRec* mine() noexcept {
    HazardRec* h = tl_hazard_rec;
    if (h == nullptr) [[unlikely]]
      h = instance().attach();
    return h;
  }
  bool light() const noexcept { return light_; }
  void heavy_barrier() const noexcept;  // writer side, after swapping a pointer out
  bool is_protected(const void* p) const noexcept;
  HazardRec* attach() noexcept;
  void detach(HazardRec* h) noexcept;

 private:
  HazardDomain() noexcept;
  std::atomic<HazardRec*> head_{nullptr};
  bool light_ = false;
};

}  // namespace immunizer::effector::detail
