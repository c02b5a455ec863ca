"""The real Claude Code CLI → (TCP→Unix bridge) → model gateway → fake model API.

This is the path a job takes in production, minus the container: the CLI only knows a base URL
and a per-job token; the gateway swaps the token for the real key.
"""

from __future__ import annotations

import os
import time

import pytest

from app.agent.claude.command import ClaudeOptions, build_command
from app.agent.claude.events import (
    ApiRetry,
    AssistantMessage,
    ParseError,
    Result,
    SystemInit,
    Unknown,
    UserMessage,
    describe_activity,
    parse_line,
)
from app.fakes.model_api import FakeModelAPI, ScriptedTurn, ToolUse
from app.agent.gateway import ModelGateway
from app.agent.policy import CLAUDE_CODE_BETAS, MODEL_ALIASES, ModelPolicy

from tests.support.model import BRIDGES, FIXTURES, POLICY, UPSTREAM_KEY, CliRunner, tcp_to_unix

pytestmark = pytest.mark.claude

MODEL = "claude-sonnet-4-5"


def argv_for(runner: CliRunner, prompt: str, **kw) -> list[str]:
    return build_command(prompt, ClaudeOptions(
        model=kw.pop("model", MODEL),
        max_turns=kw.pop("max_turns", 8),
        permission_mode=kw.pop("permission_mode", "bypassPermissions"),
        allowed_tools=kw.pop("allowed_tools", None),
        executable=runner.executable,
        **kw,
    ))


@pytest.mark.parametrize("bridge", sorted(BRIDGES))
async def test_scripted_write_through_gateway(
    cli_runner: CliRunner, gateway: ModelGateway, fake_upstream: tuple[FakeModelAPI, str], bridge: str
) -> None:
    fake, _ = fake_upstream
    fake.script = [
        ScriptedTurn(
            text="I'll add the greeting module.",
            tool_uses=[ToolUse(name="Write", input={"file_path": "src/greet.py", "content": "print('hello')\n"})],
        ),
        ScriptedTurn(text="Created `src/greet.py`."),
    ]
    channel = await gateway.open_job("job-write-1", POLICY)
    started = time.monotonic()
    async with BRIDGES[bridge](channel.socket_path) as port:
        run = await cli_runner.run(
            argv_for(cli_runner, "Add a greeting module", allowed_tools=["Write", "Read"]),
            env=channel.claude_env(f"http://127.0.0.1:{port}"),
        )
    elapsed = time.monotonic() - started
    print(f"scripted CLI run via {bridge} bridge, end to end: {elapsed:.2f}s (CLI process {run.elapsed:.2f}s)")
    assert run.returncode == 0, run.stderr

    # The file was written in the working directory, by the non-root user.
    written = cli_runner.workdir / "src" / "greet.py"
    assert written.read_text() == "print('hello')\n"
    assert written.stat().st_uid == cli_runner.uid

    # Every line parses; the run starts with init and ends with a successful result.
    assert run.events and len(run.events) == len(run.lines)
    assert not [e for e in run.events if isinstance(e, (ParseError, Unknown))]
    init, result = run.events[0], run.events[-1]
    assert isinstance(init, SystemInit) and init.model == MODEL and "Write" in init.tools
    assert init.cwd == str(cli_runner.workdir)
    assert isinstance(result, Result) and result.ok and result.subtype == "success"
    assert result.session_id == init.session_id
    assert result.num_turns == 2 and result.result == "Created `src/greet.py`."
    tool_use = next(b for e in run.events if isinstance(e, AssistantMessage) for b in e.tool_uses)
    assert tool_use.name == "Write"
    assert describe_activity(next(e for e in run.events if isinstance(e, AssistantMessage) and e.tool_uses),
                             cwd=str(cli_runner.workdir)) == "Wrote `src/greet.py`"
    results = [r for e in run.events if isinstance(e, UserMessage) for r in e.tool_results]
    assert results[0].tool_use_id == tool_use.id and not results[0].is_error

    # The fake got the tool_result for that tool_use in the next turn's request.
    assert len(fake.main_requests) == 2
    sent = fake.tool_results()
    assert [r["tool_use_id"] for r in sent] == [tool_use.id]
    assert "File created successfully" in str(sent[0]["content"])

    # Upstream saw the real key, the CLI's headers and query, never the job token.
    for call in fake.calls:
        headers = {k.lower(): v for k, v in call.headers.items()}
        assert headers["x-api-key"] == UPSTREAM_KEY
        assert "authorization" not in headers
        assert headers["anthropic-version"] == "2023-06-01"
        assert "claude-code-20250219" in headers["anthropic-beta"]
        assert call.path == "/v1/messages?beta=true"
        assert channel.token not in str(call.headers) and channel.token not in str(call.body)

    # Usage was recorded for the job and matches what the CLI itself counted.
    usage = await gateway.close_job("job-write-1")
    assert usage.requests == 2 and usage.rejected == 0 and usage.upstream_errors == 0
    assert usage.input_tokens == result.usage.input_tokens > 0
    assert usage.output_tokens == result.usage.output_tokens > 0

    # The real key never reached the CLI: not in its output, not in its files.
    assert UPSTREAM_KEY not in run.stdout and UPSTREAM_KEY not in run.stderr
    for path in cli_runner.home.rglob("*"):
        if path.is_file():
            assert UPSTREAM_KEY not in path.read_text(errors="replace"), path


async def test_resume_continues_the_session(
    cli_runner: CliRunner, gateway: ModelGateway, fake_upstream: tuple[FakeModelAPI, str]
) -> None:
    fake, _ = fake_upstream
    fake.script = [
        ScriptedTurn(text="Should the flag be called --json or --format=json?"),
        ScriptedTurn(tool_uses=[ToolUse(name="Write", input={"file_path": "FLAG", "content": "--json\n"})]),
        ScriptedTurn(text="Added --json."),
    ]
    channel = await gateway.open_job("job-resume-1", POLICY)
    async with tcp_to_unix(channel.socket_path) as port:
        env = channel.claude_env(f"http://127.0.0.1:{port}")
        first = await cli_runner.run(argv_for(cli_runner, "Add a JSON flag"), env=env)
        assert first.returncode == 0, first.stderr
        question = first.events[-1]
        assert isinstance(question, Result) and question.result.endswith("?")
        # The answer is a prompt starting with "--": it must still be read as the prompt.
        second = await cli_runner.run(
            argv_for(cli_runner, "--json, please", resume_session=question.session_id), env=env
        )
    assert second.returncode == 0, second.stderr
    final = second.events[-1]
    assert isinstance(final, Result) and final.ok and final.session_id == question.session_id
    assert (cli_runner.workdir / "FLAG").read_text() == "--json\n"
    # The resumed request carried the earlier question and the new answer.
    history = str(fake.main_requests[1]["messages"])
    assert "Should the flag be called --json or --format=json?" in history
    assert "--json, please" in history
    usage = await gateway.close_job("job-resume-1")
    assert usage.requests == 3


async def test_wrong_token_is_refused_and_never_reaches_upstream(
    cli_runner: CliRunner, gateway: ModelGateway, fake_upstream: tuple[FakeModelAPI, str]
) -> None:
    fake, _ = fake_upstream
    fake.script = [ScriptedTurn(text="should never be played")]
    channel = await gateway.open_job("job-badtoken", POLICY)
    async with tcp_to_unix(channel.socket_path) as port:
        env = channel.claude_env(f"http://127.0.0.1:{port}")
        env["ANTHROPIC_API_KEY"] = "agv-not-the-job-token"
        env["CLAUDE_CODE_MAX_RETRIES"] = "0"  # the CLI retries a 401 ten times (about 3 minutes)
        run = await cli_runner.run(argv_for(cli_runner, "hello"), env=env)
    result = run.events[-1]
    assert isinstance(result, Result)
    assert result.is_error and result.api_error_status == 401
    assert run.returncode != 0
    assert not [e for e in run.events if isinstance(e, ApiRetry)]
    assert fake.calls == [] and fake.requests == []
    usage = await gateway.close_job("job-badtoken")
    assert usage.requests == 0 and usage.rejected >= 1


async def test_max_turns_result(
    cli_runner: CliRunner, gateway: ModelGateway, fake_upstream: tuple[FakeModelAPI, str]
) -> None:
    fake, _ = fake_upstream
    fake.script = [
        ScriptedTurn(tool_uses=[ToolUse(name="Bash", input={"command": "echo one", "description": "one"})]),
        ScriptedTurn(tool_uses=[ToolUse(name="Bash", input={"command": "echo two", "description": "two"})]),
    ]
    channel = await gateway.open_job("job-maxturns", POLICY)
    async with tcp_to_unix(channel.socket_path) as port:
        run = await cli_runner.run(
            argv_for(cli_runner, "loop", max_turns=1), env=channel.claude_env(f"http://127.0.0.1:{port}")
        )
    result = run.events[-1]
    assert isinstance(result, Result)
    assert result.subtype == "error_max_turns" and result.is_error and not result.ok
    assert result.result is None and result.errors
    assert run.returncode == 1


async def test_fresh_transcript_parses_like_the_recorded_fixture(
    cli_runner: CliRunner, gateway: ModelGateway, fake_upstream: tuple[FakeModelAPI, str]
) -> None:
    """Records a fresh transcript from the real CLI and checks that every line still parses into
    a known event (drift in the CLI's output shows here). With AGENTVINE_SAVE_FIXTURES=1 it also
    replaces the recorded fixture."""
    fake, _ = fake_upstream
    fake.script = [
        ScriptedTurn(text="I'll create the module.",
                     tool_uses=[ToolUse(name="Write", input={"file_path": "hello.py", "content": "print('hi')\n"})]),
        ScriptedTurn(tool_uses=[ToolUse(name="Bash", input={"command": "python3 hello.py", "description": "Run it"})]),
        ScriptedTurn(tool_uses=[ToolUse(name="Edit", input={"file_path": "hello.py", "old_string": "hi",
                                                            "new_string": "hello"})]),
        ScriptedTurn(tool_uses=[ToolUse(name="Read", input={"file_path": "hello.py"})]),
        ScriptedTurn(text="Created hello.py; it prints hello."),
    ]
    channel = await gateway.open_job("job-fixture", POLICY)
    async with tcp_to_unix(channel.socket_path) as port:
        run = await cli_runner.run(argv_for(cli_runner, "Create hello.py"),
                                   env=channel.claude_env(f"http://127.0.0.1:{port}"))
    assert run.returncode == 0
    events = [parse_line(line) for line in run.lines]
    unknown = [line[:200] for line, event in zip(run.lines, events) if isinstance(event, (Unknown, ParseError))]
    assert unknown == [], unknown
    recorded = FIXTURES / "stream_write_bash_edit_read.jsonl"
    kinds = lambda evs: [type(e).__name__ for e in evs if e is not None]  # noqa: E731
    assert kinds(events) == kinds(parse_line(line) for line in recorded.read_text().splitlines())
    if os.environ.get("AGENTVINE_SAVE_FIXTURES") == "1":
        recorded.write_text("".join(line + "\n" for line in run.lines))


# The models AgentVine's shipped config uses (bot_config/default.yml), and the CLI's aliases.
POLICY_MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1", "sonnet", "opus", "haiku"]


@pytest.mark.parametrize("model", POLICY_MODELS)
async def test_claude_code_fits_the_job_policy(
    cli_runner: CliRunner, gateway: ModelGateway, fake_upstream: tuple[FakeModelAPI, str], model: str
) -> None:
    """Everything Claude Code sends in a run with Bash and a subagent passes the job's policy
    (model, max_tokens, betas, fields, client tools only), so the policy is not too tight; the
    models, betas and max_tokens it used are printed (docs/model-gateway.md has them)."""
    fake, _ = fake_upstream
    fake.script = [
        ScriptedTurn(tool_uses=[ToolUse(name="Bash", input={"command": "echo one", "description": "one"})]),
        ScriptedTurn(tool_uses=[ToolUse(name="Agent", input={"description": "sub", "prompt": "look",
                                                             "subagent_type": "general-purpose"})]),
        ScriptedTurn(text="done"),
    ]
    fake.subagent_script = [ScriptedTurn(text="sub done")]
    channel = await gateway.open_job("job-policy", ModelPolicy.for_job(model))
    async with tcp_to_unix(channel.socket_path) as port:
        run = await cli_runner.run(argv_for(cli_runner, "hi", model=model),
                                   env=channel.claude_env(f"http://127.0.0.1:{port}"))
    usage = await gateway.close_job("job-policy")
    seen = {(c.body["model"], c.body["max_tokens"]) for c in fake.calls if isinstance(c.body, dict)}
    betas = {b for c in fake.calls for b in c.headers.get("anthropic-beta", "").split(",")}
    print(f"--model {model}: requests {sorted(seen)}, betas {sorted(betas)}")
    assert run.returncode == 0, run.stderr
    assert usage.refused_policy == 0 and usage.rejected == 0
    assert usage.requests == usage.turns == 5 == len(fake.calls)  # 4 main turns and the subagent's
    assert {m for m, _ in seen} == {MODEL_ALIASES.get(model, model)}  # one model, no small/fast one
    assert betas <= CLAUDE_CODE_BETAS


async def test_a_refused_request_stops_claude_code_at_once(
    cli_runner: CliRunner, gateway: ModelGateway, fake_upstream: tuple[FakeModelAPI, str]
) -> None:
    """Past the budget the gateway answers 403 permission_error; with its default retries (no
    CLAUDE_CODE_MAX_RETRIES) the CLI does not retry it: it prints the error and exits 1."""
    fake, _ = fake_upstream
    fake.script = [
        ScriptedTurn(tool_uses=[ToolUse(name="Bash", input={"command": "echo one", "description": "one"})]),
        ScriptedTurn(text="never played"),
    ]
    # The fake counts ~27 kB of prompt as ~7000 input tokens: about $0.02 at claude-sonnet-4-5's price.
    channel = await gateway.open_job("job-budget", ModelPolicy.for_job(MODEL, budget_usd=0.01))
    async with tcp_to_unix(channel.socket_path) as port:
        env = {k: v for k, v in channel.claude_env(f"http://127.0.0.1:{port}").items() if k != "CLAUDE_CODE_MAX_RETRIES"}
        run = await cli_runner.run(argv_for(cli_runner, "hi"), env=env, timeout=60)
    usage = await gateway.close_job("job-budget")
    result = run.events[-1]
    assert isinstance(result, Result) and result.is_error and result.api_error_status == 403
    assert "budget" in (result.result or "")
    assert run.returncode == 1 and run.elapsed < 20
    assert not [e for e in run.events if isinstance(e, ApiRetry)]
    assert len(fake.calls) == 1 and usage.turns == 1 and usage.refused_budget == 1 and usage.rejected == 1
