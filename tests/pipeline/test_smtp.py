"""`SmtpProvider` over real aiosmtpd sinks: classification by phase, session reuse."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from collections import Counter
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sendguard import ConfigError
from sendguard.pipeline.faults import Fault, FaultPlan
from sendguard.pipeline.sinks import SinkServer
from sendguard.pipeline.smtp import (
    KEY_HEADER,
    SmtpError,
    SmtpPermanent,
    SmtpProvider,
    SmtpTransient,
    SmtpUnknown,
    build_message,
    message_id,
)
from tests.pipeline._mail import SENDER, message, provider_for


@pytest.mark.parametrize(
    ("fault", "error", "phase", "code", "stored"),
    [
        (Fault.NONE, None, None, None, 1),
        (Fault.TRANSIENT, SmtpTransient, "reply", 451, 0),
        (Fault.PERMANENT, SmtpPermanent, "reply", 550, 0),
        (Fault.HANG, SmtpUnknown, "reply", None, 0),
        (Fault.DROP_AFTER_DATA, SmtpUnknown, "reply", None, 1),
        (Fault.REFUSE, SmtpTransient, "rcpt", None, 0),
    ],
)
def test_each_fault_is_classified_by_phase(fault, error, phase, code, stored):
    plan = FaultPlan({fault: 1.0} if fault is not Fault.NONE else {})
    with SinkServer("s", faults=plan, hang_seconds=10) as sink:
        provider = provider_for(sink, timeout=0.3)
        started = time.monotonic()
        if error is None:
            provider.send(message("send:1:1"))
        else:
            with pytest.raises(error) as raised:
                provider.send(message("send:1:1"))
            assert (raised.value.phase, raised.value.code) == (phase, code)
            assert raised.value.provider == "s"
        assert time.monotonic() - started < 0.3 + 1.0  # a hang ends at the timeout
        assert sink.counts_by_key()["send:1:1"] == stored
        provider.close()


def test_a_server_that_is_down_or_absent_is_transient():
    with SinkServer("s", faults=FaultPlan(down=True)) as sink:
        with pytest.raises(SmtpTransient) as raised:
            provider_for(sink).send(message("send:1:1"))
        assert raised.value.phase == "connect"
        assert sink.received() == []
    with socket.socket() as spare:  # a port nobody listens on
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    with pytest.raises(SmtpTransient, match="ConnectionRefusedError"):
        SmtpProvider("gone", "127.0.0.1", port, timeout=1).send(message("send:1:1"))


def test_one_session_serves_message_after_message():
    with SinkServer("s", faults=FaultPlan({Fault.TRANSIENT: 0.3, Fault.PERMANENT: 0.2})) as sink:
        provider = provider_for(sink)
        outcomes: Counter[str] = Counter()
        for i in range(40):
            try:
                provider.send(message(f"send:1:{i}"))
                outcomes["sent"] += 1
            except SmtpError as error:
                outcomes[type(error).__name__] += 1
        assert outcomes["sent"] and outcomes["SmtpTransient"] and outcomes["SmtpPermanent"]
        assert sink.connections() == 1  # a 4xx or 5xx after DATA keeps the session
        assert provider.sessions_opened == 1
        assert len(sink.received()) == outcomes["sent"]
        provider.close()


def test_a_session_is_replaced_after_an_unknown_and_after_the_relay_hangs_up():
    with SinkServer("s") as sink:
        provider = provider_for(sink, timeout=0.3)
        provider.send(message("send:1:1"))
        sink.faults = FaultPlan({Fault.DROP_AFTER_DATA: 1.0})
        with pytest.raises(SmtpUnknown):
            provider.send(message("send:1:2"))
        sink.faults = FaultPlan()
        provider.send(message("send:1:3"))
        assert sink.connections() == 2
        assert sink.drop_connections() == 1  # the relay restarts while the session idles
        provider.send(message("send:1:4"))  # a stale session is replaced, nothing lost
        assert sink.connections() == 3
        assert sink.counts_by_key() == Counter({f"send:1:{i}": 1 for i in (1, 2, 3, 4)})
        provider.close()


def test_a_sink_going_down_mid_session_is_transient_and_recovers():
    with SinkServer("s") as sink:
        provider = provider_for(sink)
        provider.send(message("send:1:1"))
        sink.faults.down = True
        with pytest.raises(SmtpTransient):
            provider.send(message("send:1:2"))
        sink.faults.down = False
        provider.send(message("send:1:3"))
        assert sink.counts_by_key() == Counter({"send:1:1": 1, "send:1:3": 1})
        provider.close()


@pytest.mark.parametrize("sessions", [1, 3])
def test_threads_share_a_bounded_pool(sessions):
    with SinkServer("s") as sink:
        provider = provider_for(sink, max_sessions=sessions)

        def send_batch(worker: int) -> None:
            for i in range(25):
                provider.send(message(f"send:{worker}:{i}"))

        threads = [threading.Thread(target=send_batch, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        counts = sink.counts_by_key()
        assert len(counts) == 100 and set(counts.values()) == {1}
        assert 1 <= sink.connections() <= sessions
        provider.close()


def test_after_close_sends_are_transient():
    with SinkServer("s") as sink:
        provider = provider_for(sink)
        provider.send(message("send:1:1"))
        provider.close()
        with pytest.raises(SmtpTransient, match="closed") as raised:
            provider.send(message("send:1:2"))
        assert raised.value.phase == "session"
        assert sink.counts_by_key() == Counter({"send:1:1": 1})


def test_the_message_carries_key_message_id_and_headers():
    sent = message("send:7:9", "reader@example.org")
    parsed = email.message_from_bytes(build_message(sent)[:-3], policy=email.policy.default)
    assert parsed[KEY_HEADER] == "send:7:9"
    assert parsed["Message-ID"] == message_id(sent)
    assert message_id(sent) == message_id(message("send:7:9", "other@example.org"))
    assert message_id(sent) != message_id(message("send:7:10"))
    assert (parsed["From"], parsed["To"], parsed["Subject"]) == (
        SENDER,
        "reader@example.org",
        "Issue send:7:9",
    )


@settings(max_examples=60, deadline=None)
@given(
    body=st.text(st.characters(exclude_categories=["Cs"]), max_size=300).map(
        lambda t: t.replace("\r", "")
    ),
    subject=st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=80)
    .map(str.strip)
    .filter(lambda t: t.isprintable() and len(t.splitlines()) <= 1),
)
def test_bodies_and_subjects_survive_the_wire_format(body, subject):
    sent = message("send:1:1")
    sent = type(sent)(sent.key, sent.sender, sent.recipient, subject, body)
    wire = build_message(sent)
    assert wire.endswith(b"\r\n.\r\n") and wire.isascii()
    lines = wire[:-3].split(b"\r\n")
    assert not any(line == b"." for line in lines)  # dot-stuffed: no early terminator
    unstuffed = b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)
    parsed = email.message_from_bytes(unstuffed, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == sent.subject
    content = parsed.get_content().replace("\r\n", "\n")
    expected = body if body.endswith("\n") or not body else body + "\n"
    assert content.rstrip("\n") == expected.rstrip("\n")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"name": ""}, "name"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "70000"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": True}, "True"),
        ({"max_sessions": 0}, "max_sessions"),
    ],
)
def test_bad_settings_are_refused(kwargs, named):
    settings_ = {"name": "p", "host": "127.0.0.1", "port": 2525} | kwargs
    with pytest.raises(ConfigError, match=named):
        SmtpProvider(**settings_)


def test_a_message_that_cannot_be_written_out_is_permanent_and_never_connects():
    with SinkServer("s") as sink:
        broken = message("send:1:1")
        object.__setattr__(broken, "body", "\ud800")  # past OutboundMessage's own checks
        provider = provider_for(sink)
        with pytest.raises(SmtpPermanent) as raised:
            provider.send(broken)
        assert raised.value.phase == "build"
        assert sink.connections() == 0
