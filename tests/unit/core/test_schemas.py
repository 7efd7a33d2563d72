"""What ask_user schemas are accepted, and how answers are checked against them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.core import schemas
from services.core.schemas import AnswerInvalid, AnswerUnverifiable, SchemaLimits, SchemaRefused

LIMITS = SchemaLimits(max_bytes=16 * 1024, max_depth=32, validate_seconds=2.0)
CATASTROPHIC = "^(a+)+$"


def refusal(schema: Any) -> str:
    with pytest.raises(SchemaRefused) as refused:
        schemas.check(schema, LIMITS)
    return refused.value.message


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "http://127.0.0.1:9/schema.json"},
        {"properties": {"a": {"$ref": "other.json#/a"}}},
        {"items": {"$dynamicRef": "https://example.test/meta#node"}},
        {"$schema": "https://json-schema.org/draft/2019-09/schema", "$recursiveRef": "x.json"},
    ],
)
def test_a_reference_that_leaves_the_schema_is_refused(schema: dict[str, Any]) -> None:
    assert "only local references" in refusal(schema)


def test_id_is_refused_since_it_would_move_references_elsewhere() -> None:
    hidden = {"$ref": "#/x-hidden", "x-hidden": {"$id": "http://127.0.0.1:9/h", "$ref": "#/a"}}
    assert "$id" in refusal(hidden)


def test_only_known_drafts_may_be_named() -> None:
    assert "not draft" in refusal({"$schema": "http://127.0.0.1:9/meta"})
    assert "not draft" in refusal({"$schema": "http://json-schema.org/draft-04/schema#"})
    for draft in ("http://json-schema.org/draft-07/schema#", "https://json-schema.org/draft/2020-12/schema"):
        schemas.check({"$schema": draft, "type": "string"}, LIMITS)


def test_size_and_depth_are_limited() -> None:
    assert "bytes" in refusal({"enum": ["x" * 20_000]})
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        deep = {"items": deep}
    assert "deeper than 32" in refusal(deep)


def test_a_schema_must_itself_be_valid() -> None:
    assert "not a valid JSON schema" in refusal({"type": "banana"})
    assert "must be a JSON object" in refusal(["type", "string"])


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=a)b", "(?<!a)b", "["])
def test_patterns_re2_cannot_run_are_refused(pattern: str) -> None:
    assert "cannot be used" in refusal({"pattern": pattern})
    assert "cannot be used" in refusal({"patternProperties": {pattern: {}}})


def test_unevaluated_properties_do_not_mix_with_pattern_properties() -> None:
    assert "unevaluatedProperties" in refusal(
        {"patternProperties": {"^a": {}}, "properties": {"b": {"unevaluatedProperties": False}}}
    )


def test_a_reference_must_point_into_the_schema() -> None:
    assert "points nowhere" in refusal({"properties": {"c": {"$ref": "#/$defs/missing"}}})


def test_local_references_and_anchors_work() -> None:
    schema = {
        "$defs": {
            "color": {"enum": ["red", "blue"]},
            "tree": {"$anchor": "tree", "type": "array", "items": {"$ref": "#tree"}},
        },
        "type": "object",
        "properties": {"color": {"$ref": "#/$defs/color"}, "tree": {"$ref": "#/$defs/tree"}},
    }
    schemas.validate({"color": "red", "tree": [[], [[]]]}, schema, LIMITS)
    with pytest.raises(AnswerInvalid) as invalid:
        schemas.validate({"color": "green"}, schema, LIMITS)
    assert invalid.value.message.startswith("color: 'green'")
    with pytest.raises(AnswerInvalid, match="tree/1/0"):
        schemas.validate({"color": "red", "tree": [[], [3]]}, schema, LIMITS)


def test_catastrophic_patterns_run_in_linear_time() -> None:
    answer = "a" * 5000 + "!"
    with pytest.raises(AnswerInvalid, match="does not match"):
        schemas.validate(answer, {"type": "string", "pattern": CATASTROPHIC}, LIMITS)
    keyed = {"type": "object", "patternProperties": {CATASTROPHIC: {}}, "additionalProperties": False}
    with pytest.raises(AnswerInvalid, match="not allowed"):
        schemas.validate({answer: 1}, keyed, LIMITS)
    schemas.validate({"a" * 5000: 1}, keyed, LIMITS)


def test_unique_items_compares_as_json_does_in_linear_time() -> None:
    unique = {"type": "array", "uniqueItems": True}
    schemas.validate([{"n": i} for i in range(50_000)], unique, LIMITS)
    schemas.validate([1, True, "1", [1], {"a": [1]}], unique, LIMITS)
    for repeated in ([{"a": 1}, {"a": 1.0}], [[1, {"b": None}], [1, {"b": None}]], [False, False]):
        with pytest.raises(AnswerInvalid, match="non-unique"):
            schemas.validate(repeated, unique, LIMITS)


def test_validation_past_its_deadline_is_unverifiable() -> None:
    costly = {"type": "array", "items": {"anyOf": [{"required": [f"k{i}"]} for i in range(30)]}}
    quick = SchemaLimits(max_bytes=16 * 1024, max_depth=32, validate_seconds=0.05)
    with pytest.raises(AnswerUnverifiable, match=r"within 0\.05 s"):
        schemas.validate([{"z": 1}] * 100_000, costly, quick)


def test_an_answer_nested_beyond_python_recursion_is_unverifiable() -> None:
    answer: list[Any] = []
    for _ in range(5000):
        answer = [answer]
    with pytest.raises(AnswerUnverifiable, match="nests too deeply"):
        schemas.validate(answer, {"type": "array", "items": {"$ref": "#"}}, LIMITS)


async def test_off_the_loop_the_loop_keeps_running_while_an_answer_is_checked() -> None:
    costly = {"type": "array", "items": {"anyOf": [{"required": [f"k{i}"]} for i in range(30)]}}
    checking = asyncio.create_task(
        schemas.validate_off_loop([{"z": 1}] * 100_000, costly, SchemaLimits(16 * 1024, 32, 1.0))
    )
    ticks = 0
    while not checking.done():
        await asyncio.sleep(0)
        ticks += 1
    with pytest.raises(AnswerUnverifiable):
        await checking
    assert ticks > 100
