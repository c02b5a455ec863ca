"""The switch the pipeline gives the phases of a run (app/pipeline/egress.py): `egress.during: setup`
opens the proxy for the setup steps only, `run` for every phase."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.agent.egress import EgressPolicy, EgressProxy
from app.pipeline import egress


@pytest.mark.parametrize(("during", "phase", "on"), [
    ("setup", "setup", True), ("setup", "agent", False), ("setup", "verify", False),
    ("run", "setup", True), ("run", "agent", True), ("run", "verify", True),
])
def test_which_phases_have_egress(during, phase, on):
    assert egress.egress_on(during, phase) is on


async def test_the_switch_tells_the_sandbox_which_phase_has_it_off():
    folder = Path(tempfile.mkdtemp(prefix="av-eg-"))
    proxy = EgressProxy(folder)
    try:
        channel = await proxy.open_job("j", EgressPolicy())
        ctx = SimpleNamespace(job=SimpleNamespace(run=SimpleNamespace(egress_during="setup")))
        egress.switch(channel, ctx, "setup")
        assert channel.enabled
        egress.switch(channel, ctx, "verify")
        assert not channel.enabled and channel.off_reason.startswith("egress is off while the verify steps run")
        egress.switch(None, ctx, "agent")  # no proxy: nothing to switch
    finally:
        await proxy.close()
        shutil.rmtree(folder, ignore_errors=True)
