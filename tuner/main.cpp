// autotune: measure every kernel of a kforge pack on this machine's GPU and store the
// winners per M range in the pack. See cli.h for the exit codes, README for usage.
#include "cli.h"

int main(int argc, char** argv) { return kf::autotune_main(argc, argv); }
