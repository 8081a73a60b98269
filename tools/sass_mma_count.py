#!/usr/bin/env python3
"""Counts tensor-core instructions (HMMA/HGMMA) in the sm_90a prefill and skinny kernels of
a kforge pack, with cuobjdump, on a machine with the CUDA toolkit. Exit 1 if any has none."""
import os
import sqlite3
import subprocess
import sys
import tempfile

pack = sys.argv[1] if len(sys.argv) > 1 else "kforge-pack/kforge.sqlite"
db = sqlite3.connect(pack)
rows = db.execute("SELECT name, code_object FROM kernels WHERE arch = 'sm_90a' AND kind IN ('prefill', 'skinny')"
                  " AND code_object IS NOT NULL").fetchall()
missing = 0
with tempfile.TemporaryDirectory() as tmp:
    for name, blob in rows:
        path = os.path.join(tmp, "k.cubin")
        with open(path, "wb") as f:
            f.write(blob)
        sass = subprocess.run(["cuobjdump", "-sass", path], capture_output=True, text=True).stdout
        count = sum(1 for line in sass.splitlines() if "HMMA" in line or "HGMMA" in line)
        missing += count == 0
        print(f"{count:6d}  {name}")
print(f"{len(rows)} sm_90a prefill and skinny kernels, {missing} without tensor-core instructions")
sys.exit(1 if missing else 0)
