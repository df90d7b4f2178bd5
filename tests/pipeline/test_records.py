"""Records on SQLite and on a real Postgres: one behaviour suite over both back ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sendguard.pipeline.records import Analytics, DeliveryState, Records
from sendguard.testing import FakeClock

S = DeliveryState


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def records(request, tmp_path) -> Iterator[Records]:
    clock = FakeClock()
    if request.param == "sqlite":
        opened = Records.sqlite(str(tmp_path / "records.db"), clock=clock)
    else:
        opened = Records.postgres(request.getfixturevalue("pipeline_dsn"), clock=clock)
    yield opened
    opened.close()


def addresses(count: int, domain: str = "example.org") -> list[str]:
    return [f"user{n}@{domain}" for n in range(count)]


def test_emails_by_id_and_by_archive_slug(records):
    email = records.create_email("Spring News: 50% off!", "<p>Hello</p>")
    assert records.email(email.id) == email
    assert records.email_by_slug(email.slug) == email
    assert email.slug.startswith("spring-news-50-off-")
    assert records.email(email.id + 1000) is None
    assert records.email_by_slug("nope") is None
    other = records.create_email("Spring News: 50% off!", "again")
    assert other.id != email.id and other.slug != email.slug
    with pytest.raises(ValueError, match="subject"):
        records.create_email("  ", "body")


def test_lists_drop_duplicate_addresses_and_refuse_bad_ones(records):
    mailing = records.create_list("customers", ["A@example.org", "a@example.org ", "b@x.org"])
    assert mailing.size == 2
    assert records.mailing_list(mailing.id) == mailing
    assert records.mailing_list(mailing.id + 1) is None
    with pytest.raises(ValueError, match="not an email address: 'nobody'"):
        records.create_list("broken", ["ok@example.org", "nobody"])


def test_sending_twice_queues_nothing_twice_and_deferred_rows_come_back(records):
    email = records.create_email("Hello", "body")
    mailing = records.create_list("all", addresses(5))
    queued = records.queue_deliveries(email.id, mailing.id)
    assert len(queued) == 5 and queued == sorted(queued)
    assert records.queue_deliveries(email.id, mailing.id) == []

    assert records.mark(email.id, queued, S.SENDING, only_from=(S.QUEUED,)) == 5
    assert records.mark(email.id, queued, S.SENDING, only_from=(S.QUEUED,)) == 0
    records.record(
        email.id,
        [
            (queued[0], S.SENT, "primary", "250 ok"),
            (queued[1], S.REJECTED, "primary", "550 no such user"),
            (queued[2], S.UNKNOWN, "primary", "connection dropped after DATA"),
            (queued[3], S.DEFERRED, None, "every provider unavailable"),
            (queued[4], S.SENT, "backup", "250 ok"),
        ],
    )
    assert records.state_counts(email.id) == {S.SENT: 2, S.REJECTED: 1, S.UNKNOWN: 1, S.DEFERRED: 1}
    # Only the deferred message (known not sent) is queued again.
    assert records.queue_deliveries(email.id, mailing.id) == [queued[3]]
    unknown = records.deliveries(email.id, (S.UNKNOWN,))
    assert [(d.recipient_id, d.address, d.provider) for d in unknown] == [
        (queued[2], "user2@example.org", "primary")
    ]
    assert [d.state for d in records.deliveries(email.id)] == [
        S.SENT, S.REJECTED, S.UNKNOWN, S.QUEUED, S.SENT
    ]  # fmt: skip
    assert records.recipients([queued[0], queued[4], 10**9]) == {
        queued[0]: "user0@example.org",
        queued[4]: "user4@example.org",
    }


def test_messages_whose_job_was_lost_are_queued_again_once_stale(records):
    clock = records.clock
    assert isinstance(clock, FakeClock)
    email = records.create_email("Hello", "body")
    mailing = records.create_list("all", addresses(3))
    ids = records.queue_deliveries(email.id, mailing.id)
    records.mark(email.id, ids[:1], S.SENDING)
    records.record(email.id, [(ids[2], S.SENT, "primary", "")])
    clock.advance(899)
    assert records.queue_deliveries(email.id, mailing.id) == []  # still in flight
    clock.advance(2)
    assert records.queue_deliveries(email.id, mailing.id) == ids[:2]  # not the sent one
    assert records.queue_deliveries(email.id, mailing.id, stale_after=0.5) == []


def test_analytics_are_read_as_stored_and_refreshed_only_when_stale(records):
    clock = records.clock
    assert isinstance(clock, FakeClock)
    email = records.create_email("Hello", "body")
    mailing = records.create_list("all", addresses(4))
    ids = records.queue_deliveries(email.id, mailing.id)
    assert records.analytics(email.id) is None  # nothing is computed on read
    assert records.stale_analytics() == [email.id]
    records.record(email.id, [(ids[0], S.SENT, "primary", ""), (ids[1], S.SENT, "backup", "")])

    computed = records.compute_analytics(records.stale_analytics())
    records.save_analytics(computed)
    stored = records.analytics(email.id)
    assert stored is not None
    assert stored.states == {"queued": 2, "sent": 2} and stored.total == 4
    assert stored.providers == {"primary": {"sent": 1}, "backup": {"sent": 1}}
    # Refreshed again while recent updates may still be committing, then left alone.
    assert records.stale_analytics() == [email.id]
    clock.advance(5)
    records.save_analytics(records.compute_analytics([email.id]))
    assert records.stale_analytics() == []
    records.record(email.id, [(ids[2], S.UNKNOWN, "primary", "dropped")])
    assert records.stale_analytics() == [email.id]
    assert records.analytics(email.id) == Analytics(
        email.id, stored.states, stored.providers, stored.as_of, clock.wall()
    )


def test_an_outcome_without_a_provider_keeps_the_recorded_one(records):
    email = records.create_email("Replayed", "body")
    mailing = records.create_list("one", addresses(1))
    [rid] = records.queue_deliveries(email.id, mailing.id)
    records.record(email.id, [(rid, S.UNKNOWN, "primary", "no reply after the body")])
    records.record(email.id, [(rid, S.UNKNOWN, None, "replayed: still unknown")])
    [row] = records.deliveries(email.id)
    assert (row.state, row.provider, row.detail) == (
        S.UNKNOWN,
        "primary",
        "replayed: still unknown",
    )


def test_ten_thousand_recipients_are_created_queued_and_recorded_in_bulk(records):
    email = records.create_email("Big send", "body")
    started = time.perf_counter()
    mailing = records.create_list("big", addresses(10_000))
    queued = records.queue_deliveries(email.id, mailing.id)
    records.mark(email.id, queued, S.SENDING, only_from=(S.QUEUED,))
    records.record(email.id, [(rid, S.SENT, "primary", "250 ok") for rid in queued])
    took = time.perf_counter() - started
    assert mailing.size == 10_000 and len(queued) == 10_000
    assert records.state_counts(email.id) == {S.SENT: 10_000}
    assert len(records.recipients(queued)) == 10_000
    assert took < 10, f"bulk operations took {took:.1f}s"


def test_concurrent_writers_from_many_threads(records):
    email = records.create_email("Threads", "body")
    mailing = records.create_list("all", addresses(400))
    ids = records.queue_deliveries(email.id, mailing.id)
    chunks = [ids[n : n + 50] for n in range(0, len(ids), 50)]
    errors: list[BaseException] = []

    def write(chunk: list[int]) -> None:
        try:
            records.mark(email.id, chunk, S.SENDING, only_from=(S.QUEUED,))
            for rid in chunk:
                records.record(email.id, [(rid, S.SENT, "primary", "")])
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert records.state_counts(email.id) == {S.SENT: 400}


OUTCOMES = st.sampled_from([S.SENDING, S.SENT, S.REJECTED, S.UNKNOWN, S.DEFERRED])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, 7), OUTCOMES) | st.just((-1, S.QUEUED)),
        max_size=25,
    )
)
def test_queueing_takes_exactly_the_unqueued_and_the_deferred(steps):
    """Whatever happened before, a send queues recipients with no row or a deferred row."""
    records = Records.sqlite()
    try:
        email = records.create_email("Property", "body")
        mailing = records.create_list("eight", addresses(8))
        ids = sorted(records.recipients(list(range(1, 100))))
        model: dict[int, S] = {}
        for index, state in steps:
            if index < 0:  # a send
                expected = [r for r in ids if model.get(r, S.DEFERRED) is S.DEFERRED]
                assert records.queue_deliveries(email.id, mailing.id) == expected
                model.update({r: S.QUEUED for r in expected})
            elif ids[index] in model:
                records.record(email.id, [(ids[index], state, None, "")])
                model[ids[index]] = state
        counts: dict[S, int] = {}
        for state in model.values():
            counts[state] = counts.get(state, 0) + 1
        assert records.state_counts(email.id) == counts
    finally:
        records.close()
