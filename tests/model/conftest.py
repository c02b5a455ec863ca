"""Fixtures for the model tests; the code lives in model_test_support.py (importable from tests)."""

from model_test_support import (  # noqa: F401  (pytest finds fixtures by name)
    claude_bin,
    cli_runner,
    fake_upstream,
    gateway,
    socket_dir,
)
