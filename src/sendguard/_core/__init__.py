"""Shared internals of every guard: clock, keys, store access, telemetry and errors.

Nothing here is public API; the public names are re-exported from `sendguard` and
`sendguard.testing`.
"""
