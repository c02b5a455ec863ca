"""The egress proxy alone, on real sockets: tunnels and forwarding, the allow-list, the switch, the
log, and the limits on what the sandbox may send it."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.agent.egress import EgressLimits, EgressPolicy, EgressProxy
from app.agent.egress.records import MALFORMED
from tests.agent.egress.conftest import body_of, exchange, get, json_body, open_job, status_of
from tests.support.env import unavailable


async def test_connect_to_an_allowed_host_tunnels_bytes_both_ways(proxy, echo_server):
    channel = await open_job(proxy, [f"127.0.0.1:{echo_server}"])
    reader, writer = await asyncio.open_unix_connection(str(channel.socket_path))
    writer.write(f"CONNECT 127.0.0.1:{echo_server} HTTP/1.1\r\nHost: 127.0.0.1:{echo_server}\r\n\r\nearly ".encode())
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 200 Connection established\r\n\r\n"
    writer.write(b"bytes")  # sent after the head in the same packet, and after the answer
    await writer.drain()
    assert await reader.readexactly(11) == b"EARLY BYTES"
    writer.write_eof()  # the sandbox is done: upstream hears the end, answers its last and closes
    assert await reader.read() == b""
    writer.close()
    log = await proxy.close_job("job1")
    (record,) = log.items
    assert (record.method, record.host, record.port, record.allowed, record.status) == (
        "CONNECT", "127.0.0.1", echo_server, True, 200)
    assert (record.bytes_up, record.bytes_down, record.address) == (11, 11, "127.0.0.1")


def _certificate(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "egress.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("egress.test")]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    return tmp_path / "cert.pem", tmp_path / "key.pem"


async def test_tls_goes_through_the_tunnel_end_to_end(proxy, tmp_path):
    cert, key = _certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    heard: list[bytes] = []

    async def serve(reader, writer):
        heard.append(await reader.readline())
        writer.write(b"secret answer\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    channel = await open_job(proxy, [f"127.0.0.1:{port}"])
    reader, writer = await asyncio.open_unix_connection(str(channel.socket_path))
    writer.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    client_tls = ssl.create_default_context(cafile=str(cert))
    await writer.start_tls(client_tls, server_hostname="egress.test")  # the client's TLS, to the server itself
    writer.write(b"secret question\n")
    assert await reader.readline() == b"secret answer\n"
    writer.close()
    server.close()
    (record,) = (await proxy.close_job("job1")).items
    assert heard == [b"secret question\n"]
    assert record.bytes_up > 200 and record.bytes_down > 200  # handshakes: the proxy relayed TLS records


async def test_plain_http_is_forwarded_in_origin_form_with_the_urls_own_host(proxy, upstream):
    channel = await open_job(proxy, [f"127.0.0.1:{upstream.port}"])
    body = "name=x"
    raw = (f"POST http://127.0.0.1:{upstream.port}/simple/pkg/?q=1 HTTP/1.1\r\nHost: elsewhere.example\r\n"
           f"Proxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive, X-Drop\r\n"
           f"X-Drop: 1\r\nX-Keep: 2\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()
    answer = await exchange(channel, raw)
    assert status_of(answer) == 200
    seen = json_body(answer)
    assert (seen["method"], seen["path"], seen["body"]) == ("POST", "/simple/pkg/?q=1", body)
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["host"] == f"127.0.0.1:{upstream.port}"  # never the Host the sandbox wrote
    assert headers["connection"] == "close" and headers["x-keep"] == "2"
    assert "proxy-authorization" not in headers and "proxy-connection" not in headers and "x-drop" not in headers
    (record,) = (await proxy.close_job("job1")).items
    assert record.method == "POST" and record.bytes_down == len(answer) and record.bytes_up > len(body)


async def test_a_blocked_host_gets_a_403_that_names_it_and_says_why(proxy, upstream):
    channel = await open_job(proxy, [f"127.0.0.1:{upstream.port}"])
    answer = await exchange(channel, b"CONNECT evil.example:443 HTTP/1.1\r\n\r\n")
    assert status_of(answer) == 403
    assert b"X-AgentVine-Egress: refused" in answer
    assert body_of(answer) == (b"AgentVine egress proxy: evil.example:443 is not on this job's egress allow-list "
                               b"(egress.allow in .github/agentvine.yml, within the operator's AGENTVINE_EGRESS_ALLOW).\n")
    answer = await exchange(channel, get(f"http://127.0.0.1:{upstream.port + 1}/"))  # the same host, another port
    assert status_of(answer) == 403 and f"127.0.0.1:{upstream.port + 1} is not on".encode() in answer
    assert upstream.seen == []
    report = (await proxy.close_job("job1")).report()
    assert [(h.target, h.requests) for h in report.blocked] == [
        ("evil.example:443", 1), (f"127.0.0.1:{upstream.port + 1}", 1)]


async def test_a_host_the_operator_no_longer_lists_is_refused_though_the_job_allows_it(proxy, upstream):
    channel = await open_job(proxy, [f"127.0.0.1:{upstream.port}"], operator=[])
    answer = await exchange(channel, get(f"http://127.0.0.1:{upstream.port}/"))
    assert status_of(answer) == 403 and b"is not on the operator's egress allow-list" in answer
    assert upstream.seen == []


async def test_suffix_rules_allow_names_below_and_not_the_suffix(socket_root, upstream):
    async def local(host, port, timeout):  # a DNS that puts every name on the test's server
        return [ipaddress.ip_address("127.0.0.1")]

    proxy = EgressProxy(socket_root, resolver=local)
    try:
        channel = await proxy.open_job("j", EgressPolicy([f"*.pkg.test:{upstream.port}"],
                                                         [f"pkg.test:{upstream.port}", f"a.pkg.test:{upstream.port}",
                                                          f"b.a.pkg.test:{upstream.port}", f"xpkg.test:{upstream.port}"]),
                                       enabled=True)
        statuses = {}
        for host in ("a.pkg.test", "b.a.pkg.test", "pkg.test", "xpkg.test"):
            statuses[host] = status_of(await exchange(channel, get(f"http://{host}:{upstream.port}/")))
        assert statuses == {"a.pkg.test": 200, "b.a.pkg.test": 200, "pkg.test": 403, "xpkg.test": 403}
    finally:
        await proxy.close()


async def test_the_switch_refuses_while_off_and_cuts_open_tunnels(proxy, echo_server):
    channel = await open_job(proxy, [f"127.0.0.1:{echo_server}"], enabled=False)
    answer = await exchange(channel, f"CONNECT 127.0.0.1:{echo_server} HTTP/1.1\r\n\r\n".encode())
    assert status_of(answer) == 403 and b"egress is off now" in answer
    channel.enable()
    reader, writer = await asyncio.open_unix_connection(str(channel.socket_path))
    writer.write(f"CONNECT 127.0.0.1:{echo_server} HTTP/1.1\r\n\r\n".encode())
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    channel.disable("the setup steps are over")
    assert await asyncio.wait_for(reader.read(), 2) == b""  # the tunnel is cut at once
    writer.close()
    answer = await exchange(channel, f"CONNECT 127.0.0.1:{echo_server} HTTP/1.1\r\n\r\n".encode())
    assert body_of(answer) == b"AgentVine egress proxy: the setup steps are over.\n"
    statuses = [(r.status, r.allowed) for r in (await proxy.close_job("job1")).items]
    assert statuses == [(403, False), (200, True), (403, False)]  # the cut tunnel is logged as it ends


async def test_an_allowed_host_that_does_not_answer_is_a_502_not_a_block(proxy):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    channel = await open_job(proxy, [f"127.0.0.1:{port}"])
    answer = await exchange(channel, f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
    assert status_of(answer) == 502 and f"could not connect to 127.0.0.1:{port}".encode() in answer
    report = (await proxy.close_job("job1")).report()
    assert report.blocked == [] and report.allowed[0].requests == 1


@pytest.mark.parametrize(("raw", "status", "says"), [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, b"this is a forward proxy"),
    (b"GET https://pypi.org/ HTTP/1.1\r\n\r\n", 400, b"an https:// URL goes through CONNECT"),
    (b"CONNECT pypi.org HTTP/1.1\r\n\r\n", 400, b"CONNECT needs host:port"),
    (b"GET http://user:pw@pypi.org/ HTTP/1.1\r\n\r\n", 400, b"carries credentials"),
    (b"GET http://pypi.org/ HTTP/2.0\r\n\r\n", 400, b"the request line is not"),
    (b"get http://pypi.org/ HTTP/1.1\r\n\r\n", 400, b"the request line is not"),
    (b"GET http://pypi.org/a b HTTP/1.1\r\n\r\n", 400, b"the request line is not"),
    (b"GET http://pypi.org/ HTTP/1.1\r\nX: 1\r\n folded\r\n\r\n", 400, b"malformed (or folded"),
    (b"GET http://pypi.org/ HTTP/1.1\r\nBad Name: 1\r\n\r\n", 400, b"malformed"),
    (b"GET http://py\xffpi.org/ HTTP/1.1\r\n\r\n", 400, b"not ASCII"),
    (b"GET http://0x7f000001/ HTTP/1.1\r\n\r\n", 400, b"neither a host name nor an IP address"),
    (b"GET http://pypi_org/ HTTP/1.1\r\n\r\n", 400, b"is not a valid host name"),
    (b"GET http://[::1/ HTTP/1.1\r\n\r\n", 400, b"is not an allow-list entry"),
    (b"GET http://pypi.org:99999/ HTTP/1.1\r\n\r\n", 400, b"the port must be"),
    (b"GET http://pypi.org/\x01 HTTP/1.1\r\n\r\n", 400, b"control characters"),
    (b"GET http://pypi.org/ HTTP/1.1\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", 431, b"more than 100 header fields"),
    (b"GET http://pypi.org/ HTTP/1.1\r\nX-A: " + b"a" * 20_000 + b"\r\n\r\n", 431, b"is over 16384 bytes"),
    (b"GET http://pypi.org/ HTTP/1.1\r\n", 400, b"ended before the request's head did"),
])
async def test_a_malformed_request_is_refused_and_logged_without_its_text(socket_root, raw, status, says):
    proxy = EgressProxy(socket_root)
    try:
        channel = await proxy.open_job("j", EgressPolicy(["pypi.org"], ["pypi.org"]), enabled=True)
        reader, writer = await asyncio.open_unix_connection(str(channel.socket_path))
        writer.write(raw)
        if raw.endswith(b"HTTP/1.1\r\n"):
            writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert status_of(answer) == status, answer
        assert says in body_of(answer)
        (record,) = (await proxy.close_job("j")).items
        assert (record.host, record.allowed, record.reason) == (MALFORMED, False, "malformed request")
    finally:
        await proxy.close()


async def test_a_head_that_never_ends_times_out(proxy):
    channel = await open_job(proxy, ["pypi.org"])
    reader, writer = await asyncio.open_unix_connection(str(channel.socket_path))
    writer.write(b"GET http://pypi.org/ HTTP/1.1\r\n")  # and nothing more
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert status_of(answer) == 408 and b"no complete request head within 1 s" in answer


async def test_an_idle_tunnel_is_closed(proxy, echo_server):
    channel = await open_job(proxy, [f"127.0.0.1:{echo_server}"])
    reader, writer = await asyncio.open_unix_connection(str(channel.socket_path))
    writer.write(f"CONNECT 127.0.0.1:{echo_server} HTTP/1.1\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    started = asyncio.get_running_loop().time()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert 0.9 < asyncio.get_running_loop().time() - started < 3
    writer.close()
    (record,) = (await proxy.close_job("job1")).items
    assert record.reason == "idle"


async def test_connections_per_job_are_bounded(socket_root, echo_server):
    proxy = EgressProxy(socket_root, EgressLimits(max_connections=3))
    try:
        channel = await proxy.open_job("j", EgressPolicy([f"127.0.0.1:{echo_server}"], [f"127.0.0.1:{echo_server}"]),
                                       enabled=True)
        open_ones = []
        for _ in range(3):
            reader, writer = await asyncio.open_unix_connection(str(channel.socket_path))
            writer.write(f"CONNECT 127.0.0.1:{echo_server} HTTP/1.1\r\n\r\n".encode())
            await reader.readuntil(b"\r\n\r\n")
            open_ones.append(writer)
        answer = await exchange(channel, f"CONNECT 127.0.0.1:{echo_server} HTTP/1.1\r\n\r\n".encode())
        assert status_of(answer) == 429 and b"this job has 3 connections open" in answer
        for writer in open_ones:
            writer.close()
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_unix_connection(str(channel.socket_path))
        writer.write(f"CONNECT 127.0.0.1:{echo_server} HTTP/1.1\r\n\r\n".encode())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")  # a freed one is usable again
        writer.close()
    finally:
        await proxy.close()


async def test_each_job_has_its_own_socket_and_closing_removes_it(proxy, upstream):
    first = await open_job(proxy, [f"127.0.0.1:{upstream.port}"], job_id="a")
    second = await open_job(proxy, [], job_id="b")
    assert status_of(await exchange(first, get(f"http://127.0.0.1:{upstream.port}/"))) == 200
    assert status_of(await exchange(second, get(f"http://127.0.0.1:{upstream.port}/"))) == 403
    assert stat.S_IMODE(os.stat(first.socket_dir).st_mode) == 0o711  # the folder is not listable
    with pytest.raises(ValueError, match="already has an open egress channel"):
        await open_job(proxy, [], job_id="a")
    await proxy.close_job("a")
    assert not first.socket_path.exists() and not first.socket_dir.exists()
    with pytest.raises(KeyError):
        await proxy.close_job("a")
    with pytest.raises(ValueError, match="not usable in a socket path"):
        await open_job(proxy, [], job_id="../x")


async def test_the_log_itemises_up_to_its_limit_and_counts_the_rest(proxy, upstream):
    channel = await open_job(proxy, [])
    channel.log.max_items = 3
    for _ in range(5):
        await exchange(channel, b"CONNECT evil.example:443 HTTP/1.1\r\n\r\n")
    log = await proxy.close_job("job1")
    assert (len(log.items), log.unlisted, log.requests) == (3, 2, 5)
    assert log.report().blocked[0].requests == 5
    assert log.event_data()["blocked"] == 5 and log.event_data()["unlisted"] == 2


async def test_real_clients_use_it_as_their_proxy(proxy, upstream):
    """curl, as tools in the sandbox do, through a TCP→Unix forwarder like the sandbox's (socat)."""
    if shutil.which("curl") is None or shutil.which("socat") is None:
        unavailable("curl and socat are needed for this test")
    channel = await open_job(proxy, [f"127.0.0.1:{upstream.port}"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    forwarder = subprocess.Popen(["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
                                  f"UNIX-CONNECT:{channel.socket_path}"])
    try:
        await asyncio.sleep(0.3)
        env = {"PATH": os.environ["PATH"], "http_proxy": f"http://127.0.0.1:{port}",
               "https_proxy": f"http://127.0.0.1:{port}"}
        ok = await asyncio.create_subprocess_exec("curl", "-sS", "--noproxy", "", f"http://127.0.0.1:{upstream.port}/big/100000",
                                                  env=env, stdout=asyncio.subprocess.PIPE)
        out, _ = await ok.communicate()
        assert out == b"x" * 100_000
        tunnel = await asyncio.create_subprocess_exec("curl", "-sS", "-p", "--noproxy", "",
                                                      f"http://127.0.0.1:{upstream.port}/via-connect",
                                                      env=env, stdout=asyncio.subprocess.PIPE)
        out, _ = await tunnel.communicate()
        assert b'"path": "/via-connect"' in out
        refused = await asyncio.create_subprocess_exec("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                                       "https://pypi.org/simple/", env=env,
                                                       stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await refused.communicate()
        assert refused.returncode != 0 and b"403" in out + err
    finally:
        forwarder.terminate()
        forwarder.wait()
    methods = [(r.method, r.allowed) for r in (await proxy.close_job("job1")).items]
    assert methods == [("GET", True), ("CONNECT", True), ("CONNECT", False)]


async def test_a_jobs_slow_lookups_wait_for_each_other_not_for_other_jobs(socket_root, upstream):
    """A name below an allowed suffix is its owner's DNS to answer, slowly if it likes."""
    busy, most = 0, 0

    async def resolver(host, port, timeout):
        nonlocal busy, most
        busy += 1
        most = max(most, busy)
        try:
            if host.startswith("slow"):
                await asyncio.sleep(1.0)
            return [ipaddress.ip_address("127.0.0.1")]
        finally:
            busy -= 1

    proxy = EgressProxy(socket_root, resolver=resolver)
    try:
        rules = [f"*.corp.example:{upstream.port}", f"fast.corp.example:{upstream.port}"]
        slow_job = await proxy.open_job("a", EgressPolicy(rules, rules), enabled=True)
        fast_job = await proxy.open_job("b", EgressPolicy(rules, rules), enabled=True)
        slow = [asyncio.create_task(exchange(slow_job, get(f"http://slow{i}.corp.example:{upstream.port}/")))
                for i in range(5)]
        await asyncio.sleep(0.1)
        started = asyncio.get_running_loop().time()
        answer = await exchange(fast_job, get(f"http://fast.corp.example:{upstream.port}/"))
        assert status_of(answer) == 200 and asyncio.get_running_loop().time() - started < 0.5
        assert [status_of(a) for a in await asyncio.gather(*slow)] == [403] * 5  # loopback via a suffix
        assert most == 3  # two of the slow job's, and the other job's
    finally:
        await proxy.close()


async def test_a_lookup_that_outlives_its_wait_keeps_its_slot_until_it_ends(socket_root, upstream):
    """A job whose DNS never answers in time cannot start more lookups than its slots while the threads
    of the earlier ones are still busy: the proxy's few DNS threads stay free for other jobs."""
    from app.agent.egress.proxy import LOOKUPS_PER_JOB

    busy, most, release = 0, 0, asyncio.Event()

    async def resolver(host, port, timeout):
        nonlocal busy, most
        busy += 1
        most = max(most, busy)
        try:
            await release.wait()  # far beyond the proxy's wait for it
            return [ipaddress.ip_address("127.0.0.1")]
        finally:
            busy -= 1

    proxy = EgressProxy(socket_root, EgressLimits(resolve_timeout_s=0.2), resolver=resolver)
    try:
        rules = [f"*.corp.example:{upstream.port}"]
        job = await proxy.open_job("a", EgressPolicy(rules, rules), enabled=True)
        url = "http://slow{}.corp.example:%d/" % upstream.port
        first = await asyncio.gather(*(exchange(job, get(url.format(i))) for i in range(LOOKUPS_PER_JOB)))
        assert [status_of(a) for a in first] == [502] * LOOKUPS_PER_JOB
        later = asyncio.create_task(exchange(job, get(url.format("later"))))
        await asyncio.sleep(0.3)
        # The timed-out lookups still hold their slots: the next waits instead of taking a third thread.
        assert busy == most == LOOKUPS_PER_JOB and not later.done()
        release.set()
        await later
        assert busy == 0
    finally:
        release.set()
        await proxy.close()
