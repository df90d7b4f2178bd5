"""Postgres: a fresh connection with the app's role, saturation over the admin connection,
and sessions. Needs SENDGUARD_EXAMPLE_POSTGRES_DSN: a superuser DSN of a test server."""

import os

import psycopg

from sendguard.health import (
    AdminConnection,
    HealthRegistry,
    PostgresProbe,
    SaturationProbe,
    SessionFilter,
    kill_sessions,
)

ADMIN_DSN = os.environ["SENDGUARD_EXAMPLE_POSTGRES_DSN"]
with psycopg.connect(ADMIN_DSN, autocommit=True) as setup:
    if not setup.execute("SELECT 1 FROM pg_roles WHERE rolname = 'example_app'").fetchone():
        setup.execute("CREATE ROLE example_app LOGIN")
APP_DSN = ADMIN_DSN.replace("sendguard@", "example_app@")

admin = AdminConnection(ADMIN_DSN)  # open it at start-up, while there is room, and keep it
registry = HealthRegistry(
    [PostgresProbe(APP_DSN), SaturationProbe(admin, role="example_app")], interval=5
)
report = registry.check_now()
for check in report.checks:
    unit = check.result.observed_unit if check.result else ""
    print(f"{check.key}: {check.status.value} ({unit})")
print("admin gets into reserved slots as:", admin.reserved_access)

stuck = psycopg.connect(APP_DSN, application_name="example-job")
stuck.execute("SELECT 1")  # a transaction left open, holding its slot
plan = kill_sessions(admin, SessionFilter(applications=["example-*"]))  # a dry run
print([(o.session.state, o.action) for o in plan.outcomes])
done = kill_sessions(admin, SessionFilter(applications=["example-*"]), execute=True)
print([(o.action, o.detail) for o in done.outcomes])
try:
    stuck.execute("SELECT 1")
except psycopg.OperationalError as ended:
    print("the stuck session:", ended)
stuck.close()
registry.close()
admin.close()
