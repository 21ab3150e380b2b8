"""The RM's own reads from a resource's database: row images and table metadata.

Shared by the executors (phase one) and the undo layer (phase-two rollback).
"""

from atx.rm.db.metadata import read_table_meta
from atx.rm.db.reads import select_by_pks, select_image, select_join_image

__all__ = ["read_table_meta", "select_by_pks", "select_image", "select_join_image"]
