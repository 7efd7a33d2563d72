"""Keeps Python's cyclic garbage collector from scanning what a process keeps for its whole life."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Take what the process allocated to start (modules, settings, pools) out of the collector's view.

    A full collection scans every tracked object, and each one paused a busy brain's event loop (and
    every commit in flight) for up to about 100 ms; most of those objects are modules and classes that
    live as long as the process. Frozen, they are never scanned again.
    """
    gc.collect()
    gc.freeze()
