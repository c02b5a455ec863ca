"""Which backend a database URL names (without importing the backend: psycopg loads only where used)."""


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and url.split(":", 1)[0] in ("postgresql", "postgres")
