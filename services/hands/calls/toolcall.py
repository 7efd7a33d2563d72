"""One tool call inside the worker: what it carries, its output collected up to the cap, and its outcome."""

from __future__ import annotations

import codecs
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from services.core.text import escape_name
from services.hands.contract.api import NONZERO_EXIT, SANDBOX_LOST, TIMEOUT, TOOL_ERROR

LOST_MESSAGE = "the sandbox died during the call; its files are gone and the next call gets a fresh sandbox"


@dataclass(frozen=True)
class ToolCall:
    sandbox_id: str
    tool: str
    args: Mapping[str, Any]
    timeout_seconds: float
    output_cap: int


@dataclass(frozen=True)
class ToolOutcome:
    ok: bool
    output: str
    exit_code: int | None = None
    error: str | None = None
    error_message: str | None = None
    truncated: bool = False
    # The output's exact bytes when they are not text; `output` then shows them escaped.
    output_bytes: bytes | None = None


class OutputCollector:
    """Keeps the first `cap` bytes of a call's output, decoding each stream's UTF-8 incrementally.

    Output is text when every stream is UTF-8 without NUL; otherwise it is binary: the text shows NUL
    and the bytes that are not UTF-8 as \\xNN, and `raw()` gives the bytes exactly, in arrival order.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.truncated = False
        self._size = 0
        self._parts: list[str] = []
        self._chunks: list[bytes] = []
        self._streams: dict[str, list[bytes]] = {}
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}

    def add(self, stream: str, data: bytes) -> str:
        """Keep what fits under the cap and return it as text ("" once the cap is hit)."""
        if self.truncated:
            return ""
        room = self.cap - self._size
        if len(data) > room:
            data, self.truncated = data[:room], True
        self._size += len(data)
        self._chunks.append(data)
        self._streams.setdefault(stream, []).append(data)
        decoder = self._decoders.setdefault(stream, codecs.getincrementaldecoder("utf-8")("backslashreplace"))
        # A character cut by the cap is dropped rather than shown as escapes.
        text = decoder.decode(data).replace("\x00", "\\x00")
        self._parts.append(text)
        return text

    def text(self) -> str:
        final = not self.truncated
        self._parts += [decoder.decode(b"", final=final) for decoder in self._decoders.values()]
        text = "".join(self._parts)
        if self.truncated:
            text += f"\n[output truncated: only the first {self.cap} bytes are shown]"
        return text

    def raw(self) -> bytes | None:
        """The output's exact bytes when it is binary; None when it is text."""
        return b"".join(self._chunks) if any(map(self._binary, self._streams.values())) else None

    def _binary(self, chunks: list[bytes]) -> bool:
        data = b"".join(chunks)
        if b"\x00" in data:
            return True
        try:
            codecs.getincrementaldecoder("utf-8")().decode(data, final=not self.truncated)
        except UnicodeDecodeError:
            return True
        return False


def finished(collector: OutputCollector, exit_code: int | None) -> ToolOutcome:
    """The outcome of a command that ran to its end."""
    output, raw = collector.text(), collector.raw()
    if exit_code == 0:
        return ToolOutcome(
            ok=True, output=output, exit_code=0, truncated=collector.truncated, output_bytes=raw
        )
    return ToolOutcome(
        ok=False,
        output=_with_note(output, f"exit code {exit_code}"),
        exit_code=exit_code,
        error=NONZERO_EXIT,
        error_message=f"the command exited with code {exit_code}",
        truncated=collector.truncated,
        output_bytes=raw,
    )


def timed_out(collector: OutputCollector, timeout: float) -> ToolOutcome:
    message = f"the call ran longer than {timeout:g}s; every process it started was killed"
    return ToolOutcome(
        ok=False,
        output=_with_note(collector.text(), message),
        error=TIMEOUT,
        error_message=message,
        truncated=collector.truncated,
        output_bytes=collector.raw(),
    )


def lost(collector: OutputCollector | None = None) -> ToolOutcome:
    text = collector.text() if collector else ""
    truncated = collector.truncated if collector else False
    return ToolOutcome(
        ok=False,
        output=_with_note(text, LOST_MESSAGE),
        error=SANDBOX_LOST,
        error_message=LOST_MESSAGE,
        truncated=truncated,
        output_bytes=collector.raw() if collector else None,
    )


def unsaved(outcome: ToolOutcome, why: str) -> ToolOutcome:
    """A call whose effect on /workspace could not be snapshotted: a tool error, its changes undone."""
    message = f"the workspace could not be saved: {why}; /workspace is back as it was before this call"
    return ToolOutcome(
        ok=False,
        output=_with_note(outcome.output, message),
        exit_code=outcome.exit_code,
        error=TOOL_ERROR,
        error_message=message,
        truncated=outcome.truncated,
        output_bytes=outcome.output_bytes,
    )


def with_skipped(outcome: ToolOutcome, skipped: int, shown: Sequence[tuple[str, str]]) -> ToolOutcome:
    """The outcome with a note naming the entries its snapshot left out (none: unchanged)."""
    if not skipped:
        return outcome
    lines = [f"- {_shortened(escape_name(path))}: {why}" for path, why in shown]
    if skipped > len(shown):
        lines.append(f"- and {skipped - len(shown)} more")
    note = (
        f"the workspace snapshot left out {skipped} entr{'y' if skipped == 1 else 'ies'} it could not read;"
        " they are not in the workspace after this call:\n" + "\n".join(lines)
    )
    return replace(outcome, output=_with_note(outcome.output, note))


def _shortened(path: str, keep: int = 120) -> str:
    return path if len(path) <= 2 * keep else f"{path[:keep]}…{path[-keep:]}"


def tool_error(message: str) -> ToolOutcome:
    return ToolOutcome(ok=False, output=f"error: {message}", error=TOOL_ERROR, error_message=message)


def _with_note(text: str, note: str) -> str:
    """Append a bracketed note for the model on a line of its own."""
    if text and not text.endswith("\n"):
        text += "\n"
    return f"{text}[{note}]"
