"""`agentvine doctor` against the fakes, the real Docker engine and a real data directory: all pass → 0;
each failure → its own message and fix, a non-zero exit, no traceback."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.domain.config import DEFAULT_BOT_CONFIG_DIR
from app.fakes.github.testing import free_port
from app.operator.checks.result import Context, Status
from app.operator.doctor import ALL_PASSED, CHECKS, Report, run_checks
from tests.support.doctor import doctor_world
from tests.support.env import ROOT

pytestmark = pytest.mark.docker
CHECK_NAMES = [c.__name__.removeprefix("check_").replace("_", "-") for c in CHECKS]


@pytest.fixture
async def world(tmp_path, sandbox_image, monkeypatch):
    async with doctor_world(tmp_path, sandbox_image) as world:
        for name, value in world.env.items():
            monkeypatch.setenv(name, value)
        yield world


async def doctor(monkeypatch, timeout: float = 5, **env: str | None) -> Report:
    """The checks in this process, under the world's settings changed by `env` (None: unset)."""
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return await run_checks(Context(environ=dict(os.environ), timeout=timeout))


def by_name(report: Report) -> dict:
    return {r.name: r for r in report.checks}


def assert_only_failed(report: Report, name: str, *words: str, skipped: tuple[str, ...] = ()) -> None:
    found = by_name(report)
    assert not report.ok
    assert found[name].status == Status.FAILED, found[name]
    for word in words:
        assert word in found[name].detail + " " + (found[name].fix or ""), found[name]
    assert {n for n, r in found.items() if not r.passed} == {name, *skipped}, report


def other_rsa_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "doctor", *args, cwd=ROOT, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode, out.decode(), err.decode()


# --- the command ------------------------------------------------------------------------------


async def test_every_check_passes_and_the_exit_code_is_0(world):
    code, out, err = await run_cli(world.env)
    assert code == 0, out + err
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines[:-1]] == [["ok", name] for name in CHECK_NAMES]
    assert lines[-1] == ALL_PASSED.format(count=len(CHECKS))
    assert f"App {world.github.app_id} (agentvine), 1 installation" in out
    assert [c.kind for c in world.model.calls] == ["models"]
    assert [(c.operation_id, {k.lower(): v for k, v in c.request_headers.items()}["x-github-api-version"])
            for c in world.github.calls] == [("apps/get-authenticated", "2022-11-28")]
    world.github.assert_no_violations()


async def test_json_report_and_a_failure_exit_non_zero_without_a_traceback(world):
    code, out, err = await run_cli({**world.env, "DOCKER_HOST": f"tcp://127.0.0.1:{free_port()}"}, "--json")
    assert code == 1 and "Traceback" not in out + err
    report = Report.model_validate(json.loads(out))
    found = by_name(report)
    assert not report.ok and list(found) == CHECK_NAMES
    assert found["docker"].status == "failed" and "no Docker engine answers at tcp://127.0.0.1:" in found["docker"].detail
    assert "DOCKER_HOST" in found["docker"].fix and "/var/run/docker.sock" in found["docker"].fix
    assert found["sandbox-image"].status == found["engine-paths"].status == "skipped"


# --- settings and the App's credentials ------------------------------------------------------


async def test_a_loose_settings_file_is_refused_with_the_reason(world, monkeypatch, tmp_path):
    loose = tmp_path / "agentvine.env"
    loose.write_text("AGENTVINE_APP_ID=1\n")
    loose.chmod(0o644)
    report = await doctor(monkeypatch, AGENTVINE_ENV_FILE=str(loose))
    found = by_name(report)
    assert found["settings"].status == Status.FAILED and "chmod 600" in found["settings"].detail
    assert all(found[n].status == Status.SKIPPED for n in ("required", "github", "database")), report


async def test_a_setting_that_is_not_valid_is_named_without_its_value(world, monkeypatch):
    report = await doctor(monkeypatch, AGENTVINE_MAX_CONCURRENT_JOBS="lots")
    detail = by_name(report)["settings"].detail
    assert "AGENTVINE_MAX_CONCURRENT_JOBS: Input should be a valid integer" in detail and "lots" not in detail


async def test_missing_settings_are_named(world, monkeypatch):
    report = await doctor(monkeypatch, AGENTVINE_APP_ID=None)
    assert_only_failed(report, "required", "missing: AGENTVINE_APP_ID", "agentvine setup", skipped=("github",))


@pytest.mark.parametrize("key,words", [
    ("not a key at all", ["not PEM"]),
    ("-----BEGIN PRIVATE KEY-----\\nMIIB\\n-----END PRIVATE KEY-----", ["line breaks are written as \\n"]),
    ("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n", ["not a PEM private key"]),
    (ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode(),
     ["not RSA"]),
], ids=["text", "escaped-newlines", "bad-base64", "ec-key"])
async def test_a_key_that_is_not_a_pem_rsa_key_says_what_it_is(world, monkeypatch, key, words):
    report = await doctor(monkeypatch, AGENTVINE_PRIVATE_KEY=key, AGENTVINE_PRIVATE_KEY_PATH=None)
    assert_only_failed(report, "private-key", *words, "AGENTVINE_PRIVATE_KEY_PATH", skipped=("github",))


async def test_a_key_path_that_cannot_be_read(world, monkeypatch, tmp_path):
    report = await doctor(monkeypatch, AGENTVINE_PRIVATE_KEY_PATH=str(tmp_path / "nowhere.pem"))
    assert_only_failed(report, "private-key", "cannot be read", "nowhere.pem", skipped=("github",))


async def test_a_key_that_is_not_the_apps_is_refused_by_github(world, monkeypatch):
    report = await doctor(monkeypatch, AGENTVINE_PRIVATE_KEY=other_rsa_key(), AGENTVINE_PRIVATE_KEY_PATH=None)
    assert_only_failed(report, "github", "GitHub refused the App's JWT (401: A JSON web token could not be decoded)",
                       "Private keys")


async def test_another_apps_id_is_refused_by_github(world, monkeypatch):
    report = await doctor(monkeypatch, AGENTVINE_APP_ID="999")
    assert_only_failed(report, "github", "401", "AGENTVINE_APP_ID")


async def test_an_unreachable_github_and_a_url_that_is_not_its_api(world, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    report = await doctor(monkeypatch, AGENTVINE_GITHUB_API_URL=url)
    assert_only_failed(report, "github", f"cannot reach GitHub at {url}", "/api/v3")
    report = await doctor(monkeypatch, AGENTVINE_GITHUB_API_URL=world.env["AGENTVINE_MODEL_API_URL"])
    assert_only_failed(report, "github", "not found (404)", "REST API's root")


async def test_a_slow_github_is_given_up_on_after_the_timeout(world, monkeypatch):
    world.github.inject_fault("GET", r"^/app$", status=None, delay=3)
    report = await doctor(monkeypatch, timeout=1)
    github = by_name(report)["github"]  # (other checks may be slower than 1 s on a busy machine)
    assert github.status == Status.FAILED and github.detail.endswith("did not answer within 1 s"), github


async def test_a_short_webhook_secret_is_refused(world, monkeypatch):
    report = await doctor(monkeypatch, AGENTVINE_WEBHOOK_SECRET="hunter2")
    assert_only_failed(report, "webhook-secret", "7 characters", "secrets.token_hex")


async def test_bot_config_beyond_a_ceiling(world, monkeypatch, tmp_path):
    report = await doctor(monkeypatch, AGENTVINE_BOT_CONFIG=str(bot_config(tmp_path, max_size_mb=9000)))
    assert_only_failed(report, "bot-config", "workspace.max_size_mb", "Ceilings", skipped=("disk",))


# --- Docker ------------------------------------------------------------------------------------


async def test_an_unreachable_engine_names_docker_host_and_the_socket(world, monkeypatch):
    report = await doctor(monkeypatch, DOCKER_HOST="unix:///nonexistent/docker.sock")
    assert_only_failed(report, "docker", "no Docker engine answers at unix:///nonexistent/docker.sock",
                       "-v /var/run/docker.sock:/var/run/docker.sock", skipped=("sandbox-image", "engine-paths"))


async def test_a_missing_sandbox_image_says_how_to_build_it(world, monkeypatch):
    report = await doctor(monkeypatch, AGENTVINE_SANDBOX_IMAGE="agentvine-sandbox:no-such-tag")
    assert_only_failed(report, "sandbox-image", "no image agentvine-sandbox:no-such-tag", "agentvine sandbox build",
                       skipped=("engine-paths",))


# --- the model API ---------------------------------------------------------------------------------


async def test_a_wrong_model_key_is_refused_with_anthropics_error(world, monkeypatch):
    report = await doctor(monkeypatch, ANTHROPIC_API_KEY="sk-ant-wrong")
    assert_only_failed(report, "model-key", "refused ANTHROPIC_API_KEY (401 authentication_error: invalid x-api-key)")
    assert [c.kind for c in world.model.calls] == ["unauthorized"]


async def test_a_missing_or_unreachable_model_api(world, monkeypatch):
    report = await doctor(monkeypatch, ANTHROPIC_API_KEY=None)
    assert_only_failed(report, "model-key", "ANTHROPIC_API_KEY is not set")
    url = f"http://127.0.0.1:{free_port()}"
    report = await doctor(monkeypatch, AGENTVINE_MODEL_API_URL=url, ANTHROPIC_API_KEY=world.env["ANTHROPIC_API_KEY"])
    assert_only_failed(report, "model-key", f"cannot reach the model API at {url}")


# --- the data directory ----------------------------------------------------------------------------


def bot_config(tmp_path: Path, *, max_size_mb: int) -> Path:
    data = yaml.safe_load((DEFAULT_BOT_CONFIG_DIR / "default.yml").read_text())
    data["workspace"]["max_size_mb"] = max_size_mb
    path = tmp_path / "bot-config.yml"
    path.write_text(yaml.safe_dump(data))
    return path


async def test_disk_space_warns_for_many_jobs_and_fails_for_one(world, monkeypatch, tmp_path):
    free_mb = shutil.disk_usage(tmp_path).free // 2**20
    report = await doctor(monkeypatch, AGENTVINE_MAX_CONCURRENT_JOBS=str(free_mb // 4160 + 1))
    found = by_name(report)
    assert report.ok and found["disk"].status == Status.WARN and "GiB free in" in found["disk"].detail
    if free_mb + 1024 > 1_000_000:
        pytest.skip("more than a TB free: no workspace quota is larger than that")
    config = bot_config(tmp_path, max_size_mb=free_mb + 1024)
    report = await doctor(monkeypatch, AGENTVINE_BOT_CONFIG=str(config), AGENTVINE_MAX_WORKSPACE_MB="1000000")
    assert_only_failed(report, "disk", "not enough for one job's workspace", "AGENTVINE_MAX_CONCURRENT_JOBS")


async def test_a_damaged_database_and_a_data_dir_that_is_a_file(world, monkeypatch, tmp_path):
    data = Path(world.env["AGENTVINE_DATA_DIR"])
    data.mkdir()
    (data / "agentvine.db").write_bytes(b"this is no SQLite database" * 100)
    report = await doctor(monkeypatch)
    assert_only_failed(report, "database", "file is not a database", "move a damaged agentvine.db away")
    plain = tmp_path / "plain-file"
    plain.write_text("")
    report = await doctor(monkeypatch, AGENTVINE_DATA_DIR=str(plain))
    found = by_name(report)
    assert found["database"].status == Status.FAILED and found["engine-paths"].status == Status.FAILED
