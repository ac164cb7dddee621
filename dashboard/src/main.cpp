// immunizer-dashboard: ops web UI, JSON API and live events. Wiring only; see dashboard/api.hpp.
//   immunizer-dashboard hash-password   reads a password on stdin, prints the dashboard.users hash
#include <cstring>
#include <iostream>
#include <string>

#include "immunizer/common/service.hpp"
#include "immunizer/dashboard/auth.hpp"
#include "immunizer/dashboard/service.hpp"

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "hash-password") == 0) {
    std::string password;
    if (!std::getline(std::cin, password) || password.empty()) {
      std::cerr << "usage: echo -n PASSWORD | immunizer-dashboard hash-password\n"
                   "  prints pbkdf2-sha256$...; use it as dashboard.users entry name:role:<hash>\n";
      return 2;
    }
    std::cout << immunizer::dashboard::hash_password(password) << "\n";
    return 0;
  }
  return immunizer::common::run_service(argc, argv, "dashboard", 8080,
                                        immunizer::dashboard::setup_service);
}
