// The autotune command line (main.cpp calls this; tests run it in forked children):
// parses the options, picks the measurer, runs kf::run_autotune and maps the outcome
// to an exit code:
//   0 done (or --time-budget reached; a rerun continues), 1 a kernel left the GPU
//   unusable or nothing passed, 2 bad input or an unusable DB (left untouched),
//   77 no GPU (nothing measured), 128+signal when stopped by SIGINT (130) / SIGTERM.
#pragma once

namespace kf {

int autotune_main(int argc, char** argv);

}  // namespace kf
