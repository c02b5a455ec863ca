"""Where an allowed name may lead: the addresses the proxy connects to, and the ones it never will.

The proxy resolves names on the host, so an allowed name is only as safe as the address it
resolves to: a name on the allow-list (or any name below an allowed `*.suffix`, which its owner's
DNS decides) could point at the cloud's metadata service or at a service on the host's own
loopback. So every resolved address is classified, and the proxy connects to the very address it
checked (no second lookup, no DNS rebinding window):

- forbidden, always: link-local (169.254.0.0/16: the metadata services of AWS, GCP, Azure and
  OpenStack; fe80::/10), AWS's fd00:ec2::254 and Alibaba's 100.100.100.200, 0.0.0.0/8 (which
  reaches the host's own services on Linux), multicast, broadcast and reserved ranges;
- private: everything else that is not globally routable (loopback, RFC 1918, unique local,
  shared, documentation ranges): only for a host the operator's own list names exactly;
- public: globally routable addresses.

An IPv6 address that carries an IPv4 one (IPv4-mapped, NAT64, 6to4, Teredo) is judged by the
IPv4 address inside, so `::ffff:169.254.169.254` is as forbidden as 169.254.169.254."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressClass = Literal["public", "private", "forbidden"]

FORBIDDEN_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8",
    "169.254.0.0/16",
    "100.100.100.200/32",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
    "fd00:ec2::254/128",
))
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.teredo is not None:
        return address.teredo[1]
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64 or (address in IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def classify(address: IPAddress) -> AddressClass:
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_v4(address)
        if inner is not None:
            return classify(inner)
    if any(address in network for network in FORBIDDEN_NETWORKS if network.version == address.version):
        return "forbidden"
    return "public" if address.is_global else "private"


REFUSAL = {
    "forbidden": "{host} resolves to {address}, a link-local, metadata or reserved address, which is never reachable",
    "private": ("{host} resolves to {address}, a loopback or private address, which only a host the operator's "
                "AGENTVINE_EGRESS_ALLOW names exactly may reach"),
}


def refusal(host: str, address: IPAddress, private_ok: bool) -> str | None:
    """Why the proxy may not connect to `address` for `host`, or None when it may."""
    kind = classify(address)
    if kind == "public" or (kind == "private" and private_ok):
        return None
    return REFUSAL[kind].format(host=host, address=address)


# Lookups run on threads of their own: a hostile DNS answering slowly (a name below an allowed suffix
# is its owner's to answer) must not take the threads the worker's other jobs use (asyncio.to_thread).
_DNS_THREADS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="egress-dns")


async def resolve(host: str, port: int, timeout: float) -> list[IPAddress]:
    """The addresses `host` resolves to on the host, in the resolver's order, each once. It returns when
    the lookup's thread is done (the caller bounds its own wait: `timeout` is the resolver's to honour,
    and getaddrinfo has its own), so a caller that holds a slot while this runs holds it as long as the
    thread is busy."""
    loop = asyncio.get_running_loop()
    lookup = functools.partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    infos = await loop.run_in_executor(_DNS_THREADS, lookup)
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found
