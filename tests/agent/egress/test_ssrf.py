"""Where an allowed name may lead (app/agent/egress/addresses.py): never to link-local or metadata
addresses, to loopback and private ones only for a host the operator names exactly, always to
the very address that was checked."""

from __future__ import annotations

import ipaddress

import pytest

from app.agent.egress import EgressPolicy, EgressProxy, classify
from tests.agent.egress.conftest import exchange, get, status_of


@pytest.mark.parametrize(("address", "kind"), [
    ("169.254.169.254", "forbidden"),  # AWS, GCP, Azure, OpenStack metadata
    ("169.254.0.1", "forbidden"),
    ("100.100.100.200", "forbidden"),  # Alibaba Cloud metadata
    ("fd00:ec2::254", "forbidden"),  # AWS metadata over IPv6
    ("fe80::1", "forbidden"),
    ("0.0.0.0", "forbidden"),  # reaches the host's own listeners on Linux
    ("0.1.2.3", "forbidden"),
    ("224.0.0.1", "forbidden"),
    ("255.255.255.255", "forbidden"),
    ("240.0.0.1", "forbidden"),
    ("::", "forbidden"),
    ("ff02::1", "forbidden"),
    ("::ffff:169.254.169.254", "forbidden"),  # IPv4-mapped
    ("64:ff9b::a9fe:a9fe", "forbidden"),  # NAT64 of 169.254.169.254
    ("2002:a9fe:a9fe::1", "forbidden"),  # 6to4 of it
    ("::169.254.169.254", "forbidden"),  # IPv4-compatible
    ("127.0.0.1", "private"),
    ("127.8.9.10", "private"),
    ("::1", "private"),
    ("::ffff:127.0.0.1", "private"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "private"),  # shared address space (carrier NAT)
    ("fd12:3456::1", "private"),
    ("192.0.2.2", "private"),  # documentation
    ("::ffff:10.0.0.1", "private"),
    ("93.184.215.14", "public"),
    ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", "public"),
    ("::ffff:93.184.215.14", "public"),
])
def test_every_address_has_a_class(address, kind):
    assert classify(ipaddress.ip_address(address)) == kind


def dns(answers: dict[str, list[str]], asked: list[str] | None = None):
    """A resolver that answers what the test says (the host's own cannot be made to lie)."""
    async def resolve(host: str, port: int, timeout: float):
        if asked is not None:
            asked.append(host)
        return [ipaddress.ip_address(a) for a in answers.get(host, [])]
    return resolve


async def ask(proxy: EgressProxy, allow: list[str], operator: list[str], url: str) -> bytes:
    channel = await proxy.open_job("j", EgressPolicy(allow, operator), enabled=True)
    try:
        return await exchange(channel, get(url))
    finally:
        await proxy.close_job("j")


async def test_an_allowed_name_that_resolves_to_the_metadata_service_is_refused(socket_root):
    proxy = EgressProxy(socket_root, resolver=dns({"pypi.example.org": ["169.254.169.254"]}))
    # Even the operator naming the host exactly does not open link-local.
    answer = await ask(proxy, ["pypi.example.org"], ["pypi.example.org"], "http://pypi.example.org/simple/")
    assert status_of(answer) == 403
    assert b"resolves to 169.254.169.254, a link-local, metadata or reserved address, which is never reachable" in answer


@pytest.mark.parametrize("address", ["169.254.169.254", "[::ffff:a9fe:a9fe]", "0.0.0.0", "[fe80::1]"])
async def test_a_forbidden_address_is_refused_even_when_the_operator_lists_it(socket_root, address):
    proxy = EgressProxy(socket_root)
    answer = await ask(proxy, [address], [address], f"http://{address}/latest/meta-data/")
    assert status_of(answer) == 403 and b"never reachable" in answer


async def test_a_name_under_an_allowed_suffix_may_not_lead_to_loopback(socket_root, upstream):
    # The suffix's owner decides what names below it resolve to: one pointing at 127.0.0.1 is refused.
    proxy = EgressProxy(socket_root, resolver=dns({"x.pkgs.example.org": ["127.0.0.1"]}))
    answer = await ask(proxy, [f"*.pkgs.example.org:{upstream.port}"], [f"*.pkgs.example.org:{upstream.port}"],
                       f"http://x.pkgs.example.org:{upstream.port}/")
    assert status_of(answer) == 403
    assert (b"x.pkgs.example.org resolves to 127.0.0.1, a loopback or private address, which only a host the "
            b"operator's AGENTVINE_EGRESS_ALLOW names exactly may reach") in answer
    assert upstream.seen == []


async def test_a_host_the_operator_names_exactly_may_reach_a_private_address(socket_root, upstream):
    proxy = EgressProxy(socket_root, resolver=dns({"mirror.corp.example": ["127.0.0.1"]}))
    answer = await ask(proxy, [f"mirror.corp.example:{upstream.port}"], [f"mirror.corp.example:{upstream.port}"],
                       f"http://mirror.corp.example:{upstream.port}/simple/")
    assert status_of(answer) == 200 and upstream.seen[0]["path"] == "/simple/"
    assert upstream.seen[0]["headers"]["Host"] == f"mirror.corp.example:{upstream.port}"


async def test_an_operator_suffix_does_not_name_a_repository_host_exactly(socket_root, upstream):
    proxy = EgressProxy(socket_root, resolver=dns({"mirror.corp.example": ["127.0.0.1"]}))
    answer = await ask(proxy, [f"mirror.corp.example:{upstream.port}"], [f"*.corp.example:{upstream.port}"],
                       f"http://mirror.corp.example:{upstream.port}/")
    assert status_of(answer) == 403 and b"a loopback or private address" in answer


async def test_the_real_resolver_and_a_name_for_loopback(socket_root, upstream):
    """`localhost` resolves to loopback on every host: refused unless named exactly by the operator."""
    proxy = EgressProxy(socket_root)
    url = f"http://localhost:{upstream.port}/"
    assert status_of(await ask(proxy, [f"localhost:{upstream.port}"], [f"localhost:{upstream.port}"], url)) == 200
    answer = await ask(proxy, [f"127.0.0.1:{upstream.port}"], [f"127.0.0.1:{upstream.port}"], url)
    assert status_of(answer) == 403 and b"localhost:" in answer  # an address entry is not the name


async def test_only_the_addresses_checked_are_connected_to_and_the_name_is_resolved_once(socket_root, upstream):
    asked: list[str] = []
    # First a forbidden address, then the test's own: the proxy skips the first, connects to the second.
    proxy = EgressProxy(socket_root, resolver=dns({"pkg.corp.example": ["169.254.169.254", "127.0.0.1"]}, asked))
    answer = await ask(proxy, [f"pkg.corp.example:{upstream.port}"], [f"pkg.corp.example:{upstream.port}"],
                       f"http://pkg.corp.example:{upstream.port}/")
    assert status_of(answer) == 200
    assert asked == ["pkg.corp.example"]  # one lookup: no second answer can differ from the one checked


async def test_a_name_that_does_not_resolve_is_a_502(socket_root):
    proxy = EgressProxy(socket_root, resolver=dns({}))
    answer = await ask(proxy, ["nowhere.example.org"], ["nowhere.example.org"], "http://nowhere.example.org/")
    assert status_of(answer) == 502 and b"nowhere.example.org could not be resolved" in answer


async def test_a_private_address_literal_needs_the_operator_to_name_it(socket_root, upstream):
    proxy = EgressProxy(socket_root)
    url = f"http://127.0.0.1:{upstream.port}/"
    assert status_of(await ask(proxy, [f"127.0.0.1:{upstream.port}"], [f"127.0.0.1:{upstream.port}"], url)) == 200
    # Another spelling of the address is another entry: the operator's 127.0.0.1 does not cover it.
    answer = await ask(proxy, [f"[::ffff:127.0.0.1]:{upstream.port}"], [f"127.0.0.1:{upstream.port}"],
                       f"http://[::ffff:127.0.0.1]:{upstream.port}/")
    assert status_of(answer) == 403 and b"is not on the operator's egress allow-list" in answer
