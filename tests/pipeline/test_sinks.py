"""The SMTP sinks: fault plans, and each fault as a plain smtplib client sees it."""

from __future__ import annotations

import smtplib
import socket
import threading
import time
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sendguard import ConfigError
from sendguard.pipeline.faults import Fault, FaultPlan
from sendguard.pipeline.sinks import ReceivedMessage, SinkServer
from sendguard.pipeline.smtp import build_message
from tests.pipeline._mail import SENDER, message


def sendmail(sink: SinkServer, key: str, recipient: str, *, timeout: float = 2.0) -> None:
    """Send one message with smtplib's own high-level call (no sendguard client code)."""
    with smtplib.SMTP(sink.host, sink.port, timeout=timeout) as client:
        data = build_message(message(key, recipient))[: -len(b".\r\n")]
        client.sendmail(SENDER, [recipient], data.replace(b"\r\n..", b"\r\n."))


# --- fault plans ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rates", "named"),
    [
        ({Fault.TRANSIENT: -0.1}, "-0.1"),
        ({Fault.TRANSIENT: 1.5}, "1.5"),
        ({Fault.TRANSIENT: float("nan")}, "nan"),
        ({Fault.TRANSIENT: True}, "True"),
        ({Fault.TRANSIENT: "0.1"}, "'0.1'"),
        ({Fault.TRANSIENT: 0.6, Fault.HANG: 0.5}, "1.1"),
        ({Fault.NONE: 0.1}, "Fault.NONE"),
        ({"hang": 0.1}, "'hang'"),
    ],
)
def test_bad_rates_are_refused_naming_the_value(rates, named):
    with pytest.raises(ConfigError, match=r"FaultPlan\.rates") as refused:
        FaultPlan(rates)
    assert named in str(refused.value)


def test_bad_seed_and_sink_settings_are_refused():
    with pytest.raises(ConfigError, match="seed"):
        FaultPlan(seed="7")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="hang_seconds"):
        SinkServer("s", hang_seconds=0)
    with pytest.raises(ConfigError, match="name"):
        SinkServer("")


def test_fault_for_is_deterministic_and_retries_draw_again():
    plan = FaultPlan({Fault.TRANSIENT: 0.5}, seed=3)
    again = FaultPlan({Fault.TRANSIENT: 0.5}, seed=3)
    draws = [[plan.fault_for(f"r{i}@x.test", n) for n in range(4)] for i in range(200)]
    assert draws == [[again.fault_for(f"r{i}@x.test", n) for n in range(4)] for i in range(200)]
    assert any(row[0] is Fault.TRANSIENT and row[1] is Fault.NONE for row in draws)
    other_seed = FaultPlan({Fault.TRANSIENT: 0.5}, seed=4)
    assert draws != [
        [other_seed.fault_for(f"r{i}@x.test", n) for n in range(4)] for i in range(200)
    ]
    plan.down = True
    assert plan.fault_for("r0@x.test", 0) is Fault.REFUSE


@settings(max_examples=40, deadline=None)
@given(
    weights=st.lists(st.floats(0, 1), min_size=5, max_size=5),
    total=st.floats(0, 1),
    seed=st.integers(0, 2**32),
)
def test_fault_shares_follow_the_rates(weights, total, seed):
    kinds = [Fault.HANG, Fault.TRANSIENT, Fault.PERMANENT, Fault.DROP_AFTER_DATA, Fault.REFUSE]
    scale = total / sum(weights) if sum(weights) > 0 else 0.0
    rates = {kind: min(1.0, w * scale) for kind, w in zip(kinds, weights, strict=True)}
    if sum(rates.values()) > 1.0:
        return
    plan = FaultPlan(rates, seed=seed)
    draws = 3000
    seen = Counter(plan.fault_for(f"user{i}@example.com", 0) for i in range(draws))
    for kind in kinds:  # binomial: 4 standard deviations at most ~0.037 for 3,000 draws
        assert abs(seen[kind] / draws - rates[kind]) < 0.04
    assert abs(seen[Fault.NONE] / draws - (1 - sum(rates.values()))) < 0.04


# --- the sink as a plain client sees it ---------------------------------------------------


def test_a_healthy_sink_records_key_recipient_and_name():
    with SinkServer("alpha") as sink:
        assert sink.port > 0
        sendmail(sink, "send:1:1", "a@example.com")
        sendmail(sink, "send:1:2", "b@example.com")
        received = sink.received()
    assert [(m.key, m.recipient, m.provider) for m in received] == [
        ("send:1:1", "a@example.com", "alpha"),
        ("send:1:2", "b@example.com", "alpha"),
    ]
    assert received[0] == ReceivedMessage(
        "send:1:1", "a@example.com", "alpha", SENDER, received[0].message_id
    )
    assert received[0].message_id.startswith("<")
    assert sink.counts_by_key() == Counter({"send:1:1": 1, "send:1:2": 1})
    assert sink.connections() == 2


@pytest.mark.parametrize(
    ("fault", "error", "stored"),
    [
        (Fault.TRANSIENT, smtplib.SMTPDataError, 0),
        (Fault.PERMANENT, smtplib.SMTPDataError, 0),
        (Fault.DROP_AFTER_DATA, smtplib.SMTPServerDisconnected, 1),
        (Fault.REFUSE, smtplib.SMTPServerDisconnected, 0),
        (Fault.HANG, smtplib.SMTPServerDisconnected, 0),
    ],
)
def test_each_fault_on_the_wire(fault, error, stored):
    with SinkServer("s", faults=FaultPlan({fault: 1.0}), hang_seconds=5) as sink:
        started = time.monotonic()
        with pytest.raises(error) as raised:
            sendmail(sink, "send:1:1", "a@example.com", timeout=0.3)
        assert time.monotonic() - started < 2.0
        assert len(sink.received()) == stored
    if fault is Fault.TRANSIENT:
        assert raised.value.smtp_code == 451
    if fault is Fault.PERMANENT:
        assert raised.value.smtp_code == 550


def test_a_down_sink_resets_new_and_open_connections_promptly():
    with SinkServer("s") as sink:
        client = smtplib.SMTP(sink.host, sink.port, timeout=2)
        client.ehlo()
        sink.faults.down = True
        started = time.monotonic()
        with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
            client.mail(SENDER)
        with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
            sendmail(sink, "send:1:1", "a@example.com")
        assert time.monotonic() - started < 1.0
        client.close()
        sink.faults.down = False
        sendmail(sink, "send:1:2", "a@example.com")
        assert sink.counts_by_key() == Counter({"send:1:2": 1})


def test_a_retry_of_the_same_recipient_draws_a_new_fault():
    plan = FaultPlan({Fault.TRANSIENT: 0.5}, seed=11)
    recipient = next(
        f"r{i}@example.com"
        for i in range(1000)
        if plan.fault_for(f"r{i}@example.com", 0) is Fault.TRANSIENT
        and plan.fault_for(f"r{i}@example.com", 1) is Fault.NONE
    )
    with SinkServer("s", faults=plan) as sink:
        with pytest.raises(smtplib.SMTPDataError):
            sendmail(sink, "send:1:1", recipient)
        sendmail(sink, "send:1:1", recipient)
        assert sink.counts_by_key() == Counter({"send:1:1": 1})


def test_stop_lets_go_of_a_hung_message_at_once():
    sink = SinkServer("s", faults=FaultPlan({Fault.HANG: 1.0}), hang_seconds=60).start()
    errors: list[BaseException] = []

    def client() -> None:
        try:
            sendmail(sink, "send:1:1", "a@example.com", timeout=30)
        except (smtplib.SMTPException, OSError) as error:
            errors.append(error)

    thread = threading.Thread(target=client)
    thread.start()
    assert sink.wait_until(lambda s: s.hanging() == 1, timeout=5)
    started = time.monotonic()
    sink.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2.0
    assert len(errors) == 1  # the client saw the connection go, long before its timeout
    assert sink.received() == []
    with pytest.raises(ConnectionRefusedError):  # the port is closed
        socket.create_connection((sink.host, sink.port), timeout=1).close()


def test_drop_connections_resets_open_sessions():
    with SinkServer("s") as sink:
        client = smtplib.SMTP(sink.host, sink.port, timeout=2)
        client.ehlo()
        assert sink.drop_connections() == 1
        with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
            client.noop()
        client.close()
