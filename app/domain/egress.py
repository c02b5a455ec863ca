"""The egress allow-list: which hosts a job's sandbox may reach through the egress proxy, and what
it reached. Pure rules and data, no I/O (the proxy is app/agent/egress/).

An entry is an exact host name (`pypi.org`), a suffix (`*.pythonhosted.org`: any name below it,
not the name itself), or an IP address (`10.0.0.5`, `[fd00::5]`), each optionally with `:port`.
Without a port an entry means the web's ports, 80 and 443. Entries are checked strictly: anything
else (a URL, a path, a bare `*`, `*.com`, a number that libc would read as an address) is an
error that says which form is expected."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

DEFAULT_PORTS: tuple[int, ...] = (80, 443)
MAX_ENTRY_CHARS = 260
MAX_NAME_CHARS = 253
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_PORT = re.compile(r"^[1-9][0-9]{0,4}$")
FORMS = ("a host name such as pypi.org, a suffix such as *.pythonhosted.org, or an IP address such as 10.0.0.5 or "
         "[fd00::5], optionally followed by :port")

Kind = Literal["name", "suffix", "ip"]


def _looks_numeric(name: str) -> bool:
    """libc's resolver reads `2130706433`, `0x7f.1` and `127.1` as IPv4 addresses: never a name."""
    try:
        socket.inet_aton(name)
        return True
    except OSError:
        return False


def check_name(name: str) -> str:
    """`name` as a DNS host name (lowercase, without a final dot); ValueError if it is not one."""
    if not name or len(name) > MAX_NAME_CHARS:
        raise ValueError(f"{name[:80]!r} is not a valid host name")
    if not name.isascii():
        raise ValueError(f"{name[:80]!r} is not ASCII: write an international name in its xn-- form")
    labels = name.split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{name[:80]!r} is not a valid host name")
    if labels[-1].isdigit() or _looks_numeric(name):
        raise ValueError(f"{name[:80]!r} is neither a host name nor an IP address in its usual form")
    return name


def parse_host(text: str) -> tuple[Literal["name", "ip"], str]:
    """A host as a request or an entry names it: ("ip", canonical address) or ("name", name).
    IPv6 addresses come without brackets here."""
    host = text.lower().removesuffix(".") if not text.startswith("[") else text.lower()
    if host.startswith("[") and host.endswith("]"):
        try:
            return "ip", str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise ValueError(f"{text[:80]!r} is not an IPv6 address") from None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "name", check_name(host)
    if address.version == 6:
        raise ValueError(f"{text[:80]!r}: write an IPv6 address in brackets, [{address}]")
    return "ip", str(address)


def split_port(text: str) -> tuple[str, int | None]:
    """(host, port) of `host[:port]`, where an IPv6 host is in brackets."""
    if text.startswith("["):
        host, bracket, rest = text.partition("]")
        host += "]"
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{text[:80]!r} is not an allow-list entry: write {FORMS}")
        port = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, None
    if port is None:
        return host, None
    if not _PORT.match(port) or int(port) > 65535:
        raise ValueError(f"{text[:80]!r}: the port must be a number from 1 to 65535")
    return host, int(port)


class EgressRule(BaseModel):
    """One allow-list entry, parsed."""

    model_config = ConfigDict(frozen=True)
    kind: Kind
    host: str  # the name; the suffix without `*.`; or the canonical address
    ports: tuple[int, ...] = DEFAULT_PORTS

    @classmethod
    def parse(cls, entry: str) -> EgressRule:
        """The rule an entry says; ValueError with a sentence saying what is wrong."""
        text = entry.strip()
        if not text or len(text) > MAX_ENTRY_CHARS or any(c in text for c in "/@?#\\ \t"):
            raise ValueError(f"{entry[:80]!r} is not an allow-list entry: write {FORMS}")
        host, port = split_port(text)
        ports = (port,) if port is not None else DEFAULT_PORTS
        if host.startswith("*."):
            suffix = check_name(host[2:].lower().removesuffix("."))
            if "." not in suffix:
                raise ValueError(f"{entry[:80]!r} covers a whole top-level domain; name one below it (*.example.org)")
            return cls(kind="suffix", host=suffix, ports=ports)
        if "*" in host:
            raise ValueError(f"{entry[:80]!r}: a wildcard may only start an entry, as in *.example.org")
        kind, value = parse_host(host)
        return cls(kind=kind, host=value, ports=ports)

    def __str__(self) -> str:
        host = {"suffix": f"*.{self.host}", "ip": f"[{self.host}]" if ":" in self.host else self.host}.get(
            self.kind, self.host)
        return host if self.ports == DEFAULT_PORTS else f"{host}:{self.ports[0]}"

    def matches(self, kind: str, host: str, port: int) -> bool:
        """Whether a request for `host` (as parse_host gives it) on `port` is what this rule allows."""
        if port not in self.ports:
            return False
        if self.kind == "suffix":
            return kind == "name" and host.endswith("." + self.host)
        return kind == self.kind and host == self.host

    def covers(self, other: EgressRule) -> bool:
        """Whether everything `other` allows, this rule allows too (the operator's bound on a repository)."""
        if not set(other.ports) <= set(self.ports):
            return False
        if self.kind == "suffix":
            return other.kind in ("name", "suffix") and (
                other.host.endswith("." + self.host) or (other.kind == "suffix" and other.host == self.host))
        return other.kind == self.kind and other.host == self.host

    @property
    def names_exactly(self) -> bool:
        """An exact name or address: the operator's own such entries may reach private addresses."""
        return self.kind != "suffix"


def normalize_entry(entry: str) -> str:
    """An entry in its one written form (lowercase, brackets, no default port); ValueError if malformed."""
    if not isinstance(entry, str):
        raise ValueError(f"{str(entry)[:80]!r} is not an allow-list entry: write {FORMS}")
    return str(EgressRule.parse(entry))


def parse_rules(entries: tuple[str, ...] | list[str]) -> tuple[EgressRule, ...]:
    return tuple(EgressRule.parse(entry) for entry in entries)


def uncovered(entries: list[str], bound: tuple[str, ...]) -> list[tuple[int, str]]:
    """(index, entry) of each of a repository's entries that none of the operator's covers."""
    rules = parse_rules(bound)
    return [(i, entry) for i, entry in enumerate(entries) if not any(r.covers(EgressRule.parse(entry)) for r in rules)]


# One entry in the configuration (`egress.allow`, AGENTVINE_EGRESS_ALLOW), kept in its one written form.
EgressEntry = Annotated[str, AfterValidator(normalize_entry)]


class Egress(BaseModel):
    """The configuration's `egress`: what the sandbox may reach through the proxy, and when."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    allow: Annotated[list[EgressEntry], Field(max_length=200)] = []
    # setup: only while the setup steps run; run: for the whole run, the agent's included.
    during: Literal["setup", "run"] = "setup"


# --- what a job reached --------------------------------------------------------------------------


class EgressHost(BaseModel):
    """One host:port a job's sandbox asked for, allowed or blocked, with its totals."""

    host: str  # as the sandbox named it, validated (a malformed target is shown as such)
    port: int
    allowed: bool
    reason: str = ""  # why it was blocked (the first reason seen)
    requests: int = 0
    bytes_up: int = 0
    bytes_down: int = 0

    @property
    def target(self) -> str:
        if not self.port:  # a request that named no host (malformed, over the connection limit)
            return self.host
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class EgressReport(BaseModel):
    """What the sandbox reached through the proxy, per host (the itemised requests are job events)."""

    hosts: list[EgressHost] = Field(default_factory=list)

    @property
    def blocked(self) -> list[EgressHost]:
        return [h for h in self.hosts if not h.allowed]

    @property
    def allowed(self) -> list[EgressHost]:
        return [h for h in self.hosts if h.allowed]

    def merged(self, other: EgressReport | None) -> EgressReport:
        """This report and a later run's (a job that resumed after a question), host by host."""
        if other is None:
            return self
        totals = {(h.host, h.port, h.allowed): h.model_copy() for h in self.hosts}
        for h in other.hosts:
            key = (h.host, h.port, h.allowed)
            if key in totals:
                t = totals[key]
                totals[key] = t.model_copy(update={"requests": t.requests + h.requests,
                                                   "bytes_up": t.bytes_up + h.bytes_up,
                                                   "bytes_down": t.bytes_down + h.bytes_down})
            else:
                totals[key] = h.model_copy()
        return EgressReport(hosts=list(totals.values()))
