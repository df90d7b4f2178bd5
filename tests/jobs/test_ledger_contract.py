"""One behaviour suite for the ledger storage contract: memory, real Redis, real Postgres."""

from __future__ import annotations

import pytest

from sendguard.jobs import Decision, EntryState

DAY = 86400.0


def test_a_new_key_starts_an_attempt_that_holds_a_lease(ledger_env):
    store, _, name = ledger_env
    decision, entry = store.begin(name, "send:1", "fp", "tok-a", 60.0, False)
    assert decision is Decision.STARTED
    assert (entry.state, entry.attempts, entry.token, entry.fingerprint) == (
        EntryState.IN_PROGRESS,
        1,
        "tok-a",
        "fp",
    )
    assert entry.lease_remaining == pytest.approx(60.0)
    assert store.get(name, "send:1") == entry
    assert store.get(name, "send:2") is None


def test_a_concurrent_duplicate_is_refused_while_the_lease_holds(ledger_env):
    store, clock, name = ledger_env
    store.begin(name, "k", "fp", "tok-a", 60.0, False)
    clock.advance(20)
    decision, entry = store.begin(name, "k", "fp", "tok-b", 60.0, False)
    assert decision is Decision.IN_PROGRESS
    assert entry.token == "tok-a"
    assert entry.lease_remaining == pytest.approx(40.0)


def test_completion_records_the_result_and_replays_return_it(ledger_env):
    store, clock, name = ledger_env
    store.begin(name, "k", "fp", "tok-a", 60.0, False)
    done, entry = store.finish(name, "k", "tok-a", EntryState.COMPLETED, '"msg-1"', "d1", "", DAY)
    assert done
    assert entry is not None
    assert (entry.state, entry.result, entry.result_digest) == (
        EntryState.COMPLETED,
        '"msg-1"',
        "d1",
    )
    clock.advance(3600)
    decision, again = store.begin(name, "k", "fp", "tok-b", 60.0, False)
    assert decision is Decision.REPLAYED
    assert (again.result, again.token, again.attempts) == ('"msg-1"', "tok-a", 1)


def test_a_result_that_was_not_recorded_stays_none(ledger_env):
    store, _, name = ledger_env
    store.begin(name, "k", "fp", "tok-a", 60.0, False)
    store.finish(name, "k", "tok-a", EntryState.COMPLETED, None, "", "", DAY)
    entry = store.get(name, "k")
    assert entry is not None
    assert entry.result is None


def test_the_same_key_with_another_payload_is_a_mismatch(ledger_env):
    store, _, name = ledger_env
    store.begin(name, "k", "fp-1", "tok-a", 60.0, False)
    decision, entry = store.begin(name, "k", "fp-2", "tok-b", 60.0, False)
    assert decision is Decision.MISMATCH
    assert entry.fingerprint == "fp-1"


def test_a_failed_attempt_lets_the_next_call_run_again(ledger_env):
    store, _, name = ledger_env
    store.begin(name, "k", "fp", "tok-a", 60.0, False)
    store.finish(name, "k", "tok-a", EntryState.FAILED, None, "", "550 refused", DAY)
    decision, entry = store.begin(name, "k", "fp", "tok-b", 60.0, False)
    assert decision is Decision.STARTED
    assert (entry.attempts, entry.token, entry.state, entry.detail) == (
        2,
        "tok-b",
        EntryState.IN_PROGRESS,
        "",
    )


def test_an_abandoned_attempt_becomes_unknown_and_is_never_rerun(ledger_env):
    store, clock, name = ledger_env
    store.begin(name, "k", "fp", "tok-a", 60.0, False)
    clock.advance(61)
    decision, entry = store.begin(name, "k", "fp", "tok-b", 60.0, False)
    assert decision is Decision.UNKNOWN
    assert entry.state is EntryState.UNKNOWN
    assert "lease expired" in entry.detail
    clock.advance(30 * DAY)  # unknown entries are kept until resolved
    assert store.begin(name, "k", "fp", "tok-c", 60.0, False)[0] is Decision.UNKNOWN


def test_with_retry_abandoned_the_next_call_takes_over(ledger_env):
    store, clock, name = ledger_env
    store.begin(name, "k", "fp", "tok-a", 60.0, True)
    clock.advance(61)
    decision, entry = store.begin(name, "k", "fp", "tok-b", 60.0, True)
    assert decision is Decision.STARTED
    assert (entry.token, entry.attempts) == ("tok-b", 2)
    # The first attempt's late report is ignored: it no longer holds the entry.
    assert store.finish(name, "k", "tok-a", EntryState.COMPLETED, "1", "", "", DAY)[0] is False


def test_only_the_holder_may_finish_even_late_from_unknown(ledger_env):
    store, clock, name = ledger_env
    store.begin(name, "k", "fp", "tok-a", 60.0, False)
    assert store.finish(name, "k", "tok-x", EntryState.COMPLETED, "1", "", "", DAY)[0] is False
    clock.advance(61)
    assert store.begin(name, "k", "fp", "tok-b", 60.0, False)[0] is Decision.UNKNOWN
    done, entry = store.finish(name, "k", "tok-a", EntryState.COMPLETED, '"late"', "d", "", DAY)
    assert done  # the slow worker reports after all: the best news an operator can get
    assert entry is not None
    assert entry.state is EntryState.COMPLETED
    assert store.unknowns(name) == []


def test_renew_extends_only_the_holders_lease(ledger_env):
    store, clock, name = ledger_env
    store.begin(name, "k", "fp", "tok-a", 60.0, False)
    clock.advance(50)
    assert store.renew(name, "k", "tok-b", 60.0)[0] is False
    done, entry = store.renew(name, "k", "tok-a", 60.0)
    assert done
    assert entry is not None
    assert entry.lease_remaining == pytest.approx(60.0)
    clock.advance(50)
    assert store.begin(name, "k", "fp", "tok-c", 60.0, False)[0] is Decision.IN_PROGRESS


def test_unknowns_lists_reported_and_abandoned_entries_oldest_first(ledger_env):
    store, clock, name = ledger_env
    store.begin(name, "dropped", "fp", "tok-a", 60.0, False)
    store.finish(
        name, "dropped", "tok-a", EntryState.UNKNOWN, None, "", "TimeoutError: after DATA", DAY
    )
    clock.advance(1)
    store.begin(name, "killed", "fp", "tok-b", 60.0, False)
    store.begin(name, "done", "fp", "tok-c", 60.0, False)
    store.finish(name, "done", "tok-c", EntryState.COMPLETED, "1", "", "", DAY)
    store.begin(name, "running", "fp", "tok-d", 600.0, False)
    clock.advance(61)
    listed = store.unknowns(name)
    assert [(e.key, e.state) for e in listed] == [
        ("dropped", EntryState.UNKNOWN),
        ("killed", EntryState.UNKNOWN),
    ]
    assert listed[0].detail == "TimeoutError: after DATA"
    assert "lease expired" in listed[1].detail
    assert [e.key for e in store.unknowns(name, limit=1)] == ["dropped"]


def test_an_operator_resolves_unknowns_either_way(ledger_env):
    store, _clock, name = ledger_env
    for key in ("sent", "not-sent"):
        store.begin(name, key, "fp", f"tok-{key}", 60.0, False)
        store.finish(name, key, f"tok-{key}", EntryState.UNKNOWN, None, "", "dropped", DAY)
    done, entry = store.resolve(name, "sent", EntryState.COMPLETED, "in the provider's log", DAY)
    assert done
    assert entry is not None
    assert (entry.state, entry.detail) == (EntryState.COMPLETED, "in the provider's log")
    assert entry.result == "null"  # it happened; what it returned is not known
    store.resolve(name, "not-sent", EntryState.FAILED, "not in the log", DAY)
    assert store.unknowns(name) == []
    assert store.begin(name, "sent", "fp", "tok-x", 60.0, False)[0] is Decision.REPLAYED
    assert store.begin(name, "not-sent", "fp", "tok-y", 60.0, False)[0] is Decision.STARTED
    # Only unknown (or abandoned) entries can be resolved.
    assert store.resolve(name, "not-sent", EntryState.COMPLETED, "x", DAY)[0] is False
    assert store.resolve(name, "missing", EntryState.COMPLETED, "x", DAY) == (False, None)


def test_settled_entries_expire_after_the_retention(ledger_env):
    store, clock, name = ledger_env
    store.begin(name, "k", "fp", "tok-a", 60.0, False)
    store.finish(name, "k", "tok-a", EntryState.COMPLETED, "1", "", "", 100.0)
    clock.advance(99)
    assert store.get(name, "k") is not None
    clock.advance(2)
    assert store.get(name, "k") is None
    decision, entry = store.begin(name, "k", "other-fp", "tok-b", 60.0, False)
    assert decision is Decision.STARTED  # a fresh entry: the old payload is forgotten
    assert entry.attempts == 1


def test_ledgers_sharing_a_store_are_kept_apart(ledger_env):
    store, _, name = ledger_env
    store.begin(name, "k", "fp", "tok-a", 60.0, False)
    assert store.begin(f"{name}-other", "k", "fp2", "tok-b", 60.0, False)[0] is Decision.STARTED


def test_keys_with_any_characters_round_trip(ledger_env):
    store, _, name = ledger_env
    key = "send:{msg 42}:ä\n" + "x" * 300
    store.begin(name, key, "fp", "tok", 60.0, False)
    entry = store.get(name, key)
    assert entry is not None
    assert entry.key == key
