// Standalone `score` command (the same as `immunizer-analyze score`).
#include <cstdio>
#include <cstring>

#include "immunizer/analyze/models/score_command.hpp"
#include "immunizer/version.hpp"

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
    std::printf("immunizer-analyze-score %s%s%s%s\n", IMMUNIZER_VERSION,
                *IMMUNIZER_GIT_COMMIT ? " (commit " : "", IMMUNIZER_GIT_COMMIT,
                *IMMUNIZER_GIT_COMMIT ? ")" : "");
    return 0;
  }
  return immunizer::analyze::score_command(argc, argv);
}
