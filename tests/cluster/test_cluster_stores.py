"""Every Redis-backed guard on a real three-node Redis Cluster, through its public constructor."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster

from sendguard import BreakerOpen
from sendguard._core.redis_script import Script
from sendguard._core.store import connect_redis, connect_redis_async
from sendguard.breakers import Breaker, BreakerRegistry, State
from sendguard.jobs import EntryState, Heartbeats, Ledger, LedgerPolicy
from sendguard.ratelimit import Bulkhead, Limit, Pacer, RateLimiter, parse_rates
from sendguard.ratelimit.redis_backend import RedisLimitBackend
from sendguard.testing import FakeClock
from sendguard.testing.servers import RedisClusterServer

pytestmark = pytest.mark.redis

_TAG = re.compile(rb"\{([^}]*)\}")


def _script_calls(nodes: list[redis.Redis]) -> int:
    """EVAL + EVALSHA commands the whole cluster has run since the last CONFIG RESETSTAT."""
    total = 0
    for node in nodes:
        stats = node.info("commandstats")
        total += sum(
            int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("eval", "evalsha")
        )
    return total


def test_a_cluster_test_bed_stops_cleanly_and_needs_three_nodes():
    with pytest.raises(ValueError, match="nodes=2"):
        RedisClusterServer(nodes=2)
    cluster = RedisClusterServer()
    with cluster:
        assert cluster.is_running
        dirs = [node.log_path.parent for node in cluster.nodes if node.log_path]
        assert len(dirs) == 3 and all((d / "nodes.conf").exists() for d in dirs)
    assert not cluster.is_running
    assert not any(d.exists() for d in dirs)


def test_the_test_bed_is_a_healthy_three_node_cluster(redis_cluster, cluster_nodes):
    for node in cluster_nodes:
        info = node.cluster("INFO")
        assert (info["cluster_state"], info["cluster_known_nodes"]) == ("ok", "3")
        assert info["cluster_slots_assigned"] == "16384"
    assert redis_cluster.url == f"redis+cluster://127.0.0.1:{redis_cluster.port}/0"


def test_cluster_urls_give_cluster_clients_and_plain_urls_do_not(cluster_url):
    client = connect_redis(cluster_url)
    assert isinstance(client, redis.cluster.RedisCluster)
    assert len(client.get_primaries()) == 3  # type: ignore[no-untyped-call]
    assert client.set("sendguard:{t:x}:a", 1)
    assert client.get("sendguard:{t:x}:a") == b"1"
    client.close()
    plain = connect_redis("redis://127.0.0.1:1/0")  # no connection is made yet
    assert type(plain) is redis.Redis
    assert type(connect_redis_async("redis://127.0.0.1:1/0")) is redis.asyncio.Redis

    async def main() -> None:
        aclient = connect_redis_async(cluster_url)
        assert isinstance(aclient, redis.asyncio.cluster.RedisCluster)
        assert await aclient.set("sendguard:{t:y}:a", 2)
        assert await aclient.get("sendguard:{t:y}:a") == b"2"
        await aclient.aclose()

    asyncio.run(main())


def test_scripts_run_by_sha_on_the_keys_node_and_fall_back_to_eval(cluster_url, cluster_nodes):
    script = Script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    client = connect_redis(cluster_url)
    keys = [f"sendguard:{{t:{i}}}:n" for i in range(6)]  # spread over the nodes
    assert [script.run(client, [k], [2]) for k in keys] == [2] * 6  # NOSCRIPT, then EVAL
    assert [script.run(client, [k], [3]) for k in keys] == [5] * 6  # EVALSHA now known

    async def main() -> list[int]:
        aclient = connect_redis_async(cluster_url)
        try:
            return [await script.arun(aclient, [k], [1]) for k in keys]
        finally:
            await aclient.aclose()

    for node in cluster_nodes:
        node.script_flush()
    assert asyncio.run(main()) == [6] * 6
    client.close()


def test_a_request_s_limits_take_one_round_trip_and_admit_exactly_the_limit(
    cluster_url, cluster_nodes
):
    limits = [Limit("route:POST /v1/emails", r) for r in parse_rates("3/minute;10/hour")]
    one, two = RateLimiter(cluster_url), RateLimiter(cluster_url)
    try:
        assert one.check("tenant-a", limits).allowed  # loads the script on its node
        for node in cluster_nodes:
            node.config_resetstat()
        decision = two.check("tenant-a", limits)
        assert decision.allowed and not decision.degraded
        assert _script_calls(cluster_nodes) == 1  # both limits, one EVALSHA
        answers = [(one if i % 2 else two).check("tenant-a", limits) for i in range(6)]
        assert [d.allowed for d in answers] == [True, False, False, False, False, False]
        assert not any(d.degraded for d in answers)
        assert one.shared and two.shared
        assert one.check("tenant-b", limits).allowed  # another client, another count

        async def main() -> bool:
            allowed = (await two.acheck("tenant-a", limits)).allowed
            assert isinstance(two.backend, RedisLimitBackend)
            await two.backend.aclose()  # the asyncio client belongs to this loop
            return allowed

        assert asyncio.run(main()) is False  # the asyncio cluster client sees the same count
    finally:
        one.close()
        two.close()


def test_a_breaker_tripped_in_one_registry_is_open_in_another(cluster_url):
    one = BreakerRegistry(Breaker.consecutive(1, open_for=30), store=cluster_url)
    two = BreakerRegistry(
        Breaker.consecutive(1, open_for=30), store=cluster_url, sync_interval=0.01
    )
    with pytest.raises(OSError, match="down"):
        one.get("provider:primary").call(lambda: (_ for _ in ()).throw(OSError("down")))
    assert two.info("provider:primary").state is State.OPEN
    with pytest.raises(BreakerOpen):
        two.get("provider:primary").call(lambda: "served")
    assert two.info("provider:backup").state is State.CLOSED
    assert {i.name for i in two.list()} >= {"provider:primary"}


def test_the_idempotency_ledger_begins_completes_and_replays(cluster_url):
    sent: list[str] = []
    first = Ledger(cluster_url, name="emails", policy=LedgerPolicy(lease=30.0), hooks=[])
    second = Ledger(cluster_url, name="emails", policy=LedgerPolicy(lease=30.0), hooks=[])

    def send(to: str) -> str:
        sent.append(to)
        return f"msg-{len(sent)}"

    with first.idempotent("send:m1", payload="a@example.com") as call:
        assert call.guarded
        call.complete(send("a@example.com"))
    with second.idempotent("send:m1", payload="a@example.com") as again:
        assert again.replayed
    assert again.result == "msg-1"
    assert sent == ["a@example.com"]
    entry = second.get("send:m1")
    assert entry is not None
    assert entry.state is EntryState.COMPLETED
    assert second.unknowns() == []
    with first.idempotent("send:m2", payload="b@example.com") as lost:
        lost.unknown("connection dropped after DATA")
    assert [e.key for e in second.unknowns()] == ["send:m2"]  # pipelined EVALSHAs
    first.close()
    second.close()


def test_heartbeats_written_to_the_cluster_are_read_back(cluster_url):
    from sendguard.health import RedisHeartbeats

    clock = FakeClock(wall=1_800_000_000.0)
    heartbeats = Heartbeats(cluster_url, clock=clock, hooks=[])
    reader = RedisHeartbeats(cluster_url, clock=clock)
    try:
        for name in ("nightly-digest", "hourly-bounces", "weekly-report"):
            with heartbeats.heartbeat(name, every="24h", grace="1h"):
                clock.advance(30)
        statuses = heartbeats.statuses()  # the index and each job's hash: other slots
        assert sorted(s.name for s in statuses) == [
            "hourly-bounces",
            "nightly-digest",
            "weekly-report",
        ]
        assert reader.last_beat("hourly-bounces") == 1_800_000_060.0
    finally:
        heartbeats.close()
        reader.close()


def test_a_shared_bulkhead_caps_two_gates_together(cluster_url):
    from sendguard._core.telemetry import Telemetry
    from sendguard.ratelimit.redis_bulkhead import SharedBulkheadGate

    policy = Bulkhead(2, shared=True, lease=10.0)
    one = SharedBulkheadGate("GET /export", policy, cluster_url, Telemetry([]))
    two = SharedBulkheadGate("GET /export", policy, cluster_url, Telemetry([]))
    try:
        a, b = one.enter(), two.enter()
        assert isinstance(a, str) and isinstance(b, str)
        assert one.enter(max_wait=0) is None  # two slots in all, across both gates
        assert two.enter(max_wait=0) is None
        two.leave(b)
        assert isinstance(one.enter(max_wait=0), str)
    finally:
        one.close()
        two.close()


def test_the_pacer_shares_its_pace_through_the_cluster(cluster_url):
    one, two = Pacer("2/second", store=cluster_url), Pacer("2/second", store=cluster_url)
    try:
        assert one.pace("gmail.com") == 0.0
        assert two.pace("gmail.com") == pytest.approx(0.5, abs=0.1)  # the other's send counted
        assert one.pace("yahoo.com") == 0.0
    finally:
        one.close()
        two.close()


def test_one_guard_s_keys_share_a_slot_and_guards_spread_over_nodes(cluster_url, cluster_nodes):
    limits = [Limit("route:GET /x", r) for r in parse_rates("5/minute;50/hour")]
    limiter = RateLimiter(cluster_url)
    registry = BreakerRegistry(Breaker.consecutive(1, open_for=30), store=cluster_url)
    ledger = Ledger(cluster_url, name="slots", hooks=[])
    for i in range(12):
        assert limiter.check(f"tenant-{i}", limits).allowed
        with pytest.raises(OSError, match="down"):
            registry.get(f"provider:p{i}").call(lambda: (_ for _ in ()).throw(OSError("down")))
        with ledger.idempotent(f"send:{i}", payload=i) as call:
            call.complete(i)
    limiter.close()
    ledger.close()

    nodes_of_tag: dict[bytes, set[int]] = defaultdict(set)
    slots_of_tag: dict[bytes, set[int]] = defaultdict(set)
    for index, node in enumerate(cluster_nodes):
        for key in node.scan_iter(match="sendguard:*", count=1000):
            tag = _TAG.search(key)
            assert tag is not None, key  # every key carries a hash tag
            nodes_of_tag[tag.group(1)].add(index)
            slots_of_tag[tag.group(1)].add(int(node.cluster("KEYSLOT", key)))
    assert len(nodes_of_tag) >= 25  # 12 clients of a limit, 12 breakers, one ledger (its entries)
    assert all(len(slots) == 1 for slots in slots_of_tag.values())
    assert all(len(nodes) == 1 for nodes in nodes_of_tag.values())
    assert len(set().union(*nodes_of_tag.values())) == 3  # the guards spread over every node


def test_async_breakers_and_bulkheads_use_the_asyncio_cluster_client(cluster_url):
    from sendguard._core.telemetry import Telemetry
    from sendguard.breakers.redis_store import RedisBreakerStore
    from sendguard.ratelimit.redis_bulkhead import SharedBulkheadGate

    async def main() -> None:
        store = RedisBreakerStore(cluster_url)
        policy = Breaker.consecutive(1, open_for=30)
        one = BreakerRegistry(policy, store=store).provider("smtp")
        two = BreakerRegistry(policy, store=store, sync_interval=0.01).provider("smtp")

        async def fail() -> str:
            raise OSError("down")

        with pytest.raises(OSError, match="down"):
            await one.acall(fail)
        assert one.state is State.OPEN
        with pytest.raises(BreakerOpen):
            await two.acall(fail)
        await store.aclose()

        gate_policy = Bulkhead(1, shared=True, lease=10.0)
        a = SharedBulkheadGate("POST /import", gate_policy, cluster_url, Telemetry([]))
        b = SharedBulkheadGate("POST /import", gate_policy, cluster_url, Telemetry([]))
        slot = await a.aenter()
        assert isinstance(slot, str)
        assert await b.aenter(max_wait=0) is None  # one slot in all
        await a.aleave(slot)
        assert isinstance(await b.aenter(max_wait=0), str)
        await a.aclose()
        await b.aclose()

    asyncio.run(main())


def test_two_guards_on_the_cluster_url_share_their_limits(cluster_url):
    from sendguard import Guard, RateLimited, RoutePolicy

    def make() -> Guard:
        policy = RoutePolicy(limits="3/minute", bulkhead=Bulkhead(4, shared=True))
        return Guard(cluster_url, baseline=policy, hooks=[])

    one, two = make(), make()
    assert one.limiter.shared and two.breakers.store.label == "redis"

    @one.route("POST /v1/emails", key=lambda account: account)
    def send_one(account: str) -> str:
        return "sent"

    @two.route("POST /v1/emails", key=lambda account: account)
    def send_two(account: str) -> str:
        return "sent"

    assert [send_one("acme"), send_two("acme"), send_one("acme")] == ["sent"] * 3
    with pytest.raises(RateLimited):
        send_two("acme")  # the fourth call of the minute, made through the other guard
    assert send_two("globex") == "sent"
    one.close()
    two.close()
