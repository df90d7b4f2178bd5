"""PipelineConfig: bad values named at construction; the environment round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sendguard import ConfigError
from sendguard.pipeline.config import PipelineConfig, ProviderConfig

PRIMARY = (ProviderConfig("primary", "127.0.0.1", 2525),)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"providers": ()}, "providers must be a non-empty tuple"),
        ({"providers": PRIMARY * 2}, "names 'primary' twice"),
        ({"redis_url": "localhost:6379"}, "redis_url must be redis://"),
        ({"postgres_dsn": "dbname=app"}, "postgres_dsn must be a postgresql:// URL"),
        ({"batch_size": 0}, "batch_size must be a whole number in [1, 1000], got 0"),
        ({"batch_size": 5000}, "got 5000"),
        ({"worker_threads": -1}, "worker_threads"),
        ({"sender": "not an address"}, "sender must be an address"),
        ({"pace": "lots"}, "PipelineConfig.pace: cannot parse rate 'lots'"),
        ({"create_limits": "1/fortnight"}, "create_limits"),
        ({"analytics_every": 0}, "analytics_every must be in"),
        ({"retry_cap": 0.01}, "retry_cap"),
        ({"queue_name": "a queue"}, "queue_name must be a plain name"),
    ],
)
def test_bad_values_are_refused_by_name(changes, says):
    with pytest.raises(ConfigError) as refused:
        PipelineConfig(**{"providers": PRIMARY, **changes})
    assert says in str(refused.value)


def test_bad_providers_are_refused_by_name():
    with pytest.raises(ConfigError, match=r"ProviderConfig\.port must be a whole number"):
        ProviderConfig("p", "127.0.0.1", 0)
    with pytest.raises(ConfigError, match=r"ProviderConfig\.name"):
        ProviderConfig("a provider", "127.0.0.1", 25)


def test_the_environment_names_the_bad_variable():
    env = {"SENDGUARD_PROVIDERS": "primary=127.0.0.1:2525"}
    assert PipelineConfig.from_env(env) == PipelineConfig(providers=PRIMARY)
    with pytest.raises(ConfigError, match="SENDGUARD_PROVIDERS is not set"):
        PipelineConfig.from_env({})
    with pytest.raises(ConfigError, match="SENDGUARD_BATCH_SIZE must be a int, got 'ten'"):
        PipelineConfig.from_env({**env, "SENDGUARD_BATCH_SIZE": "ten"})
    with pytest.raises(ConfigError, match="SENDGUARD_PROVIDERS: a provider is written"):
        PipelineConfig.from_env({"SENDGUARD_PROVIDERS": "primary@127.0.0.1"})


names = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)
provider_configs = st.builds(
    ProviderConfig,
    names,
    st.sampled_from(["127.0.0.1", "smtp.example.com", "localhost"]),
    st.integers(1, 65535),
    st.floats(0.05, 300).map(lambda t: round(t, 3)),
    st.integers(1, 100),
)


@given(
    providers=st.lists(provider_configs, min_size=1, max_size=3, unique_by=lambda p: p.name),
    redis_url=st.none() | st.just("redis://127.0.0.1:6379/0"),
    postgres_dsn=st.none() | st.just("postgresql://app@127.0.0.1/app"),
    batch_size=st.integers(1, 1000),
    worker_threads=st.integers(0, 64),
    pace_max_wait=st.floats(0, 3600),
    defer_delay=st.floats(0, 3600),
    pace=st.sampled_from(["50/second", "10/second;1000/hour"]),
)
def test_to_env_and_from_env_round_trip(providers, **values):
    config = PipelineConfig(providers=tuple(providers), **values)
    assert PipelineConfig.from_env(config.to_env()) == config
