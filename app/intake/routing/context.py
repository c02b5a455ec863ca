"""What routing handlers receive besides the event, and how they hand back intents."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.domain.intents import Intent


@dataclass
class RouteContext:
    command_prefix: str
    label_prefix: str
    intents: list[Intent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, intent: Intent) -> None:
        self.intents.append(intent)

    def note(self, text: str) -> None:
        """Why nothing (or something) happened; stored as the delivery's outcome."""
        self.notes.append(text)
