"""Workspace durability: snapshots of /workspace in the artifact store, their tar members, the call ledger."""
