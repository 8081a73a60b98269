#!/usr/bin/env python3
"""Replace kernels' code objects in a copy of a DB by files named after them.

  tools/swap_kernels.py DB OUT DIR   copies DB to OUT, then for each DIR/<kernel>.bin sets
                                     that kernel's code_object (every arch row of that
                                     name) to the file's bytes, and its thread count to
                                     the one DIR/threads.tsv gives (name, threads) if any.

For timing a template variant against the tuned kernels in one run: the variant is
compiled under the same kernel names (genkernels --templates <copy> --filter), and the
benchmarks run on OUT, which selects exactly what DB selects.
"""
import pathlib
import shutil
import sqlite3
import sys


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    db, out, folder = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    shutil.copyfile(db, out)
    con = sqlite3.connect(out)
    threads = {}
    if (folder / "threads.tsv").exists():
        for line in (folder / "threads.tsv").read_text().splitlines():
            name, count = line.split("\t")
            threads[name] = int(count)
    files = sorted(folder.glob("*.bin"))
    if not files:
        print(f"swap_kernels: no *.bin in {folder}", file=sys.stderr)
        return 1
    for f in files:
        n = con.execute("UPDATE kernels SET code_object = ? WHERE name = ?", (f.read_bytes(), f.stem)).rowcount
        if n == 0:
            print(f"swap_kernels: {out} has no kernel {f.stem}", file=sys.stderr)
            return 1
        if f.stem in threads:
            con.execute("UPDATE kernels SET threads = ? WHERE name = ?", (threads[f.stem], f.stem))
        print(f"swapped {f.stem} ({n} row(s){', ' + str(threads[f.stem]) + ' threads' if f.stem in threads else ''})")
    con.commit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
