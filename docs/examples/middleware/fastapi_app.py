"""FastAPI: add the middleware with app.add_middleware; templates come from the routes."""

import asyncio

import httpx
from fastapi import APIRouter, FastAPI

from sendguard import Bulkhead, Guard, RoutePolicy
from sendguard.asgi import GuardMiddleware

guard = Guard(
    baseline=RoutePolicy(limits="100/minute", bulkhead=Bulkhead(50)),
    routes={
        "GET /v1/emails/{email_id}/analytics": RoutePolicy(limits="2/minute"),
        "GET /healthz": RoutePolicy.exempt(),
    },
)

router = APIRouter(prefix="/v1")


@router.get("/emails/{email_id}/analytics")
async def analytics(email_id: str) -> dict[str, int]:
    return {"opens": 3, "clicks": 1}


@router.get("/emails/{email_id}")
def show_email(email_id: str) -> dict[str, str]:  # sync handlers are guarded the same way
    return {"id": email_id}


app = FastAPI()
app.include_router(router)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


app.add_middleware(GuardMiddleware, guard=guard)  # or: guarded_app = GuardMiddleware(app, guard)


async def main() -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        me = {"Authorization": "Bearer acme"}
        replies = [await client.get(f"/v1/emails/em_{n}/analytics", headers=me) for n in range(3)]
        print("analytics:", [r.status_code for r in replies])
        refused = replies[-1]
        print("refused:", refused.json()["route"], "| Retry-After:", refused.headers["retry-after"])

        email = await client.get("/v1/emails/em_1", headers=me)
        print("email:", email.status_code, email.json(), "|", email.headers["ratelimit-policy"])
        health = await client.get("/healthz")
        print("healthz:", health.status_code, "ratelimit" in health.headers)


asyncio.run(main())
