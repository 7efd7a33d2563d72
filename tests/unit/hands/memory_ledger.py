"""An in-process CallLedger for the ledger contract test: it dies with the process."""

from __future__ import annotations

from services.hands.contract.api import ExecuteResult


class MemoryLedger:
    def __init__(self) -> None:
        self._results: dict[tuple[str, str], ExecuteResult] = {}

    async def get(self, run_id: str, call_id: str) -> ExecuteResult | None:
        return self._results.get((run_id, call_id))

    async def put(self, run_id: str, call_id: str, result: ExecuteResult) -> ExecuteResult:
        return self._results.setdefault((run_id, call_id), result)

    async def snapshots(self) -> set[str]:
        return {r.snapshot_after for r in self._results.values() if r.snapshot_after}
