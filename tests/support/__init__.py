"""What tests share, imported one way (`from tests.support.<module> import ...`): the test data and
settings (env), GitHub's example payloads retargeted (payloads), AgentVine on the fakes (harness), and the
Claude Code CLI with the model gateway (model). Fixtures live in the conftest.py files only."""
