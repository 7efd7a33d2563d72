"""Text that PostgreSQL can store: text and jsonb refuse NUL and lone surrogates, jsonb non-finite numbers.

The event log passes every payload through `jsonb_text`, which costs one C-speed scan when the payload
is clean. Bytes that are not text (tool output, file contents) are shown with `render_bytes` and kept
exactly elsewhere (the artifact store); file names that are not UTF-8 travel as `escape_name`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_COMPACT = (",", ":")
_ESCAPE = re.compile(rb"\\(?:\\|x([0-9a-f]{2}))")


def is_storable(text: str) -> bool:
    """True when PostgreSQL can store the string as it is (no NUL, no lone surrogate)."""
    return "\x00" not in text and (text.isascii() or _SURROGATE.search(text) is None)


def storable(text: str) -> str:
    """The string with each NUL and lone surrogate replaced by U+FFFD; the same object when clean."""
    return text if is_storable(text) else _UNSTORABLE.sub(REPLACEMENT, text)


def storable_json(value: Any) -> Any:
    """A JSON value with every string (keys too) made storable and non-finite floats made null."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {storable(str(k)): storable_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(v) for v in value]
    return value


def first_unstorable(value: Any, where: str = "") -> str | None:
    """Where in a JSON value the first thing PostgreSQL cannot store is, and what it is; None if clean."""
    if isinstance(value, str):
        if is_storable(value):
            return None
        kind = "a NUL character" if "\x00" in value else "a lone surrogate"
        return f"{where or 'the value'} contains {kind}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where or 'the value'} is not a finite number"
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            found = first_unstorable(str(key), f"the key {path!r}") or first_unstorable(item, path)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = first_unstorable(item, f"{where}[{index}]")
            if found:
                return found
    return None


def jsonb_text(value: Any) -> tuple[bytes, Any]:
    """UTF-8 JSON that jsonb accepts, and the value it stands for: `value` itself when already storable.

    The clean case costs what sending JSON costs anyway, a dump and its UTF-8 encoding, plus one memchr
    scan: a lone surrogate fails the encoding, and JSON escapes a NUL as \\u0000 (a literal backslash
    before "u0000" matches too, which only costs the slow path).
    """
    try:
        encoded = _dump(value)
        if b"\\u0000" not in encoded:
            return encoded, value
    except (ValueError, UnicodeEncodeError):  # a non-finite number, a lone surrogate
        pass
    fixed = storable_json(value)
    return _dump(fixed), fixed


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=_COMPACT).encode()


def jsonb_dumps(value: Any) -> bytes:
    """`jsonb_text` as a psycopg `dumps` function."""
    return jsonb_text(value)[0]


def render_bytes(data: bytes) -> str:
    """Bytes as readable text: UTF-8 as it is, NUL and every byte that is not UTF-8 as \\xNN."""
    return data.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def escape_name(name: str) -> str:
    """A file name (str with surrogate escapes for bytes that are not UTF-8) as storable text, reversibly.

    Names that are UTF-8 and hold no backslash are unchanged. Any other name has each backslash doubled
    and each byte that is not UTF-8 written as \\xNN, so `unescape_name` recovers the raw bytes and no
    two names share an escaped form.
    """
    if "\\" not in name and is_storable(name):
        return name
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no byte stands for: keep its code units visible
        raw = name.encode("utf-8", "surrogatepass")
    return raw.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def unescape_name(escaped: str) -> bytes:
    """The raw bytes of a name written by `escape_name`."""
    raw = escaped.encode("utf-8")
    if b"\\" not in raw:
        return raw
    return _ESCAPE.sub(lambda m: bytes([int(m[1], 16)]) if m[1] else b"\\", raw)
