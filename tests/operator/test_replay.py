"""`agentvine replay FILE --event NAME`: a saved payload through the path of a delivery, to a running
service (the harness's, on loopback, against the GitHub fake) or --embedded (real Docker, real CLI);
and every bad input refused with one sentence and a non-zero exit code."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid

import pytest
from aiohttp import web

from app.cli import main
from app.fakes.github.testing import free_port
from app.operator import replay, replay_service
from app.operator.replay_embedded import VIOLATIONS
from tests.support import payloads
from tests.support.env import ROOT, SECRET, WEBHOOKS, as_bytes
from tests.support.harness import INSTALLATION, REPO, running_agentvine


async def run_replay(*args: str, env: dict[str, str | None], timeout: float = 60) -> tuple[int, str, str]:
    """`agentvine replay ...` as a process of its own (`env` over this one's; None unsets): its exit code,
    stdout and stderr."""
    merged = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "--log-level", "WARNING", "replay", *args, cwd=ROOT, env=merged,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode, out.decode(), err.decode()


def service_env(bot, secret: str | None = SECRET) -> dict[str, str | None]:
    return {"AGENTVINE_WEBHOOK_SECRET": secret, "AGENTVINE_PUBLIC_URL": str(bot.client.make_url("")).rstrip("/")}


async def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


def labeled_file(bot, tmp_path, **issue) -> tuple[int, object]:
    """GitHub's example `issues.labeled`, retargeted at an issue of the harness's repository, saved to a file."""
    number = bot.github.add_issue(REPO, title="Parser rejects tabs", user="alice", **issue)["number"]
    payload = payloads.labeled_issue(label="agentvine:bugfix", issue=bot.github.issue(REPO, number), repo=bot.repo,
                                     installation_id=INSTALLATION, sender="alice")
    path = tmp_path / "labeled.json"
    path.write_bytes(as_bytes(payload))
    return number, path


# --- to a running service -------------------------------------------------------------------------


async def test_a_replayed_example_payload_starts_its_job_and_the_same_file_again_starts_nothing(bot, tmp_path):
    number, path = labeled_file(bot, tmp_path)
    env = service_env(bot)
    code, out, err = await run_replay(str(path), "--event", "issues", env=env)
    assert code == 0, err
    job_id = re.search(r"^outcome: job (\w+)$", out, re.MULTILINE)[1]
    assert f"{env['AGENTVINE_PUBLIC_URL']}/jobs/{job_id}" in out
    assert "202 accepted" in out

    def acknowledged() -> bool:  # max_concurrent_jobs=0: acknowledged, no agent started
        return bool(bot.github.check_runs_for(REPO)) and any(
            f"agentvine:job:{job_id}" in c["body"] for c in bot.github.comments_on(REPO, number))

    await wait_for(acknowledged)
    assert [r["content"] for r in bot.github.reactions_on_issue(REPO, number)] == ["eyes"]
    assert [run["name"] for run in bot.github.check_runs_for(REPO)] == ["AgentVine · bugfix"]

    code, again, err = await run_replay(str(path), "--event", "issues", env=env)
    assert code == 0, err
    first_delivery = re.search(r"as delivery ([0-9a-f-]{36})", out)[1]
    assert f"outcome: ignored: the same signed body as delivery {first_delivery}" in again
    assert "/agentvine retry" in again and "docs/usage.md" in again
    assert "job " not in again.split("outcome:")[1].split("This body")[0]  # no job line
    await bot.settle()
    assert len(bot.github.check_runs_for(REPO)) == 1
    assert len(bot.service.store.delivery_jobs(first_delivery)) == 1


async def test_the_same_delivery_id_again_is_a_redelivery_and_shows_what_became_of_the_first(bot, tmp_path):
    _, path = labeled_file(bot, tmp_path)
    delivery_id = str(uuid.uuid4())
    env = service_env(bot)
    first = await run_replay(str(path), "--event", "issues", "--delivery-id", delivery_id, env=env)
    assert first[0] == 0, first[2]
    code, out, err = await run_replay(str(path), "--event", "issues", "--delivery-id", delivery_id, env=env)
    assert code == 0, err
    assert replay_service.DUPLICATE.format(delivery_id=delivery_id) in out
    assert re.search(r"^outcome: job \w+$", out, re.MULTILINE)


async def test_a_wrong_secret_is_refused_and_named_with_where_it_came_from(bot, tmp_path):
    _, path = labeled_file(bot, tmp_path)
    code, out, err = await run_replay(str(path), "--event", "issues", env=service_env(bot, secret="not-the-secret"))
    assert code == 1 and "Traceback" not in err
    assert "refused the signature (401: bad signature)" in err
    assert "AGENTVINE_WEBHOOK_SECRET, from the environment, is not the service's webhook secret" in err

    settings_file = tmp_path / "agentvine.env"
    settings_file.write_text("AGENTVINE_WEBHOOK_SECRET=also-wrong\n")
    settings_file.chmod(0o600)
    env = {**service_env(bot, secret=None), "AGENTVINE_ENV_FILE": str(settings_file)}
    code, _, err = await run_replay(str(path), "--event", "issues", env=env)
    assert code == 1 and f"AGENTVINE_WEBHOOK_SECRET, from the settings file {settings_file}," in err
    await bot.settle()
    assert bot.github.reactions_on_issue(REPO, 1) == [] and not bot.github.check_runs_for(REPO)


async def test_a_ping_is_answered_and_nothing_is_followed(bot, tmp_path):
    code, out, err = await run_replay(str(WEBHOOKS / "ping" / "payload.json"), "--event", "ping", env=service_env(bot))
    assert code == 0, err
    assert "the service answered the ping: " in out and "outcome:" not in out


async def test_wait_0_delivers_and_says_where_the_outcome_will_be(bot, tmp_path):
    _, path = labeled_file(bot, tmp_path)
    env = service_env(bot)
    code, out, err = await run_replay(str(path), "--event", "issues", "--wait", "0", env=env)
    assert code == 0, err
    delivery_id = re.search(r"as delivery ([0-9a-f-]{36})", out)[1]
    assert replay_service.NOT_FOLLOWED.format(url=env["AGENTVINE_PUBLIC_URL"], delivery_id=delivery_id) in out


async def test_a_service_with_a_lower_body_limit_says_so(github, tmp_path):
    async with running_agentvine(github, tmp_path, max_concurrent_jobs=0, max_body_bytes=2000) as small:
        _, path = labeled_file(small, tmp_path)
        code, _, err = await run_replay(str(path), "--event", "issues", env=service_env(small))
    assert code == 1
    assert "the service refused the body as too large (413): its AGENTVINE_MAX_BODY_BYTES is below" in err


async def test_a_server_that_is_not_agentvine_is_not_believed(tmp_path, aiohttp_server):
    async def anything(_request):
        return web.Response(text="<html>welcome</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    server = await aiohttp_server(app)
    path = tmp_path / "payload.json"
    path.write_text("{}")
    env = {"AGENTVINE_WEBHOOK_SECRET": SECRET, "AGENTVINE_PUBLIC_URL": str(server.make_url("")).rstrip("/")}
    code, out, err = await run_replay(str(path), "--event", "issues", env=env)
    assert code == 1 and out == ""
    assert "/webhooks did not answer as AgentVine does (200): " in err and "welcome" in err


def test_an_unreachable_service_is_named_with_the_setting_that_points_at_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("AGENTVINE_WEBHOOK_SECRET", SECRET)
    path = tmp_path / "p.json"
    path.write_text('{"action": "labeled"}')
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["replay", str(path), "--event", "issues", "--url", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"agentvine replay: cannot reach the service at {url} (")
    assert "AGENTVINE_PUBLIC_URL, or --url" in err


def test_without_a_webhook_secret_it_says_which_setting_and_offers_embedded(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("AGENTVINE_WEBHOOK_SECRET", raising=False)
    path = tmp_path / "p.json"
    path.write_text("{}")
    assert main(["replay", str(path), "--event", "issues"]) == 2
    err = capsys.readouterr().err
    assert "AGENTVINE_WEBHOOK_SECRET is not set" in err and "--embedded" in err


# --- bad input: one sentence, a non-zero exit code, nothing sent --------------------------------------


BAD_FILES = {
    "missing": (None, "does not exist"),
    "not JSON": (b'{"action": "labeled",', "is not JSON: "),
    "not UTF-8": (b'{"a": "\xff"}', "is not JSON: "),
    "an array": (b"[1, 2]", "holds a JSON array, not an object: a webhook payload is one JSON object"),
    "a string": (b'"issues"', "holds a JSON string, not an object"),
    "too large": (b'{"padding": "' + b"x" * 200 + b'"}', "more than a delivery may have (AGENTVINE_MAX_BODY_BYTES is 100)"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_file_that_is_no_delivery_is_refused(case, monkeypatch, tmp_path, capsys):
    content, message = BAD_FILES[case]
    monkeypatch.setenv("AGENTVINE_MAX_BODY_BYTES", "100")
    path = tmp_path / "payload.json"
    if content is not None:
        path.write_bytes(content)
    assert main(["replay", str(path), "--event", "issues", "--url", f"http://127.0.0.1:{free_port()}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"agentvine replay: {path} ") and message in err


BAD_OPTIONS = {
    "an event GitHub does not name so": (["--event", "Issues"], "--event 'Issues' is not an event name the service takes"),
    "an event that would name a file": (["--event", "../issues"], "is not an event name the service takes"),
    "a delivery id that is no UUID": (["--event", "issues", "--delivery-id", "abc"], "--delivery-id 'abc' is not a UUID"),
    "a negative wait": (["--event", "issues", "--wait", "-1"], "--wait must be a number of seconds"),
    "a wait of nan": (["--event", "issues", "--wait", "nan"], "--wait must be a number of seconds"),
    "an address that is no URL": (["--event", "issues", "--url", "localhost:8080"], "is not an http:// or https:// address (from --url)"),
    "a permission without --embedded": (["--event", "issues", "--sender-permission", "read"], replay.PERMISSION_NEEDS_EMBEDDED),
    "an address with --embedded": (["--event", "issues", "--embedded", "--url", "http://x"], replay.URL_NEEDS_SERVICE),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_an_option_the_service_would_refuse_is_refused_here(case, tmp_path, capsys):
    options, message = BAD_OPTIONS[case]
    path = tmp_path / "payload.json"
    path.write_text("{}")
    assert main(["replay", str(path), *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith("agentvine replay: ") and message in err


def test_a_directory_is_refused(tmp_path, capsys):
    assert main(["replay", str(tmp_path), "--event", "issues"]) == 2
    assert f"{tmp_path} is not a regular file" in capsys.readouterr().err


def test_a_settings_file_others_may_read_is_refused_with_the_reason(monkeypatch, tmp_path, capsys):
    settings_file = tmp_path / "agentvine.env"
    settings_file.write_text(f"AGENTVINE_WEBHOOK_SECRET={SECRET}\n")
    settings_file.chmod(0o644)
    monkeypatch.setenv("AGENTVINE_ENV_FILE", str(settings_file))
    path = tmp_path / "payload.json"
    path.write_text("{}")
    assert main(["replay", str(path), "--event", "issues"]) == 2
    err = capsys.readouterr().err
    assert "the settings file cannot be used" in err and f"chmod 600 {settings_file}" in err


async def test_bad_input_ends_without_a_traceback_from_the_command_line(tmp_path):
    path = tmp_path / "payload.json"
    path.write_text("not json")
    code, out, err = await run_replay(str(path), "--event", "issues", env={})
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.strip().startswith(f"agentvine replay: {path} is not JSON")


# --- --embedded ------------------------------------------------------------------------------------


EMBEDDED_MISSING = {
    "GitHub's example without an installation": (
        json.loads((WEBHOOKS / "issues" / "labeled.payload.json").read_text()),
        "  - installation: missing (the App installation the delivery is for"),
    "no repository": ({"action": "labeled", "installation": {"id": 1}, "sender": {"login": "alice"}},
                      "  - repository: missing (the repository the event happened in)"),
    "a repository name that is a path": (
        {"installation": {"id": 1}, "sender": {"login": "alice"}, "repository": {"full_name": "../../etc"}},
        "  - repository.full_name: must be owner/name as GitHub spells them"),
}


@pytest.mark.parametrize("case", list(EMBEDDED_MISSING))
def test_embedded_says_what_the_payload_lacks_before_starting_anything(case, tmp_path, capsys):
    payload, message = EMBEDDED_MISSING[case]
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(payload))
    assert main(["replay", str(path), "--event", "issues", "--embedded"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("agentvine replay: the embedded GitHub cannot be arranged from this payload:\n")
    assert message in err


@pytest.mark.docker
@pytest.mark.claude
async def test_embedded_runs_a_labelled_issue_end_to_end_and_prints_what_agentvine_did(sandbox_image, tmp_path):
    """No service, no App: GitHub's example, labelled, under its own repository and a number of its own."""
    payload = payloads.labeled_issue(label="agentvine:bugfix", installation_id=31337)
    payload["issue"]["number"] = 42
    path = tmp_path / "labeled.json"
    path.write_bytes(as_bytes(payload))
    code, out, err = await run_replay(str(path), "--event", "issues", "--embedded",
                                      env={"AGENTVINE_SANDBOX_IMAGE": sandbox_image}, timeout=300)
    assert code == 0, out + err
    assert "arranged Codertocat/Hello-World (installation 31337) and @Codertocat with write permission, issue #42" in out
    assert "👀 (eyes) on #42" in out
    assert "  comment on #42: " in out and "### 🌱 AgentVine · bugfix" in out and "**Result: Nothing to change**" in out
    assert "check run “AgentVine · bugfix”: completed → neutral" in out
    job_id = re.search(r"^outcome: job (\w+)$", out, re.MULTILINE)[1]
    assert f"job {job_id}: succeeded (neutral)" in out
    assert VIOLATIONS not in err and "Traceback" not in err
