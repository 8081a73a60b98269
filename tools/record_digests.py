#!/usr/bin/env python3
"""Records in a tuned DB the code digests of kernels it stores without a code object.

  tools/record_digests.py DB PACK

DB's rows of kernels stored without code (a shipped DB's non-winners, tools/slim_db.py)
say nothing of the code they measured, so a rebuild drops their measurements even when it
compiles to the same bytes. PACK is a build of the same kernels by the same templates and
compiler (genkernels --templates <those templates>): where a kernel's source_hash in PACK
equals DB's, PACK's code object is the one DB measured, and its SHA-256 goes into DB's
code_digests (as slim_db.py writes for the objects it drops). Kernels of other builds are
left alone and counted.
"""
import sqlite3
import sys

import code_digests


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    db = sqlite3.connect(sys.argv[1])
    pack = sqlite3.connect(f"file:{sys.argv[2]}?mode=ro", uri=True)
    built = {(a, n): (h, c) for a, n, h, c in pack.execute(
        "SELECT arch, name, source_hash, code_object FROM kernels WHERE code_object IS NOT NULL")}
    same, other_build, not_built = [], 0, 0
    for arch, name, source_hash in db.execute(
            "SELECT arch, name, source_hash FROM kernels WHERE code_object IS NULL AND status != 'compile_error'"
    ).fetchall():
        b = built.get((arch, name))
        if b is None:
            not_built += 1
        elif b[0] != source_hash:
            other_build += 1
        else:
            same.append((arch, name, b[1]))
    recorded = code_digests.record(db, same)
    db.commit()
    print(f"{sys.argv[1]}: {recorded} digests recorded; {other_build} kernels built otherwise in the pack, "
          f"{not_built} not in it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
