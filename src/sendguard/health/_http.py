"""An HTTP endpoint: does it answer, with an expected status, fast enough?

Incident #4: ten tracking domains went dark and only the main site was watched. List
every endpoint users reach. Uses the standard library (no extra dependency); HTTPS is
verified against the system's CAs (or `cafile`), and a certificate problem fails the
check with the TLS library's reason. Redirects are not followed: a 3xx is an answer.
"""

from __future__ import annotations

import http.client
import ssl
import time
from collections.abc import Collection, Mapping
from urllib.parse import urlsplit

from sendguard._core.errors import ConfigError
from sendguard.health._probe import BaseProbe, describe_error
from sendguard.health._result import ProbeResult, Status, Thresholds

__all__ = ["HttpProbe"]

_DEFAULT_EXPECT = range(200, 400)
_LATENCY = Thresholds.above(warn=1.0)


class HttpProbe(BaseProbe):
    """Request `url` and judge the status code (default 200-399) and the latency (seconds)."""

    component_type = "system"

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        critical: bool = False,
        timeout: float = 5.0,
        expect: Collection[int] = _DEFAULT_EXPECT,
        latency: Thresholds = _LATENCY,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        cafile: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"HttpProbe.url must be an http(s) URL, got {url!r}")
        super().__init__(name or f"http/{parts.hostname}", critical=critical, timeout=timeout)
        self.url = url
        self.expect = expect
        self.latency = latency
        self.method = method
        self.headers = dict(headers or {})
        self.cafile = cafile
        self._parts = parts

    def _connection(self) -> http.client.HTTPConnection:
        host, port = self._parts.hostname or "", self._parts.port
        if self._parts.scheme == "https":
            context = ssl.create_default_context(cafile=self.cafile)
            return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=context)
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def check(self) -> ProbeResult:
        """One request; the body is read (up to 64 KiB) so the latency is the whole answer's."""
        path = self._parts.path or "/"
        if self._parts.query:
            path += f"?{self._parts.query}"
        conn = self._connection()
        started = time.perf_counter()
        try:
            headers = {"user-agent": "sendguard-health", **self.headers}
            conn.request(self.method, path, headers=headers)
            response = conn.getresponse()
            response.read(65536)
            code = response.status
        except (OSError, http.client.HTTPException) as error:
            return ProbeResult.failing(
                f"{self.url} did not answer: {describe_error(error)}", measurement="responseTime"
            )
        finally:
            conn.close()
        elapsed = time.perf_counter() - started
        statuses = [self.latency.judge(elapsed)]
        problems = [] if statuses[0] is Status.PASS else [f"took {elapsed * 1000:.0f} ms"]
        if code not in self.expect:
            statuses.append(Status.FAIL)
            problems.insert(0, f"{self.url} answered {code}")
        return ProbeResult(
            Status.worst(statuses), "; ".join(problems), observed_value=round(elapsed * 1000, 1),
            observed_unit="ms", measurement="responseTime", details={"status_code": code},
        )  # fmt: skip
