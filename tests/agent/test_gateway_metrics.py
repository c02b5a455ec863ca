"""The gateway counts a job's tokens and cost for GET /metrics as they stream past, by the job's model."""

from __future__ import annotations

import pytest

from app.agent.gateway import ModelGateway
from app.agent.policy import ModelPolicy
from app.fakes.model_api import ScriptedTurn
from tests.agent.test_gateway import post
from tests.support.metrics import here


@pytest.mark.parametrize("stream", [True, False])
async def test_tokens_by_kind_and_cost_by_model(gateway: ModelGateway, fake_upstream, stream) -> None:
    fake, _ = fake_upstream
    fake.script = [ScriptedTurn(text="One."), ScriptedTurn(text="Two, a little longer than one.")]
    before = here()
    channel = await gateway.open_job("job-metrics", ModelPolicy.for_job("claude-haiku-4-5"))
    for _ in fake.script[:]:
        status, _, _ = await post(channel.socket_path, channel.token, {
            "model": "claude-haiku-4-5", "max_tokens": 1024, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]})
        assert status == 200
    usage = await gateway.close_job("job-metrics")
    after = here()

    assert usage.input_tokens > 0 and usage.output_tokens > 0
    for kind in ("input", "output", "cache_creation_input", "cache_read_input"):
        counted = after.since(before, "agentvine_model_tokens_total", model="claude-haiku-4-5", kind=kind)
        assert counted == getattr(usage, f"{kind}_tokens"), kind
    assert after.since(before, "agentvine_model_cost_usd_total", model="claude-haiku-4-5") == pytest.approx(usage.cost_usd)
    assert usage.cost_usd > 0
