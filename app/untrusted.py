"""Text that came from the agent (which read untrusted issues and code) before it is published."""

from __future__ import annotations

import re

_MENTION = re.compile(r"(?<![\w`])@(?=[A-Za-z0-9])")


def defuse_mentions(text: str) -> str:
    """Keep @user and @org/team mentions in the agent's text from notifying anyone.

    A zero-width space after "@" keeps the text readable and the mention inert; e-mail
    addresses (a word character before "@") are left alone."""
    return _MENTION.sub("@\u200b", text)
