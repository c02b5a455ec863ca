"""The sandbox: the container image Claude Code runs in, and the runner that starts it."""
