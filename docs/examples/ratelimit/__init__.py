"""Examples of docs/ratelimit.md. A package only so that mypy, checking docs/examples as a
whole, tells this directory's shared_redis.py from the one in docs/examples/breakers."""
