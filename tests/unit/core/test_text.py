"""What PostgreSQL cannot store is made storable, cheaply when there is nothing to change, and file
names that are not UTF-8 keep their raw bytes recoverable."""

from __future__ import annotations

import json

import pytest

from services.core import text


def test_clean_text_is_left_alone() -> None:
    clean = "plain ascii, é, and 😀 beyond the BMP"
    assert text.is_storable(clean)
    assert text.storable(clean) is clean
    assert json.loads(text.jsonb_dumps({"a": [clean, 1, 2.5, None, True]})) == {
        "a": [clean, 1, 2.5, None, True]
    }


@pytest.mark.parametrize("bad", ["a\x00b", "a\udcffb", "\ud800", "x\x00\udfff"])
def test_nul_and_lone_surrogates_become_replacement_characters(bad: str) -> None:
    assert not text.is_storable(bad)
    fixed = text.storable(bad)
    assert text.is_storable(fixed) and "\ufffd" in fixed
    fixed.encode("utf-8")


def test_jsonb_dumps_fixes_keys_values_and_numbers_deep_inside() -> None:
    value = {"k\x00": ["ok", {"inner": "a\udcffb"}], "n": float("inf"), "m": float("nan"), "x": 1e308}

    dumped, stored = text.jsonb_text(value)

    assert b"\\u0000" not in dumped
    assert (
        json.loads(dumped)
        == stored
        == {"k\ufffd": ["ok", {"inner": "a\ufffdb"}], "n": None, "m": None, "x": 1e308}
    )


def test_a_literal_backslash_u0000_survives_the_slow_path_unchanged() -> None:
    value = {"s": "\\u0000 is how JSON spells NUL"}
    assert json.loads(text.jsonb_dumps(value)) == value


def test_first_unstorable_says_where() -> None:
    assert text.first_unstorable({"a": [1, {"b": "x\x00"}]}) == "a[1].b contains a NUL character"
    assert text.first_unstorable({"a": "\udcff"}) == "a contains a lone surrogate"
    assert text.first_unstorable({"n": float("-inf")}) == "n is not a finite number"
    assert text.first_unstorable({"ok": ["fine", 1.5]}) is None


def test_render_bytes_shows_what_is_not_text_as_escapes() -> None:
    assert text.render_bytes(b"a\x00b") == "a\\x00b"
    assert text.render_bytes(b"PK\x03\x04\xff\xfe caf\xc3\xa9") == "PK\x03\x04\\xff\\xfe café"


@pytest.mark.parametrize(
    "raw",
    [b"plain.txt", "caf\u00e9.txt".encode(), b"\xff", b"a\xfe\xffb", b"back\\slash", b"\\xff", b"new\nline"],
)
def test_escaped_names_are_storable_distinct_and_reversible(raw: bytes) -> None:
    name = raw.decode("utf-8", "surrogateescape")

    escaped = text.escape_name(name)

    assert text.is_storable(escaped)
    assert text.unescape_name(escaped) == raw


def test_names_that_are_text_without_backslashes_are_unchanged() -> None:
    assert text.escape_name("src/main.py") == "src/main.py"
    assert text.escape_name("new\nline") == "new\nline"
    assert text.escape_name("\udcff") == "\\xff"
    # A name spelling an escape literally cannot be mistaken for the raw byte.
    assert text.escape_name("\\xff") == "\\\\xff"
