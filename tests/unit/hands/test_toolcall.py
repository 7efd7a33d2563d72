"""Output is kept up to the byte cap, decoded safely, and outcomes tell the model what happened."""

from __future__ import annotations

import pytest

from services.core.errors import InvalidRequest
from services.hands.calls.files import workspace_path
from services.hands.calls.runner import call_timeout
from services.hands.calls.toolcall import (
    OutputCollector,
    ToolOutcome,
    finished,
    lost,
    timed_out,
    tool_error,
    with_skipped,
)


def test_collector_keeps_everything_under_the_cap() -> None:
    collector = OutputCollector(cap=100)

    shown = [collector.add("stdout", b"out\n"), collector.add("stderr", b"err\n")]

    assert shown == ["out\n", "err\n"]
    assert collector.text() == "out\nerr\n" and not collector.truncated


def test_collector_cuts_at_the_cap_and_says_so() -> None:
    collector = OutputCollector(cap=10)

    first = collector.add("stdout", b"0123456789abc")
    later = collector.add("stdout", b"more")

    assert first == "0123456789" and later == ""
    assert collector.truncated
    assert collector.text() == "0123456789\n[output truncated: only the first 10 bytes are shown]"


def test_collector_joins_utf8_characters_split_across_chunks() -> None:
    collector = OutputCollector(cap=100)
    data = "héllo".encode()

    parts = [collector.add("stdout", data[:2]), collector.add("stdout", data[2:])]

    assert "".join(parts) == "héllo" == collector.text()


def test_text_output_has_no_raw_bytes() -> None:
    collector = OutputCollector(cap=100)
    data = "héllo\tworld\x1b[0m\n".encode()
    collector.add("stdout", data[:2])
    collector.add("stdout", data[2:])

    assert collector.raw() is None
    assert collector.text() == "héllo\tworld\x1b[0m\n"


@pytest.mark.parametrize(
    ("chunks", "shown"),
    [
        ([b"a\x00b"], "a\\x00b"),
        ([b"PK\x03\x04\xff\xfe"], "PK\x03\x04\\xff\\xfe"),
        ([b"caf\xc3", b"\xa9 \xc3"], "café \\xc3"),
    ],
)
def test_binary_output_is_shown_escaped_and_kept_exactly(chunks: list[bytes], shown: str) -> None:
    collector = OutputCollector(cap=100)
    streamed = "".join(collector.add("stdout", chunk) for chunk in chunks)

    assert collector.text() == shown == collector.text()
    assert shown.startswith(streamed)
    assert collector.raw() == b"".join(chunks)
    assert finished(collector, 0).output_bytes == b"".join(chunks)


def test_a_character_cut_by_the_cap_does_not_make_text_binary() -> None:
    collector = OutputCollector(cap=4)
    collector.add("stdout", "abcé".encode())

    assert collector.truncated and collector.raw() is None
    assert collector.text().startswith("abc\n[output truncated")


def test_streams_are_decoded_apart() -> None:
    collector = OutputCollector(cap=100)
    e_acute = "é".encode()
    collector.add("stdout", e_acute[:1])
    collector.add("stderr", b"err ")
    collector.add("stdout", e_acute[1:])

    assert collector.raw() is None
    assert collector.text() == "err é"


def test_outcomes() -> None:
    ok = OutputCollector(10)
    ok.add("stdout", b"hi\n")

    assert finished(ok, 0).ok and finished(ok, 0).output == "hi\n"
    failed = finished(ok, 2)
    assert (failed.ok, failed.error, failed.exit_code, failed.output) == (
        False,
        "nonzero_exit",
        2,
        "hi\n[exit code 2]",
    )
    assert timed_out(ok, 1.5).error == "timeout" and "1.5s" in timed_out(ok, 1.5).output
    assert lost().error == "sandbox_lost" and "fresh sandbox" in lost().output
    assert tool_error("no such file: x").output == "error: no such file: x"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a.txt", "/workspace/a.txt"),
        ("./src/../b.txt", "/workspace/b.txt"),
        ("/workspace/c", "/workspace/c"),
        (".", "/workspace"),
        ("", "/workspace"),
    ],
)
def test_workspace_paths(path: str, expected: str) -> None:
    assert workspace_path(path) == expected


@pytest.mark.parametrize("path", ["..", "../x", "/etc/passwd", "/workspace2/x", "a/../../x", "a\x00b"])
def test_paths_escaping_the_workspace_are_refused(path: str) -> None:
    with pytest.raises(InvalidRequest):
        workspace_path(path)


def test_call_timeout_prefers_the_smaller_of_the_brain_and_the_command() -> None:
    assert call_timeout("bash", {"command": "x"}, 30.0, 120.0) == 30.0
    assert call_timeout("bash", {"command": "x", "timeout": 5}, 30.0, 120.0) == 5.0
    assert call_timeout("bash", {"command": "x", "timeout": 500}, 30.0, 120.0) == 30.0
    assert call_timeout("bash", {"command": "x"}, 0.0, 120.0) == 120.0
    assert call_timeout("read_file", {"path": "x", "timeout": 1}, 30.0, 120.0) == 30.0


def test_no_request_lifts_the_call_timeout_past_the_ceiling() -> None:
    greedy = {"command": "sleep infinity", "timeout": 86_400}
    assert call_timeout("bash", greedy, 86_400.0, 120.0, ceiling=60.0) == 60.0
    assert call_timeout("bash", {"command": "x"}, 0.0, 120.0, ceiling=60.0) == 60.0
    assert call_timeout("bash", {"command": "x", "timeout": 5}, 86_400.0, 120.0, ceiling=60.0) == 5.0


def test_entries_a_snapshot_left_out_are_named_for_the_model() -> None:
    outcome = ToolOutcome(ok=True, output="made it\n", exit_code=0)
    deep = "a/" * 300 + "f"
    shown = [(deep, "File name too long"), ("gone.txt", "it vanished while the snapshot was taken")]

    noted = with_skipped(outcome, 3, shown)

    assert noted.ok and noted.output.startswith("made it\n[the workspace snapshot left out 3 entries")
    assert "- gone.txt: it vanished while the snapshot was taken" in noted.output
    assert "…" in noted.output and deep not in noted.output
    assert noted.output.endswith("- and 1 more]")
    assert with_skipped(outcome, 0, ()) is outcome
