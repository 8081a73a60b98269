#!/usr/bin/env python3
"""Stage the ctest GPU entries for a GPU machine that has no build tree.

Reads the entries whose names start with `gpu_` from `ctest --show-only=json-v1` of a
build tree, copies their programs (stripped) and bench/linear into BIN, and writes
BIN/gpu_tests.tsv: one line per entry, its name, the program's file name and its
arguments, tab-separated, with the tracked DB's path written as {DB}.
tools/device_gpu_tests.sh runs that list, so the entries are defined once, in CMake.

    tools/stage_gpu_tests.py [--build build] [--bin .devout/bin]

Relative paths are taken from the source tree (this script's parent's parent), wherever
it is run from: ctest names the tracked DB by the source tree's absolute path.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build", help="the build tree (default: build)")
    ap.add_argument("--bin", default=".devout/bin", help="where the programs and the list go (default: .devout/bin)")
    opt = ap.parse_args()

    src = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    os.chdir(src)
    db = os.path.join(src, "tuned_db", "kforge.sqlite")
    shown = subprocess.run(["ctest", "--test-dir", opt.build, "--show-only=json-v1"], check=True,
                           capture_output=True, text=True).stdout
    entries = [t for t in json.loads(shown)["tests"] if t["name"].startswith("gpu_")]
    if not entries:
        sys.exit(f"no gpu_ entries in {opt.build}'s ctest list: was it configured with the CUDA toolkit?")

    os.makedirs(opt.bin, exist_ok=True)
    programs = {t["command"][0] for t in entries}
    bench = os.path.join(opt.build, "bench", "linear", "kforge_bench_linear")
    if os.path.exists(bench):
        programs.add(bench)
    for prog in sorted(programs):
        dst = os.path.join(opt.bin, os.path.basename(prog))
        shutil.copy2(prog, dst)
        subprocess.run(["strip", dst], check=True)

    lines = []
    for t in entries:
        args = ["{DB}" if a == db else a for a in t["command"][1:]]
        if any("\t" in a or "\n" in a or a.startswith(src + os.sep) for a in args):
            sys.exit(f"{t['name']}: an argument the list cannot carry: {args}")
        lines.append("\t".join([t["name"], os.path.basename(t["command"][0])] + args))
    with open(os.path.join(opt.bin, "gpu_tests.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(entries)} entries, {len(programs)} programs staged in {opt.bin}")


if __name__ == "__main__":
    main()
