"""A hands worker's sandboxes: the per-run pool, the warm pool, the idle reaper and the orphan janitor.

Also the worker's heartbeat in the bus's hands registry, which the janitors read to tell the living.
"""
