// Free loopback ports for the multi-process tests: `count` consecutive ports base+1..base+count,
// below Linux's ephemeral range (32768+) so outgoing connections cannot take them meanwhile.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>

namespace immunizer::e2e {

inline bool port_free(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// A base such that base+1..base+count are free; -1 when none was found.
inline int free_base(int count) {
  std::mt19937 rng(std::random_device{}());
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int base = 20000 + static_cast<int>(rng() % 12000);
    bool ok = true;
    for (int p = base + 1; p <= base + count && ok; ++p) ok = port_free(p);
    if (ok) return base;
  }
  return -1;
}

}  // namespace immunizer::e2e
