"""Fixtures of the end-to-end tests: a fresh Postgres database per test (the pipeline
tests' own fixture)."""

from tests.pipeline.conftest import pipeline_dsn

__all__ = ["pipeline_dsn"]
