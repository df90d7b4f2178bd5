"""Flask behind the WSGI middleware: templates from the url_map, breakers fed by statuses."""

import json

from flask import Flask

from sendguard import Breaker, Bulkhead, Guard, RoutePolicy
from sendguard.wsgi import GuardWSGIMiddleware, flask_template

flask_app = Flask(__name__)


@flask_app.get("/v1/emails/<int:email_id>")
def show_email(email_id: int) -> dict[str, int]:
    return {"id": email_id}


@flask_app.get("/v1/reports/<slug>")
def report(slug: str) -> tuple[str, int]:
    return "the reporting database is down", 500


guard = Guard(
    baseline=RoutePolicy(limits="100/minute", bulkhead=Bulkhead(8), breaker=Breaker.consecutive(3)),
    routes={"GET /v1/emails/{email_id}": RoutePolicy(limits="2/minute")},
)
# Wrap the WSGI callable inside the Flask app, so `flask_app` stays what the server runs.
flask_app.wsgi_app = GuardWSGIMiddleware(  # type: ignore[method-assign]
    flask_app.wsgi_app, guard, template=flask_template(flask_app)
)

client = flask_app.test_client()
for n in (1, 2, 3):
    # `with` closes the response: the guard's call ends when the server closes the body.
    with client.get(f"/v1/emails/{n}", headers={"Authorization": "Bearer acme"}) as reply:
        detail = (
            json.loads(reply.data)["route"]
            if reply.status_code == 429
            else reply.headers["RateLimit"]
        )
        print(f"/v1/emails/{n}: {reply.status_code} {detail}")

codes = []
for _ in range(4):  # three 500s in a row open the route's breaker
    with client.get("/v1/reports/weekly") as reply:
        codes.append(reply.status_code)
problem = json.loads(reply.data)
print("/v1/reports/weekly:", codes, "|", problem["type"], reply.headers["Retry-After"])
guard.close()  # no lifespan in WSGI: release store connections when the process ends
