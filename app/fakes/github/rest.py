"""What a REST handler receives and returns, and the answers GitHub gives in common cases."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping
from urllib.parse import urlencode

from . import render

if TYPE_CHECKING:
    from .auth import InstallationToken
    from .state import FakeGitHub, Repo


@dataclass
class ApiRequest:
    method: str
    path: str
    base_url: str  # scheme://host of this request, for Link headers
    query: dict[str, str]
    params: dict[str, str]  # path parameters
    body: Any
    headers: Mapping[str, str]  # case-insensitive (gidgethub sends lower-case names)
    actor: dict[str, Any] | None = None  # the user the credentials act as
    token: "InstallationToken | None" = None
    repo: "Repo | None" = None
    rate_key: str = ""  # whose rate-limit bucket the request counts against
    app_id: int | None = None  # the App a JWT signed in as (the fake's own, or one a manifest created)

    def int_param(self, name: str) -> int:
        return int(self.params[name])


@dataclass
class ApiResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # A non-JSON answer (e.g. a file under `Accept: application/vnd.github.raw`); not validated,
    # since GitHub's description only describes the JSON representations.
    raw: bytes | None = None
    content_type: str = "application/json"


Handler = Callable[["FakeGitHub", ApiRequest], Awaitable[ApiResponse]]


def not_found(doc: str = render.DOCS) -> ApiResponse:
    return ApiResponse(404, render.error("Not Found", doc, status="404"))


def unprocessable(errors: list[dict[str, Any]] | None = None, message: str = "Validation Failed") -> ApiResponse:
    return ApiResponse(422, render.validation_failed(errors, message))


def unprocessable_simple(*errors: str) -> ApiResponse:
    """422 in the `validation-error-simple` shape (errors are strings), as reviews answer."""
    return ApiResponse(422, {"message": "Unprocessable Entity", "errors": list(errors),
                             "documentation_url": render.DOCS, "status": "422"})


def custom_error(message: str, resource: str) -> ApiResponse:
    return unprocessable([{"resource": resource, "code": "custom", "message": message}])


def paginate(req: ApiRequest, items: list[Any]) -> ApiResponse:
    """One page of `items` with GitHub's Link header (first/prev/next/last)."""
    per_page = min(max(int(req.query.get("per_page", 30)), 1), 100)
    page = max(int(req.query.get("page", 1)), 1)
    last = max((len(items) + per_page - 1) // per_page, 1)
    chunk = items[(page - 1) * per_page: page * per_page]
    links = []

    def link(p: int, rel: str) -> str:
        query = {**req.query, "per_page": str(per_page), "page": str(p)}
        return f'<{req.base_url}{req.path}?{urlencode(query)}>; rel="{rel}"'

    if page > 1:
        links += [link(page - 1, "prev"), link(1, "first")]
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    headers = {"Link": ", ".join(links)} if links else {}
    return ApiResponse(200, chunk, headers)
