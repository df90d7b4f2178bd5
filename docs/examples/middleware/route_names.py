"""How a request becomes a route name: a framework template, a pattern, or a catch-all."""

from sendguard import Guard, RoutePolicy

guard = Guard(
    baseline=RoutePolicy(limits="100/minute"),
    routes={
        "GET /v1/emails/{id}": RoutePolicy(limits="60/minute"),
        "GET /v1/emails/drafts": RoutePolicy(limits="10/minute"),  # more literal: tried first
        "* /v1/files/{rest:path}": RoutePolicy(limits="30/minute"),  # any method, any depth
        "GET /healthz": RoutePolicy.exempt(),
    },
)

requests = [
    ("GET", "/v1/emails/em_123"),
    ("GET", "/v1/emails/em_456"),
    ("GET", "/v1/emails/drafts"),
    ("PUT", "/v1/files/a/b/c.txt"),
    ("GET", "/v1/emails/em_123/opens"),
    ("POST", "/wp-login.php"),
    ("GET", "/healthz"),
]
for method, path in requests:
    route = guard.route_name(method, path)
    policy = guard.policy_for(route)
    limits = "exempt" if guard.exempt(route) else [rate.label for rate in policy.rates or ()]
    print(f"{method} {path} -> {route} {limits}")

# With a framework template (what the middleware finds in Starlette, FastAPI, Flask and
# Django apps), the template is the route; a pattern with other parameter names still
# finds its limits.
route = guard.route_name("GET", "/v1/emails/em_9", template="/v1/emails/{email_id}")
print(f"template -> {route} {[rate.label for rate in guard.policy_for(route).rates or ()]}")
