"""GET /metrics read as Prometheus reads it (prometheus_client's parser), and what changed between two reads.

The figures of a process add up over every test it runs, so tests compare a read before with one after."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from app import metrics

Key = tuple[str, frozenset[tuple[str, str]]]


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[Key, float] = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 for a series not (yet) there, as for a counter never increased."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples

    def label_sets(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for sample, labels in self.samples if sample == name]

    def since(self, before: Scrape, name: str, **labels: str) -> float:
        return self.value(name, **labels) - before.value(name, **labels)


async def scrape(client, token: str | None = None) -> Scrape:
    """GET /metrics through an aiohttp client (a TestClient, or a session with the base URL in `client.url`)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return Scrape(await response.text())


def here() -> Scrape:
    """What this process has counted, without HTTP (for tests of a site with no web app around it)."""
    return Scrape(metrics.exposition()[0].decode())
