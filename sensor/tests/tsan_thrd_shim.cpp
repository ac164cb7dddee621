// ThreadSanitizer + librdkafka: glibc >= 2.34 implements C11 thrd_create without going
// through the pthread_create symbol, so TSan never learns about librdkafka's threads and
// crashes in its allocator when they run. Linked only into TSan test binaries, these
// definitions interpose the C11 calls librdkafka makes and route them through pthread_*,
// which TSan intercepts. Weak, so that several copies (e.g. a project-wide one) can coexist.
// Any TSan binary that runs librdkafka needs this (e.g. via immunizer_test when
// IMMUNIZER_SANITIZE=thread), with tsan.supp for librdkafka's own uninstrumented internals.
#include <errno.h>
#include <pthread.h>
#include <threads.h>

#include <cstdint>
#include <new>

namespace {
struct Trampoline {
  thrd_start_t fn;
  void* arg;
};
void* run(void* p) {
  auto* t = static_cast<Trampoline*>(p);
  const thrd_start_t fn = t->fn;
  void* arg = t->arg;
  delete t;
  return reinterpret_cast<void*>(static_cast<intptr_t>(fn(arg)));
}
}  // namespace

extern "C" {
__attribute__((weak)) int thrd_create(thrd_t* thr, thrd_start_t fn, void* arg) {
  auto* t = new (std::nothrow) Trampoline{fn, arg};
  if (!t) return thrd_nomem;
  const int rc = pthread_create(thr, nullptr, run, t);
  if (rc != 0) {
    delete t;
    return rc == ENOMEM ? thrd_nomem : thrd_error;
  }
  return thrd_success;
}
__attribute__((weak)) int thrd_join(thrd_t thr, int* res) {
  void* ret = nullptr;
  if (pthread_join(thr, &ret) != 0) return thrd_error;
  if (res) *res = static_cast<int>(reinterpret_cast<intptr_t>(ret));
  return thrd_success;
}
__attribute__((weak)) int thrd_detach(thrd_t thr) {
  return pthread_detach(thr) == 0 ? thrd_success : thrd_error;
}
}
