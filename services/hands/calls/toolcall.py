"""One tool call inside the worker: what it carries, its output collected up to the cap, and its outcome."""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


class OutputCollector:
    """Keeps the first `cap` bytes of a call's output, decoding each stream's UTF-8 incrementally."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.truncated = False
        self._size = 0
        self._parts: list[str] = []
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}

    def add(self, stream: str, data: bytes) -> str:
        """Keep what fits under the cap and return it as text ("" once the cap is hit)."""
        if self.truncated:
            return ""
        room = self.cap - self._size
        if len(data) > room:
            data, self.truncated = data[:room], True
        self._size += len(data)
        decoder = self._decoders.setdefault(stream, codecs.getincrementaldecoder("utf-8")("replace"))
        text = decoder.decode(data, final=self.truncated)
        self._parts.append(text)
        return text

    def text(self) -> str:
        tail = "".join(decoder.decode(b"", final=True) for decoder in self._decoders.values())
        text = "".join(self._parts) + tail
        if self.truncated:
            text += f"\n[output truncated: only the first {self.cap} bytes are shown]"
        return text


def finished(collector: OutputCollector, exit_code: int | None) -> ToolOutcome:
    """The outcome of a command that ran to its end."""
    output = collector.text()
    if exit_code == 0:
        return ToolOutcome(ok=True, output=output, exit_code=0, truncated=collector.truncated)
    return ToolOutcome(
        ok=False,
        output=_with_note(output, f"exit code {exit_code}"),
        exit_code=exit_code,
        error=NONZERO_EXIT,
        error_message=f"the command exited with code {exit_code}",
        truncated=collector.truncated,
    )


def timed_out(collector: OutputCollector, timeout: float) -> ToolOutcome:
    message = f"the call ran longer than {timeout:g}s; every process it started was killed"
    return ToolOutcome(
        ok=False,
        output=_with_note(collector.text(), message),
        error=TIMEOUT,
        error_message=message,
        truncated=collector.truncated,
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
    )


def tool_error(message: str) -> ToolOutcome:
    return ToolOutcome(ok=False, output=f"error: {message}", error=TOOL_ERROR, error_message=message)


def _with_note(text: str, note: str) -> str:
    """Append a bracketed note for the model on a line of its own."""
    if text and not text.endswith("\n"):
        text += "\n"
    return f"{text}[{note}]"
