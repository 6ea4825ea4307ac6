"""PostgreSQL advisory lock keys of the exporter (one place, so they never collide).

Advisory locks are per database. Values are arbitrary 64-bit constants spelling their
purpose in ASCII.
"""

from typing import Final

MIGRATION_LOCK_KEY: Final = 0x63617265_74534D
"""Held (session) while migrations run: one migrator at a time."""

ROLLUP_LOCK_KEY: Final = 0x63617265_74524C
"""Held (transaction) by the rollup job and by deletions: one writer of the rollups."""

FORGET_LOCK_KEY: Final = 0x63617265_74464F
"""Shared by every load transaction, exclusive for a deletion: a deletion waits for the
loads in flight and the loads after it see the deleted users."""
