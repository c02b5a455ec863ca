"""Talking to GitHub: the App's JWT and installation tokens (auth), the retrying REST client (client,
retry), and every call AgentVine makes about a repository, by name (ops)."""
