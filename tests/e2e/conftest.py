"""End to end: AgentVine with the GitHub fake, the scripted model API, real Docker and the real
Claude Code CLI in the sandbox image (helpers: tests/support/harness.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _needs_the_sandbox(sandbox_image):
    """Every test here runs the real CLI in the real image (built once if missing)."""
    return sandbox_image
