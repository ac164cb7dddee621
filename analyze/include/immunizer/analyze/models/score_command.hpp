// `immunizer-analyze score`: offline scoring of a table, one score per row on stdout, AUC
// and R-precision on stderr when labels are present. Reentrant (no globals); the caller
// owns the streams.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace immunizer::analyze {

// argv[0] is the command name ("score" or the program), options follow:
//   --input FILE [--train FILE] [--label-column N|NAME|last|none|auto] [--detector
//   iforest|autoencoder|ensemble] [--seed N] [--threads N]
// Returns 0 on success, 1 on bad data, 2 on bad usage; messages go to stderr.
int score_command(int argc, char** argv);
// The same with explicit streams; args excludes the command name.
int score_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace immunizer::analyze
