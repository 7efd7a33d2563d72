"""The command line's longer-running actions: following a run live, and downloading its artifacts."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from loopd.client import Client
from loopd.console import err, io_error, out, print_error
from loopd.errors import LoopdConnectionError, LoopdError
from loopd.models import Event, Run
from loopd.render import event_text

EXIT_COMPLETED = 0
EXIT_NOT_COMPLETED = 1


def follow_events(client: Client, run_id: str, *, after: int = 0) -> Event | None:
    """Print each event as it arrives until the run ends; returns the last event printed.

    A waiting run has not ended: its `run.waiting` event is printed with the command that unblocks
    it, and following goes on until the run completes, fails or is cancelled.
    """
    last = None
    for event in client.stream_events(run_id, after=after):
        out().print(event_text(event, run_id=run_id), soft_wrap=True)
        last = event
    return last


def follow_run(client: Client, run_id: str, *, after: int = 0) -> int:
    """Follow a run to its end, print its result or error, and return the exit status for it."""
    last = follow_events(client, run_id, after=after)
    if last is None or not last.is_terminal:
        # The run had already ended at or before `after`: report its final state instead.
        return _report_run(client.get_run(run_id))
    if last.type == "run.completed":
        _print_result(last.data.get("result"))
        return EXIT_COMPLETED
    if last.type == "run.failed":
        error = last.data.get("error") or {}
        _print_failure("failed", f"{error.get('code', 'error')}: {error.get('message', '')}")
    else:
        _print_failure("cancelled", str(last.data.get("reason") or ""))
    return EXIT_NOT_COMPLETED


def _report_run(run: Run) -> int:
    if run.status == "completed":
        _print_result(run.result)
        return EXIT_COMPLETED
    _print_failure(run.status, f"{run.error.code}: {run.error.message}" if run.error else "")
    return EXIT_NOT_COMPLETED


def _print_result(result: object) -> None:
    if result:
        out().print()
        out().print(Text(str(result)), soft_wrap=True)


def _print_failure(status: str, detail: str) -> None:
    err().print(Text.assemble((f"run {status}", "bold red"), f": {detail}" if detail else ""), soft_wrap=True)


def download_all(client: Client, run_id: str, directory: Path) -> bool:
    """Download every artifact under `directory`; returns False if any was refused or failed."""
    ok = True
    for artifact in client.list_artifacts(run_id):
        try:
            saved = client.download_artifact(run_id, artifact, directory)
        except LoopdConnectionError:
            raise  # with the server gone every other file would fail the same way
        except LoopdError as error:
            print_error(error)
            ok = False
            continue
        except OSError as error:
            print_error(io_error(error))
            ok = False
            continue
        check = "sha256 ok" if artifact.sha256 else "no sha256 listed, unverified"
        out().print(Text(f"{saved}  {artifact.size} bytes  {check}"), soft_wrap=True)
    return ok
