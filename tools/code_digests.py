"""The code_digests table of a kforge DB (generator/pack.cpp's schema), for the tools that
drop code objects (slim_db.py) or record what dropped ones held (record_digests.py): the
SHA-256 of a kernel's code object, so that a rebuild to the same code keeps the kernel's
measurements."""
import hashlib
import sqlite3

_DDL = """CREATE TABLE IF NOT EXISTS code_digests (
  arch TEXT NOT NULL, name TEXT NOT NULL, sha256 TEXT NOT NULL, PRIMARY KEY (arch, name))"""


def record(db: sqlite3.Connection, kernels) -> int:
    """Stores the digest of each (arch, name, code object) in `kernels`, creating the table
    in a DB older than it; returns how many."""
    db.execute(_DDL)
    rows = [(arch, name, hashlib.sha256(code).hexdigest()) for arch, name, code in kernels]
    db.executemany("INSERT OR REPLACE INTO code_digests (arch, name, sha256) VALUES (?, ?, ?)", rows)
    return len(rows)
