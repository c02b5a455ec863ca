"""What the egress proxy let through and refused, as the check run and the pull request show it.

Hosts come from the proxy's records (app/agent/egress/records.py): validated names and addresses,
shown in code spans all the same; reasons are the proxy's own sentences, defused and on one line."""

from __future__ import annotations

from app.domain.egress import EgressHost, EgressReport
from app.domain.untrusted import code_span, defuse, one_line
from app.pipeline.present import texts

MAX_HOSTS_SHOWN = 20


def _requests(n: int) -> str:
    return f"{n} request" if n == 1 else f"{n} requests"


def _hosts(count: int) -> str:
    return f"{count} host" if count == 1 else f"{count} hosts"


def _bytes(n: int) -> str:
    for unit, size in (("MB", 1_000_000), ("kB", 1_000)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _more(shown: list[str], hosts: list[EgressHost]) -> list[str]:
    left = len(hosts) - MAX_HOSTS_SHOWN
    return shown + ([f"… and {left} more"] if left > 0 else [])


def check_run_section(report: EgressReport | None) -> str:
    """The check run's part on egress ("" when the sandbox asked the proxy for nothing)."""
    if report is None or not report.hosts:
        return ""
    parts = []
    blocked = sorted(report.blocked, key=lambda h: -h.requests)
    if blocked:
        lines = [texts.EGRESS_BLOCKED_HOST.format(target=code_span(h.target), requests=_requests(h.requests),
                                                  reason=defuse(one_line(h.reason, 300)) or "refused")
                 for h in blocked[:MAX_HOSTS_SHOWN]]
        parts.append(texts.EGRESS_BLOCKED.format(count=_hosts(len(blocked)), hosts="\n".join(_more(lines, blocked))))
    reached = sorted(report.allowed, key=lambda h: -h.bytes_down)
    if reached:
        shown = [texts.EGRESS_REACHED_HOST.format(target=code_span(h.target), requests=_requests(h.requests),
                                                  down=_bytes(h.bytes_down)) for h in reached[:MAX_HOSTS_SHOWN]]
        parts.append(texts.EGRESS_REACHED.format(hosts=", ".join(_more(shown, reached))))
    return "\n\n".join(parts) + "\n\n"


def pull_request_note(report: EgressReport | None, check_url: str) -> str:
    """A warning at the head of the pull request when the proxy blocked something ("" otherwise)."""
    blocked = report.blocked if report is not None else []
    if not blocked:
        return ""
    names = [code_span(h.target) for h in blocked[:MAX_HOSTS_SHOWN]]
    return texts.EGRESS_PR_NOTE.format(hosts=", ".join(_more(names, blocked)), check_url=check_url)
