"""A probe of your own: a class with name, critical, timeout and check(), judged by thresholds."""

from sendguard.health import BaseProbe, HealthRegistry, ProbeResult, Thresholds


class ProviderQuota(BaseProbe):
    """Share of the email provider's daily sending quota used so far."""

    component_type = "system"

    def __init__(self, used: int, quota: int) -> None:
        super().__init__("provider-quota", critical=False, timeout=2.0)
        self.used, self.quota = used, quota
        self.limits = Thresholds.above(warn=0.8, fail=0.95)

    def check(self) -> ProbeResult:
        share = self.used / self.quota
        status = self.limits.judge(share)
        message = f"{share:.0%} of today's quota sent" if status.value != "pass" else ""
        return ProbeResult(status, message, observed_value=round(share * 100, 1),
                           observed_unit="%", measurement="utilization")  # fmt: skip


quota = ProviderQuota(used=87_000, quota=100_000)
report = HealthRegistry([quota]).check_now()
check = report.check("provider-quota")
print(check.key, check.status.value, check.result.observed_value if check.result else None)
print("overall:", report.status.value, report.http_status)  # not critical: warn, still 200
