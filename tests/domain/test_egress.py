"""The egress allow-list's entries (app/domain/egress.py): what each form allows, what the operator's
list covers, and every malformed entry a clear config error naming its key."""

from __future__ import annotations

import pytest

from app.domain.config import Ceilings, ConfigError, load_default, merge_repo_config
from app.domain.egress import EgressHost, EgressReport, EgressRule, normalize_entry, parse_host
from app.settings import Settings


def rule(text: str) -> EgressRule:
    return EgressRule.parse(text)


def allows(entry: str, host: str, port: int) -> bool:
    kind, name = parse_host(host)
    return rule(entry).matches(kind, name, port)


@pytest.mark.parametrize(("entry", "host", "port", "expected"), [
    ("pypi.org", "pypi.org", 443, True),
    ("pypi.org", "pypi.org", 80, True),
    ("pypi.org", "pypi.org", 8080, False),  # no port: the web's two only
    ("pypi.org", "PyPI.org.", 443, True),  # case and the final dot are the same name
    ("pypi.org", "files.pypi.org", 443, False),  # exact means exact
    ("pypi.org", "evilpypi.org", 443, False),
    ("*.pythonhosted.org", "files.pythonhosted.org", 443, True),
    ("*.pythonhosted.org", "a.b.pythonhosted.org", 443, True),
    ("*.pythonhosted.org", "pythonhosted.org", 443, False),  # the suffix itself is not below it
    ("*.pythonhosted.org", "evilpythonhosted.org", 443, False),
    ("*.pythonhosted.org", "pythonhosted.org.evil.com", 443, False),
    ("registry.corp:8443", "registry.corp", 8443, True),
    ("registry.corp:8443", "registry.corp", 443, False),
    ("127.0.0.1:8080", "127.0.0.1", 8080, True),
    ("127.0.0.1:8080", "localhost", 8080, False),  # an address is matched as such, never by a name
    ("localhost:8080", "127.0.0.1", 8080, False),
    ("[::1]:8080", "[::1]", 8080, True),
    ("[0:0::1]:8080", "[::1]", 8080, True),  # the canonical form is compared
    ("*.example.org", "10.0.0.1", 443, False),  # a suffix never matches an address
])
def test_what_an_entry_allows(entry, host, port, expected):
    assert allows(entry, host, port) is expected


@pytest.mark.parametrize(("entry", "message"), [
    ("https://pypi.org", "is not an allow-list entry"),
    ("pypi.org/simple", "is not an allow-list entry"),
    ("user@pypi.org", "is not an allow-list entry"),
    ("*", "a wildcard may only start an entry"),
    ("*.com", "covers a whole top-level domain"),
    ("pypi.*", "a wildcard may only start an entry"),
    ("a*.pypi.org", "a wildcard may only start an entry"),
    ("pypi.org:0", "the port must be a number from 1 to 65535"),
    ("pypi.org:65536", "the port must be a number from 1 to 65535"),
    ("pypi.org:http", "the port must be a number from 1 to 65535"),
    ("pypi.org:443:1", "is not a valid host name"),
    ("::1", "write an IPv6 address in brackets"),
    ("[::1", "is not an allow-list entry"),
    ("[not-v6]", "is not an IPv6 address"),
    ("127.1", "neither a host name nor an IP address in its usual form"),
    ("0x7f000001", "neither a host name nor an IP address in its usual form"),
    ("2130706433", "neither a host name nor an IP address in its usual form"),
    ("010.0.0.1", "neither a host name nor an IP address in its usual form"),
    ("pypi_org.com", "is not a valid host name"),
    ("-pypi.org", "is not a valid host name"),
    ("pypï.org", "write an international name in its xn-- form"),
    ("a" * 64 + ".org", "is not a valid host name"),
    ("", "is not an allow-list entry"),
    ("pypi.org pypi.io", "is not an allow-list entry"),
])
def test_a_malformed_entry_says_what_is_expected(entry, message):
    with pytest.raises(ValueError, match=message.replace("*", r"\*").replace("(", r"\(")):
        rule(entry)


def test_entries_are_kept_in_one_written_form():
    assert normalize_entry(" PyPI.org. ") == "pypi.org"
    assert normalize_entry("pypi.org:443") == "pypi.org:443"
    assert normalize_entry("[0:0::1]") == "[::1]"
    assert normalize_entry("*.Example.ORG:8080") == "*.example.org:8080"


@pytest.mark.parametrize(("operator", "repository", "covered"), [
    ("pypi.org", "pypi.org", True),
    ("pypi.org", "pypi.org:443", True),
    ("pypi.org:443", "pypi.org", False),  # 80 too is more than the operator's
    ("*.pythonhosted.org", "files.pythonhosted.org", True),
    ("*.pythonhosted.org", "*.files.pythonhosted.org", True),
    ("*.pythonhosted.org", "*.pythonhosted.org", True),
    ("*.pythonhosted.org", "pythonhosted.org", False),
    ("pythonhosted.org", "*.pythonhosted.org", False),
    ("files.pythonhosted.org", "*.pythonhosted.org", False),
    ("127.0.0.1", "127.0.0.1:80", True),
    ("127.0.0.1", "localhost", False),
    ("*.example.org", "10.0.0.1", False),
])
def test_what_the_operators_entry_covers(operator, repository, covered):
    assert rule(operator).covers(rule(repository)) is covered


def test_the_shipped_defaults_allow_no_host():
    config = load_default(ceilings=Ceilings())
    assert config.egress.allow == []
    assert config.egress.during == "setup"


def test_a_repository_may_allow_what_the_operator_covers():
    ceilings = Ceilings(egress_allow=("pypi.org", "*.pythonhosted.org", "127.0.0.1:8080"))
    config = merge_repo_config("egress: {allow: [pypi.org, files.pythonhosted.org, '127.0.0.1:8080'], during: run}",
                               ceilings=ceilings)
    assert config.egress.allow == ["pypi.org", "files.pythonhosted.org", "127.0.0.1:8080"]
    assert config.egress.during == "run"


def config_problems(text: str, ceilings: Ceilings) -> list[str]:
    with pytest.raises(ConfigError) as info:
        merge_repo_config(text, ceilings=ceilings)
    return info.value.problems


def test_a_host_beyond_the_operators_list_is_a_config_error_naming_both():
    problems = config_problems("egress: {allow: [pypi.org, registry.npmjs.org]}", Ceilings(egress_allow=("pypi.org",)))
    assert problems == ["egress.allow.1: registry.npmjs.org is not covered by the operator's egress allow-list "
                        "(pypi.org; AGENTVINE_EGRESS_ALLOW)"]


def test_with_no_operator_list_a_repository_can_allow_nothing():
    (problem,) = config_problems("egress: {allow: [pypi.org]}", Ceilings())
    assert "(empty; AGENTVINE_EGRESS_ALLOW)" in problem


@pytest.mark.parametrize(("text", "expected"), [
    ("egress: {allow: ['http://pypi.org']}", "egress.allow.0: 'http://pypi.org' is not an allow-list entry"),
    ("egress: {allow: [pypi.org, '*.com']}", "egress.allow.1: '*.com' covers a whole top-level domain"),
    ("egress: {allow: [[pypi.org]]}", "egress.allow.0: Input should be a valid string"),
    ("egress: {allow: pypi.org}", "egress.allow: Input should be a valid list"),
    ("egress: {during: always}", "egress.during: Input should be 'setup' or 'run'"),
    ("egress: {hosts: [pypi.org]}", "egress.hosts: Extra inputs are not permitted"),
])
def test_a_malformed_egress_key_is_a_config_error_with_its_key(text, expected):
    problems = config_problems(text, Ceilings(egress_allow=("pypi.org",)))
    assert any(p.startswith(expected) for p in problems), problems


def test_too_many_entries_are_refused():
    entries = ", ".join(f"h{i}.example.org" for i in range(201))
    (problem,) = config_problems(f"egress: {{allow: [{entries}]}}", Ceilings(egress_allow=("*.example.org",)))
    assert problem.startswith("egress.allow: List should have at most 200 items")


def test_the_operators_list_is_read_from_the_environment_and_checked_at_start():
    settings = Settings(egress_allow="pypi.org, *.pythonhosted.org ,127.0.0.1:8080")
    assert settings.ceilings.egress_allow == ("pypi.org", "*.pythonhosted.org", "127.0.0.1:8080")
    with pytest.raises(ValueError, match="is not an allow-list entry"):
        Settings(egress_allow="pypi.org,https://files.pythonhosted.org")


def test_reports_of_two_runs_add_up_host_by_host():
    first = EgressReport(hosts=[EgressHost(host="pypi.org", port=443, allowed=True, requests=2, bytes_down=10),
                                EgressHost(host="evil.example", port=443, allowed=False, requests=1, reason="no")])
    second = EgressReport(hosts=[EgressHost(host="pypi.org", port=443, allowed=True, requests=1, bytes_down=5)])
    merged = first.merged(second)
    assert [(h.host, h.requests, h.bytes_down) for h in merged.allowed] == [("pypi.org", 3, 15)]
    assert [h.target for h in merged.blocked] == ["evil.example:443"]
    assert first.hosts[0].requests == 2  # the report merged from is left as it was
