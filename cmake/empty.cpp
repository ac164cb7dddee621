// The shared agent libraries are made of their static libraries (whole archive); CMake
// needs one source per library target.
