"""What a job's sandbox asked the egress proxy for: one record per request, totals per host.

The records are kept in memory while the job's channel is open (at most MAX_ITEMS itemised; past
that only the totals grow) and stored as one `egress` job event when it closes
(app/pipeline/egress.py). Host names in them passed the proxy's validation (app/domain/egress.py:
letters, digits, dots and hyphens, or an IP address); a request that named no valid host is
recorded as MALFORMED, never with the text the sandbox sent."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from app.domain.egress import EgressHost, EgressReport

MAX_ITEMS = 1000
MALFORMED = "(malformed request)"


@dataclass
class EgressRecord:
    method: str  # CONNECT, or the HTTP method forwarded
    host: str
    port: int
    allowed: bool  # the proxy let it through (it may still have failed to connect: see status)
    status: int  # what the proxy answered: 200 (tunnel or forwarded), 403, 400, 502, ...
    reason: str = ""  # why it was refused or failed
    address: str = ""  # the address connected to
    bytes_up: int = 0  # sandbox → host, after the request's head
    bytes_down: int = 0  # host → sandbox
    at: float = field(default_factory=time.time)
    seconds: float = 0.0


class EgressLog:
    def __init__(self, max_items: int = MAX_ITEMS) -> None:
        self.max_items = max_items
        self.items: list[EgressRecord] = []
        self.unlisted = 0  # requests past max_items: counted in the totals only
        self._totals: dict[tuple[str, int, bool], EgressHost] = {}

    def add(self, record: EgressRecord) -> None:
        if len(self.items) < self.max_items:
            self.items.append(record)
        else:
            self.unlisted += 1
        key = (record.host, record.port, record.allowed)
        total = self._totals.get(key)
        if total is None:
            total = self._totals[key] = EgressHost(host=record.host, port=record.port, allowed=record.allowed,
                                                   reason=record.reason)
        total.requests += 1
        total.bytes_up += record.bytes_up
        total.bytes_down += record.bytes_down

    @property
    def requests(self) -> int:
        return len(self.items) + self.unlisted

    def report(self) -> EgressReport:
        return EgressReport(hosts=[h.model_copy() for h in self._totals.values()])

    def event_data(self) -> dict:
        """The `egress` job event: every itemised request, and how many were past the limit."""
        return {"requests": [asdict(r) for r in self.items], "unlisted": self.unlisted,
                "blocked": sum(h.requests for h in self._totals.values() if not h.allowed)}
