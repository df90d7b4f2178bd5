"""Client addresses behind proxies, and key functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sendguard import ConfigError
from sendguard.ratelimit import RequestInfo, TrustedProxies, by_api_key, by_client_ip, by_header
from sendguard.ratelimit._request import resolve_client_ip

PROXIES = TrustedProxies(["10.0.0.0/8", "2001:db8::/32"])


def test_an_untrusted_peer_cannot_choose_its_address():
    spoofed = {"x-forwarded-for": "1.2.3.4", "forwarded": "for=5.6.7.8"}
    assert resolve_client_ip("203.0.113.9", spoofed, PROXIES) == "203.0.113.9"


def test_behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client():
    chain = {"x-forwarded-for": "6.6.6.6, 198.51.100.7, 10.1.1.1"}  # 6.6.6.6 was sent by the client
    assert resolve_client_ip("10.0.0.2", chain, PROXIES) == "198.51.100.7"


def test_forwarded_header_wins_and_handles_ports_and_ipv6():
    headers = {"forwarded": 'for="[2001:db8:cafe::17]:4711", for=192.0.2.60:8080;proto=https'}
    assert resolve_client_ip("10.0.0.2", headers, PROXIES) == "192.0.2.60"
    only_v6 = {"forwarded": 'for="[2001:db9::1]"'}
    assert resolve_client_ip("2001:db8::1", only_v6, PROXIES) == "2001:db9::1"


def test_all_trusted_hops_fall_back_to_the_first():
    assert (
        resolve_client_ip("10.0.0.2", {"x-forwarded-for": "10.9.9.9, 10.1.1.1"}, PROXIES)
        == "10.9.9.9"
    )
    assert resolve_client_ip("10.0.0.2", {}, PROXIES) == "10.0.0.2"
    assert resolve_client_ip(None, {}, PROXIES) == "unknown"


def test_bad_memo_size_names_the_value():
    with pytest.raises(ConfigError, match=r"memo_size.*got 0"):
        TrustedProxies(["10.0.0.0/8"], memo_size=0)


def test_bad_proxy_config_names_the_value():
    with pytest.raises(ConfigError, match=r"'10\.0\.0\.300'"):
        TrustedProxies(["10.0.0.300"])


def test_key_functions():
    req = RequestInfo(
        "GET", "/x", "GET /x", {"authorization": "Bearer t", "x-user": "u1"}, "1.1.1.1"
    )
    assert by_api_key(req) == "authorization:Bearer t"
    assert by_header("X-User")(req) == "x-user:u1"
    assert by_client_ip(req) == "ip:1.1.1.1"
    bare = RequestInfo("GET", "/x", "GET /x", {}, "1.1.1.1")
    assert by_api_key(bare) is None


def test_asgi_scope_headers_are_a_lazy_case_insensitive_mapping():
    from sendguard.asgi import ScopeHeaders

    raw = [
        (b"Authorization", b"Bearer t"),
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"X-Dup", b"a"),
        (b"x-dup", b"b"),
    ]
    headers = ScopeHeaders(raw)
    assert headers.get("authorization") == "Bearer t"
    assert headers["x-forwarded-for"] == "1.2.3.4"
    assert headers.get("missing", "-") == "-"
    assert dict(headers) == {
        "authorization": "Bearer t",
        "x-forwarded-for": "1.2.3.4",
        "x-dup": "a",
    }
    with pytest.raises(KeyError):
        headers["nope"]


@given(
    addresses=st.lists(
        st.one_of(
            st.ip_addresses().map(str),
            st.sampled_from(["10.0.0.1", "10.255.255.255", "2001:db8::7", "not-an-ip", ""]),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_remembered_answers_are_the_computed_ones_and_the_memory_is_bounded(addresses):
    import ipaddress

    networks = ["10.0.0.0/8", "2001:db8::/32"]
    trusted = TrustedProxies(networks, memo_size=8)  # small, so the bound is reached
    for address in addresses * 2:  # each asked twice: computed, then remembered
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            expected = False
        else:
            expected = any(ip in ipaddress.ip_network(n) for n in networks)
        assert (address in trusted) is expected
        assert len(trusted._memo) <= 8


_HEADER_NAMES = st.sampled_from(
    [b"authorization", b"Authorization", b"AUTHORIZATION", b"x-user", b"X-User", b"host", b"x"]
)


@given(
    raw=st.lists(
        st.tuples(_HEADER_NAMES, st.binary(max_size=6).filter(lambda v: b"\x00" not in v)),
        max_size=6,
    ),
    name=st.sampled_from(["Authorization", "x-user", "X-USER"]),
)
def test_a_header_key_reads_raw_asgi_headers_as_it_reads_a_request(raw, name):
    from sendguard.asgi import ScopeHeaders

    key = by_header(name)
    request = RequestInfo("GET", "/x", "GET /x", ScopeHeaders(raw), "1.1.1.1")
    assert key.from_raw(raw) == key(request)


def test_a_header_key_needs_a_name():
    with pytest.raises(ConfigError, match="got ''"):
        by_header("")
    assert repr(by_header("X-Tenant")) == "by_header('x-tenant')"
