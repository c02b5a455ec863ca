"""What the GitHub App asks for is written once (app/github/manifest.py) and matches what AgentVine uses:
the tokens each step asks for, the events routing handles, and what docs/github-app.md lists."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from app.domain.job import Job, RunSettings, Trigger
from app.fakes.github.auth import generate_private_key_pem
from app.github import manifest
from app.github.urls import GitHubUrlError, github_urls
from app.intake.routing import router
from app.pipeline.context import STEP_PERMISSIONS, step_permissions
from tests.support.env import ROOT

LEVELS = {"read": 1, "write": 2, "admin": 3}


def _highest(grants: list[dict[str, str]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for grant in grants:
        for name, access in grant.items():
            if LEVELS[access] > LEVELS.get(found.get(name, ""), 0):
                found[name] = access
    return found


def test_the_app_asks_for_exactly_what_the_steps_tokens_use():
    assert manifest.permissions() == _highest(list(STEP_PERMISSIONS.values()))


def test_the_workflows_permission_is_the_one_a_run_allowed_to_change_workflows_asks_for():
    settings = RunSettings(prompt_template="p", max_turns=1, timeout_minutes=1, max_cost_usd=1, allowed_tools=[],
                           allowed_paths=[], allow_workflow_changes=True, trigger_permission="write",
                           memory="1g", cpus=1, pids=64)
    job = Job(delivery_id="d", installation_id=1, repo="o/r", issue_number=1, requester="alice",
              trigger=Trigger(kind="label", label="agentvine:bugfix"), worker="bugfix", run=settings)
    extra = set(step_permissions(job, "run").items()) - set(STEP_PERMISSIONS["run"].items())
    assert extra == {(manifest.WORKFLOWS.name, manifest.WORKFLOWS.access)}
    assert manifest.permissions(workflows=True) == {**manifest.permissions(), "workflows": "write"}


def test_the_app_subscribes_to_exactly_the_events_routing_handles():
    routed = set(router._shallow_routes) | set(router._deep_routes)  # gidgethub keeps them by event name
    subscribed = {need.name for need in manifest.EVENTS}
    always = {need.name for need in manifest.ALWAYS_SENT}
    assert subscribed | always == routed
    assert not subscribed & always


def test_docs_github_app_lists_what_the_manifest_holds():
    text = (ROOT / "docs" / "github-app.md").read_text()
    found = re.search(r"<!-- manifest:begin -->\n(.*?)\n<!-- manifest:end -->", text, re.S)
    assert found, "docs/github-app.md must hold the generated lists between the manifest markers"
    assert found.group(1) == manifest.docs_section(), (
        "docs/github-app.md is out of date; put this between its markers:\n" + manifest.docs_section())


def test_the_manifest_carries_the_addresses_and_what_the_app_needs():
    built = manifest.build_manifest(name="AgentVine", public_url="https://av.example.com",
                                    webhook_url="https://av.example.com/webhooks",
                                    redirect_url="http://127.0.0.1:3000/callback")
    data = built.model_dump()
    assert data["hook_attributes"] == {"url": "https://av.example.com/webhooks", "active": True}
    assert data["redirect_url"] == "http://127.0.0.1:3000/callback" and data["public"] is False
    assert data["default_events"] == [e.name for e in manifest.EVENTS]
    with pytest.raises(ValidationError):
        manifest.build_manifest(name="x" * 35, public_url="u", webhook_url="w", redirect_url="r")


@pytest.mark.parametrize("web,api,expected", [
    ("https://github.com", None, ("https://github.com", "https://api.github.com")),
    ("https://github.com/", None, ("https://github.com", "https://api.github.com")),
    ("https://ghe.example.com", None, ("https://ghe.example.com", "https://ghe.example.com/api/v3")),
    ("https://ghe.example.com:8443/", None, ("https://ghe.example.com:8443", "https://ghe.example.com:8443/api/v3")),
    ("https://octo.ghe.com", None, ("https://octo.ghe.com", "https://api.octo.ghe.com")),
    ("http://127.0.0.1:9", "http://127.0.0.1:9", ("http://127.0.0.1:9", "http://127.0.0.1:9")),
])
def test_github_addresses_for_github_com_enterprise_server_and_ghe_com(web, api, expected):
    urls = github_urls(web, api)
    assert (urls.web, urls.api) == expected and urls.git == urls.web
    assert urls.is_github_com is (expected[0] == "https://github.com")


@pytest.mark.parametrize("web", ["ftp://ghe.example.com", "ghe.example.com", "https://api.github.com",
                                 "https://ghe.example.com/api/v3", "https://user:pw@ghe.example.com",
                                 "https://ghe.example.com/?x=1"])
def test_github_addresses_that_cannot_be_used_are_refused(web):
    with pytest.raises(GitHubUrlError):
        github_urls(web)


def test_registration_and_settings_pages_are_on_the_githubs_own_host():
    urls = github_urls("https://ghe.example.com")
    assert manifest.registration_url(urls, "s t") == "https://ghe.example.com/settings/apps/new?state=s+t"
    assert manifest.registration_url(urls, "s", "octo org") == (
        "https://ghe.example.com/organizations/octo%20org/settings/apps/new?state=s")
    assert manifest.app_settings_url(urls, "av", "octo") == "https://ghe.example.com/organizations/octo/settings/apps/av"


def _answer(**changes):
    return {"id": 7, "slug": "agentvine", "name": "AgentVine", "html_url": "https://github.com/apps/agentvine",
            "pem": generate_private_key_pem(), "webhook_secret": "ab" * 20, "client_secret": "x", **changes}


def test_githubs_answer_is_checked_before_anything_is_written():
    assert manifest.CreatedApp.model_validate(_answer()).install_url == "https://github.com/apps/agentvine/installations/new"
    for bad in [{"pem": "not a key"}, {"pem": "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"},
                {"slug": "../x"}, {"id": 0}, {"html_url": "javascript:alert(1)"}, {"webhook_secret": "a\nb"}]:
        with pytest.raises(ValidationError):
            manifest.CreatedApp.model_validate(_answer(**bad))
