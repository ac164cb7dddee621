// Standalone `score` command (the same as `immunizer-analyze score`).
#include "immunizer/analyze/models/score_command.hpp"

int main(int argc, char** argv) { return immunizer::analyze::score_command(argc, argv); }
