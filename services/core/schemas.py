"""JSON schemas that a model writes (the answer shape of `ask_user`): refused when they could reach out
or hang, and used to validate answers without fetching anything, with linear-time regexes and a deadline.

The brain checks a schema when the model writes it; the gateway checks it again and validates each
answer off its event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import re2
from jsonschema import SchemaError, ValidationError, validators
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import specification_with

from services.core.errors import InvalidRequest

if TYPE_CHECKING:
    from services.core.settings import Settings

_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
_MESSAGE_CHARS = 1000
_EXCERPT_CHARS = 100
_deadline: ContextVar[float] = ContextVar("schema_deadline", default=float("inf"))


class SchemaRefused(InvalidRequest):
    """The schema may not be used: it reaches out, is too big or deep, or is not a valid schema."""

    code = "schema_refused"


class AnswerInvalid(InvalidRequest):
    code = "answer_invalid"


class AnswerUnverifiable(InvalidRequest):
    """Checking the answer would take longer than allowed (or nests deeper than Python can follow)."""

    code = "answer_unverifiable"


@dataclass(frozen=True)
class SchemaLimits:
    max_bytes: int
    max_depth: int
    validate_seconds: float

    @classmethod
    def of(cls, settings: Settings) -> SchemaLimits:
        return cls(
            settings.ask_user_schema_max_bytes,
            settings.ask_user_schema_max_depth,
            settings.ask_user_validate_seconds,
        )


def check(schema: Any, limits: SchemaLimits) -> None:
    """Raise `SchemaRefused`, with a message a model can act on, unless `schema` is safe to use."""
    if not isinstance(schema, dict):
        raise SchemaRefused("the schema must be a JSON object")
    patterns, refs = _walk(schema, limits.max_depth)
    size = len(json.dumps(schema, separators=(",", ":"), ensure_ascii=False).encode(errors="surrogatepass"))
    if size > limits.max_bytes:
        raise SchemaRefused(f"the schema is {size} bytes; at most {limits.max_bytes} are accepted")
    for pattern in patterns:
        _compile(pattern)
    base = _draft(schema)
    try:
        base.check_schema(schema)
    except SchemaError as error:
        raise SchemaRefused(f"not a valid JSON schema: {_short(error.message)}") from None
    # Without $id every "#..." reference is relative to this document, so resolving it fetches nothing.
    resource = specification_with(_dialect(base)).create_resource(schema)
    resolver = _NO_RETRIEVAL.resolver_with_root(resource)
    for ref in refs:
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise SchemaRefused(f"the reference {_short(ref)!r} points nowhere in the schema") from None


def validate(instance: Any, schema: Any, limits: SchemaLimits) -> None:
    """Check `schema`, then `instance` against it within `limits.validate_seconds` (blocking)."""
    check(schema, limits)
    token = _deadline.set(time.monotonic() + limits.validate_seconds)
    try:
        validator = _safe(_draft(schema))(schema, registry=_NO_RETRIEVAL)
        error = best_match(validator.iter_errors(instance))
    except Unresolvable as unresolvable:
        raise SchemaRefused(f"a reference cannot be resolved: {_short(str(unresolvable))}") from None
    except _Overrun:
        raise _too_slow(limits) from None
    except RecursionError:
        raise AnswerUnverifiable("the answer nests too deeply to be checked against the schema") from None
    finally:
        _deadline.reset(token)
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "the answer"
        raise AnswerInvalid(f"{where}: {_short(error.message)}")


async def validate_off_loop(instance: Any, schema: Any, limits: SchemaLimits) -> None:
    """`validate` in a worker thread, so that the event loop keeps serving meanwhile."""
    # The deadline stops the thread itself; the timeout is a backstop should a step overrun it.
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the caller's cancellation.
    backstop = limits.validate_seconds + 1.0
    try:
        async with asyncio.timeout(backstop):
            await asyncio.to_thread(validate, instance, schema, limits)
    except TimeoutError:
        raise _too_slow(limits) from None


def _walk(schema: dict[str, Any], max_depth: int) -> tuple[list[str], list[str]]:
    """The regexes and references in `schema`, refusing what could leave it or nests too deep."""
    patterns: list[str] = []
    refs: list[str] = []
    keywords: set[str] = set()
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise SchemaRefused(f"the schema nests deeper than {max_depth} levels")
        if isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        refs.extend(_local_refs(node))
        if isinstance(node.get("$id"), str):
            raise SchemaRefused("$id is not accepted: the schema is one document, referred to with #...")
        if isinstance(node.get("pattern"), str):
            patterns.append(node["pattern"])
        if isinstance(node.get("patternProperties"), dict):
            patterns.extend(node["patternProperties"])
        keywords.update(node)
        stack.extend((value, depth + 1) for value in node.values())
    if {"patternProperties", "unevaluatedProperties"} <= keywords:
        # jsonschema matches patternProperties with Python's regex engine to find evaluated keys.
        raise SchemaRefused("unevaluatedProperties cannot be combined with patternProperties")
    return patterns, refs


def _local_refs(node: dict[str, Any]) -> Iterator[str]:
    for keyword in _REF_KEYWORDS:
        if isinstance(ref := node.get(keyword), str):
            if not ref.startswith("#"):
                raise SchemaRefused(
                    f"{keyword} {_short(ref)!r} leaves the schema; only local references (#...) are allowed"
                )
            yield ref


# By the URI of its metaschema, with or without its empty fragment. Drafts 3 and 4 are left out: their
# `id` keyword could not be told apart from a property named so.
_DRAFTS: dict[str, type[Validator]] = {
    str(cls.META_SCHEMA["$id"]).rstrip("#"): cls
    for cls in (
        validators.Draft202012Validator,
        validators.Draft201909Validator,
        validators.Draft7Validator,
        validators.Draft6Validator,
    )
}


def _draft(schema: dict[str, Any]) -> type[Validator]:
    declared = schema.get("$schema")
    if declared is None:
        return validators.Draft202012Validator
    found = _DRAFTS.get(declared.rstrip("#")) if isinstance(declared, str) else None
    if found is None:
        raise SchemaRefused(
            f"$schema {_short(str(declared))!r} is not draft 6, 7, 2019-09 or 2020-12; omit it for 2020-12"
        )
    return found


def _dialect(draft: type[Validator]) -> str:
    return str(draft.META_SCHEMA["$id"])


def _refuse_retrieval(uri: str) -> Resource[Any]:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


_NO_RETRIEVAL: Registry[Any] = Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def _compile(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except (re2.error, UnicodeError) as error:
        reason = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else str(error)
        raise SchemaRefused(
            f"the pattern {_short(pattern)!r} cannot be used ({reason}); "
            "backreferences and lookaround are not supported"
        ) from None


def _search(pattern: str, text: str) -> bool:
    try:
        return _compile(pattern).search(text) is not None
    except UnicodeError:
        return False


Keyword = Callable[[Any, Any, Any, dict[str, Any]], Iterator[ValidationError] | None]


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{_short(repr(instance), _EXCERPT_CHARS)} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [key for key in instance if key not in properties and not any(_search(p, key) for p in patterns)]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif additional is False and extras:
        names = ", ".join(repr(extra) for extra in sorted(extras))
        yield ValidationError(
            f"additional properties are not allowed ({_short(names, _EXCERPT_CHARS)} unexpected)"
        )


def _unique_items(
    validator: Any, unique: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    # jsonschema compares unhashable items pairwise (quadratic); a canonical form makes it linear.
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[Any] = set()
    for item in instance:
        key = _canonical(item)
        if key in seen:
            yield ValidationError(f"{_short(repr(instance), _EXCERPT_CHARS)} has non-unique elements")
            return
        seen.add(key)


def _canonical(value: Any) -> Any:
    """A hashable form equal exactly when jsonschema calls two JSON values equal (1 == 1.0, True != 1)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, dict):
        return ("object", frozenset((k, _canonical(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_canonical(v) for v in value))
    return ("value", value)


_OVERRIDES: dict[str, Keyword] = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
}


def _bounded(keyword: Keyword) -> Keyword:
    def within_deadline(validator: Any, value: Any, instance: Any, schema: dict[str, Any]) -> Any:
        if time.monotonic() > _deadline.get():
            raise _Overrun
        return keyword(validator, value, instance, schema)

    return within_deadline


class _Overrun(Exception):
    """Raised inside validation when its deadline has passed; unwinds every nested keyword."""


@cache
def _safe(base: type[Validator]) -> type[Validator]:
    """`base` with every regex through re2 and every keyword checking the deadline."""
    keywords: dict[str, Keyword] = dict(base.VALIDATORS)
    keywords.update((name, fn) for name, fn in _OVERRIDES.items() if name in keywords)
    bounded = {name: _bounded(fn) for name, fn in keywords.items()}
    extended: type[Validator] = validators.extend(base, bounded)  # type: ignore[no-untyped-call]
    return extended


def _too_slow(limits: SchemaLimits) -> AnswerUnverifiable:
    return AnswerUnverifiable(
        f"the answer could not be checked against the schema within {limits.validate_seconds:g} s"
    )


def _short(text: str, limit: int = _MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
