"""The payload walk: exact JSON sizes, the type policy, the paths, and the early exit."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sendguard.jobs import PayloadGuard, PayloadPolicy, PayloadRejected, Violation
from sendguard.jobs._measure import Refusal, encode_extra, measure_payload, measure_value

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=30,
)


def json_size(args: object, kwargs: object) -> int:
    return len(json.dumps([args, kwargs], default=encode_extra))


@settings(max_examples=300, deadline=None)
@given(
    args=st.lists(json_values, max_size=4),
    kwargs=st.dictionaries(st.text(max_size=6), json_values, max_size=4),
    budget=st.integers(16, 400),
)
def test_accepts_exactly_the_json_native_payloads_within_budget(args, kwargs, budget):
    guard = PayloadGuard(PayloadPolicy(max_bytes=budget, warn_bytes=None, max_depth=64), hooks=[])
    size = json_size(args, kwargs)
    if size <= budget:
        assert guard.check("app.jobs.f", args, kwargs).size == size
    else:
        with pytest.raises(PayloadRejected) as refused:
            guard.check("app.jobs.f", args, kwargs)
        assert refused.value.violation is Violation.SIZE
        assert budget < refused.value.size <= size  # a lower bound, past the budget


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_the_measured_size_is_json_dumps_length(value):
    assert measure_value(value, 10**9, depth=64) == len(json.dumps(value))


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Kind(enum.StrEnum):
    SENT = "sent"


def test_allow_listed_values_count_as_the_strings_they_are_written_as():
    args = [uuid.UUID(int=7), dt.datetime(2025, 1, 30, 9, 22, tzinfo=dt.UTC), dt.date(2025, 1, 30)]
    kwargs = {
        "amount": decimal.Decimal("12.50"),
        "colour": Colour.RED,
        "level": Level.HIGH,
        "kind": Kind.SENT,
    }
    assert measure_payload(args, kwargs, 10_000) == json_size(args, kwargs)
    assert json.loads(json.dumps(kwargs, default=encode_extra)) == {
        "amount": "12.50",
        "colour": "red",
        "level": 3,
        "kind": "sent",
    }


@dataclasses.dataclass
class Email:
    id: int
    body: str


class Model:
    pk = 9


@pytest.mark.parametrize(
    ("args", "kwargs", "violation", "path", "advice"),
    [
        ((Email(1, "x"),), {}, Violation.TYPE, "args[0]", "pass its id"),
        ((1, [2, {"m": Model()}]), {}, Violation.TYPE, "args[1][1]['m']", "pass its pk"),
        ((), {"blob": b"123"}, Violation.TYPE, "kwargs['blob']", "store the bytes elsewhere"),
        ((), {"ids": {1, 2}}, Violation.TYPE, "kwargs['ids']", "pass a sorted list"),
        ((print,), {}, Violation.TYPE, "args[0]", "dotted name"),
        (({1: "a"},), {}, Violation.KEY, "args[0]", "dict keys must be str"),
        ((float("nan"),), {}, Violation.VALUE, "args[0]", "no NaN"),
        ((decimal.Decimal("inf"),), {}, Violation.VALUE, "args[0]", "no NaN"),
        ((10**5000,), {}, Violation.VALUE, "args[0]", "pass it as a str"),
        (("x" * 70_000,), {}, Violation.SIZE, "args[0]", "store large content"),
    ],
)
def test_rejections_name_the_path_and_say_what_to_pass(args, kwargs, violation, path, advice):
    guard = PayloadGuard(hooks=[])
    with pytest.raises(PayloadRejected) as refused:
        guard.check("app.jobs.send", args, kwargs, queue="five_minutes")
    error = refused.value
    assert (error.violation, error.path, error.function, error.queue) == (
        violation,
        path,
        "app.jobs.send",
        "five_minutes",
    )
    assert advice in error.advice
    assert str(error).startswith("app.jobs.send on queue 'five_minutes': ")
    assert f"{path} " in str(error)
    assert str(error).endswith(error.advice)


def test_the_incident_payload_is_refused_with_the_advice_the_postmortem_gave():
    guard = PayloadGuard(hooks=[])
    with pytest.raises(PayloadRejected) as refused:
        guard.check("app.jobs.send_email", (Email(1, "x" * 100), ["a@b.c"]), queue="five_minutes")
    assert str(refused.value) == (
        "app.jobs.send_email on queue 'five_minutes': args[0] is "
        "tests.jobs.test_measure.Email: pass its id"
    )


def test_a_circular_reference_is_refused_by_depth():
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(PayloadRejected) as refused:
        PayloadGuard(hooks=[]).check("f", (loop,))
    assert refused.value.violation is Violation.DEPTH
    assert "circular reference" in str(refused.value)


class CountingList(list[object]):
    iterated = 0

    def __iter__(self) -> Iterator[object]:
        CountingList.iterated += 1
        return super().__iter__()


def test_a_huge_list_is_refused_before_its_items_are_visited():
    items = CountingList([1] * 1_000_000)
    with pytest.raises(Refusal) as refused:
        measure_payload([items], {}, 64 * 1024)
    assert CountingList.iterated == 0  # the separators alone were over the budget
    assert refused.value.violation is Violation.SIZE


def test_a_5_mb_string_is_refused_by_its_length_without_escaping_it():
    body = '"' * 5_000_000  # escaping would double it to 10 MB
    with pytest.raises(PayloadRejected) as refused:
        PayloadGuard(hooks=[]).check("f", ({"body": body},))
    # The reported size is the unescaped lower bound: the string was never escaped.
    assert 5_000_000 < refused.value.size < 5_000_100
    assert "args[0]['body'] is a 4.8 MiB str" in str(refused.value)


def test_strict_json_policy_refuses_the_allow_list():
    guard = PayloadGuard(PayloadPolicy(extra_types=()), hooks=[])
    with pytest.raises(PayloadRejected) as refused:
        guard.check("f", (uuid.UUID(int=1),))
    assert refused.value.path == "args[0]"
    assert "uuid.UUID" in str(refused.value)
