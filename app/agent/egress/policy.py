"""A job's egress policy: its allow-list, bounded by the operator's, asked once per request.

The repository's `egress.allow` was checked against the operator's AGENTVINE_EGRESS_ALLOW when the
job was admitted (app/domain/config.py, Ceilings); the proxy asks both again for every request, so
an operator who narrows their list narrows jobs admitted before too."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.domain.egress import EgressRule, parse_rules

NOT_ALLOWED = ("{target} is not on this job's egress allow-list (egress.allow in .github/agentvine.yml, "
               "within the operator's AGENTVINE_EGRESS_ALLOW)")
NOT_COVERED = "{target} is not on the operator's egress allow-list (AGENTVINE_EGRESS_ALLOW)"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""  # why not, in a sentence
    private_ok: bool = False  # the operator names this host exactly: it may resolve to a private address


def target(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class EgressPolicy:
    def __init__(self, allow: Sequence[str] = (), operator: Sequence[str] = ()) -> None:
        self.rules: tuple[EgressRule, ...] = parse_rules(list(allow))
        self.bound: tuple[EgressRule, ...] = parse_rules(list(operator))

    def decide(self, kind: str, host: str, port: int) -> Decision:
        """For a host as app/domain/egress.py's parse_host gives it (kind "name" or "ip")."""
        if not any(rule.matches(kind, host, port) for rule in self.rules):
            return Decision(False, NOT_ALLOWED.format(target=target(host, port)))
        bounding = [rule for rule in self.bound if rule.matches(kind, host, port)]
        if not bounding:
            return Decision(False, NOT_COVERED.format(target=target(host, port)))
        return Decision(True, private_ok=any(rule.names_exactly for rule in bounding))

    def __repr__(self) -> str:
        return f"EgressPolicy(allow={[str(r) for r in self.rules]}, operator={[str(r) for r in self.bound]})"
