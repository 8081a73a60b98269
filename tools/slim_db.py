#!/usr/bin/env python3
"""Writes a shippable copy of a tuned kforge DB: every measurement and winner row is
kept, code objects (and compiler logs) are kept only for winners, generic and utility kernels,
the MoE helpers (moe_align, moe_silu_mul, moe_sum), which every MoE layer runs (the MXFP4
ones too: moe_align sorts their slots and moe_sum adds their bf16 rows), and the
sparse MLA combine kernel, which split MLA winners run after them
(the others' rows stay, marked pruned:not_a_winner, so the DB still says what was tried,
with the SHA-256 of the dropped code object in code_digests: a later rebuild to the same
code keeps their measurements).
Measurements of kernels that have no row any more (autotune removes the kernels the
templates no longer generate and keeps their results as history in the tuning DB) are
left out of the copy: nothing can serve or re-measure them, and they grew the shipped
file by a few MB per retiling.
usage: slim_db.py TUNED_DB OUT_DB"""
import os
import shutil
import sqlite3
import sys

import code_digests

src, dst = sys.argv[1], sys.argv[2]
if os.path.exists(dst):
    os.remove(dst)
shutil.copyfile(src, dst)
db = sqlite3.connect(dst)
db.execute("PRAGMA journal_mode=DELETE")
DROPPED = """kind NOT IN ('generic', 'util')
         AND op NOT IN ('moe_align', 'moe_silu_mul', 'moe_sum', 'sparse_mla_combine')
         AND NOT EXISTS (SELECT 1 FROM winners w WHERE w.kernel = kernels.name AND w.arch = kernels.arch)"""
code_digests.record(db, db.execute(
    f"SELECT arch, name, code_object FROM kernels WHERE code_object IS NOT NULL AND {DROPPED}").fetchall())
db.execute(f"UPDATE kernels SET code_object = NULL, status = 'pruned:not_a_winner' WHERE {DROPPED}")
retired = db.execute(
    """DELETE FROM results WHERE NOT EXISTS
         (SELECT 1 FROM kernels k WHERE k.name = results.kernel AND k.arch = results.arch)""").rowcount
db.execute("""DELETE FROM code_digests WHERE NOT EXISTS
                (SELECT 1 FROM kernels k WHERE k.name = code_digests.name AND k.arch = code_digests.arch)""")
# Compiler logs (ptxas reports, messages) are kept only where the code object is.
db.execute("UPDATE kernels SET log = '' WHERE code_object IS NULL AND status != 'compile_error'")
db.commit()
db.execute("VACUUM")
kept = db.execute("SELECT count(*) FROM kernels WHERE code_object IS NOT NULL").fetchone()[0]
rows = db.execute("SELECT count(*) FROM results").fetchone()[0]
db.close()
print(f"{dst}: {kept} code objects kept, {rows} result rows ({retired} of retired kernels left out), "
      f"{os.path.getsize(dst) / 1e6:.1f} MB")
