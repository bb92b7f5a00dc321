"""Migration and job procedures of the in-memory driver.

The memory driver inherits this mixin (``class MemoryDriver(MigrationMixin, Driver)``).
Its methods are named like the remote procedures they serve (lowercased, e.g.
``domain_migrate_begin3_params``) and are found by the table-driven dispatcher;
a procedure without a method here falls back to NO_SUPPORT.
"""

from __future__ import annotations


class MigrationMixin:
    """Live migration (pre-copy and post-copy), job info/stats and job abort."""
