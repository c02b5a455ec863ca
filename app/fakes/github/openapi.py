"""GitHub's OpenAPI description, loaded once, and a validator for requests and responses.

The fake checks every request the bot sends and every response it returns against the
description GitHub publishes, so the bot is tested against what GitHub really accepts,
not against what we believe it accepts.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping

from jsonschema import _keywords as js_keywords
from jsonschema.exceptions import ValidationError
from jsonschema.validators import extend
from openapi_schema_validator import OAS30Validator
from openapi_schema_validator import _keywords as oas_keywords
from openapi_schema_validator._format import oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_ENV = "AGENTVINE_OPENAPI_SPEC"
SUPPLEMENT_PATH = Path(__file__).with_name("openapi_supplement.json")
# A copy of ../shared/testdata/github/openapi/rest-subset.json, shipped with the package so the demo
# runs from any clone or installed copy (MIT, see NOTICE.md beside it); a test keeps it identical.
SHIPPED_SPEC_PATH = Path(__file__).with_name("rest-subset.json")
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# The whole document is registered under this URI so `#/components/...` refs resolve.
_DOC_URI = "urn:agentvine:github-rest"
_TARGETS = "x-agentvine-validation-targets"


def default_spec_path() -> Path:
    """$AGENTVINE_OPENAPI_SPEC, or the subset shipped beside this module."""
    if os.environ.get(SPEC_ENV):
        return Path(os.environ[SPEC_ENV])
    return SHIPPED_SPEC_PATH


def load_document(spec_path: Path | None = None) -> dict[str, Any]:
    """The subset merged with our supplement. A clash is a bug in the supplement: fail loudly."""
    doc = json.loads((spec_path or default_spec_path()).read_text())
    supplement = json.loads(SUPPLEMENT_PATH.read_text())
    for path, item in supplement.get("paths", {}).items():
        target = doc["paths"].setdefault(path, {})
        for method, operation in item.items():
            if method in target:
                raise ValueError(f"supplement redefines {method.upper()} {path}")
            target[method] = operation
    for kind, entries in supplement.get("components", {}).items():
        section = doc.setdefault("components", {}).setdefault(kind, {})
        for name, value in entries.items():
            if name in section:
                raise ValueError(f"supplement redefines components/{kind}/{name}")
            section[name] = value
    return doc


# --- two quirks of GitHub's description -------------------------------------------------
# 1. `POST /repos/{owner}/{repo}/check-runs` has `discriminator: {propertyName: status}` without a
#    `mapping`; the implicit mapping would look for `#/components/schemas/queued`, which does not
#    exist. A discriminator is only a hint in OAS 3.0, so without a mapping we ignore it and
#    evaluate oneOf/anyOf/allOf as plain JSON Schema. The contents response maps "array" to the
#    directory listing, which is not an object at all: a discriminator only applies to objects.
# 2. GitHub writes `nullable: true` next to an `enum` that does not list null (a check run's
#    `conclusion`, an issue's `state_reason`) and sends null for them. We read `nullable` as
#    allowing null there too, as OAS 3.0.0-3.0.2 tools did.
# 3. The same `nullable: true` next to a `oneOf`/`anyOf` without a `type` (a commit's `author` and
#    `committer` in compare: a user, an empty object, or null for an e-mail of no account, which is
#    what GitHub sends): null is allowed there too.


def _combinator(plain: Any, with_discriminator: Any) -> Any:
    def check(validator: Any, subschemas: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
        if instance is None and schema.get("nullable") is True:
            return
        discriminator = schema.get("discriminator")
        if discriminator and discriminator.get("mapping") and isinstance(instance, dict):
            yield from with_discriminator(validator, subschemas, instance, schema)
        else:
            yield from plain(validator, subschemas, instance, schema)

    return check


def _enum(validator: Any, enums: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if instance is None and schema.get("nullable") is True:
        return
    yield from js_keywords.enum(validator, enums, instance, schema)


GitHubSchemaValidator = extend(
    OAS30Validator,
    validators={
        "oneOf": _combinator(js_keywords.oneOf, oas_keywords.oneOf),
        "anyOf": _combinator(js_keywords.anyOf, oas_keywords.anyOf),
        "allOf": _combinator(js_keywords.allOf, oas_keywords.allOf),
        "enum": _enum,
    },
)


# --- operations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # "path" | "query" | "header"
    required: bool
    schema: dict[str, Any]
    target: str | None  # key of its compiled validator


@dataclass
class Operation:
    method: str
    template: str
    operation_id: str
    regex: re.Pattern[str]
    parameters: list[Parameter]
    body_required: bool
    body_target: str | None
    responses: dict[str, str | None]  # status ("200", "default") -> target key (None: no body)


@dataclass
class Match:
    operation: Operation
    path_params: dict[str, str]


@dataclass
class Result:
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _template_regex(template: str, multi_segment: set[str]) -> re.Pattern[str]:
    # `{ref}` of git/ref and `{path}` of contents span several segments ("heads/feature-a").
    pattern = ""
    for part in re.split(r"(\{[^}]+\})", template):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            pattern += f"(?P<{name}>.+)" if name in multi_segment else f"(?P<{name}>[^/]+)"
        else:
            pattern += re.escape(part)
    return re.compile(f"^{pattern}$")


def _coerce(raw: str, schema: Mapping[str, Any]) -> Any:
    """Path and query values are strings on the wire; turn them into what the schema types."""
    kind = schema.get("type")
    if kind == "integer" and re.fullmatch(r"-?\d+", raw):
        return int(raw)
    if kind == "number":
        try:
            return float(raw)
        except ValueError:
            return raw
    if kind == "boolean" and raw in ("true", "false"):
        return raw == "true"
    return raw


def _describe(error: ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path)
    message = error.message if len(error.message) < 300 else error.message[:300] + "..."
    return f"{message} (at /{where})" if where else message


class OpenAPIValidator:
    """Matches (method, path) to an operation and validates parameters and bodies.

    Every schema is compiled once, when the validator is built; validation itself is a
    dictionary lookup plus jsonschema's work on the instance.
    """

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._targets: dict[str, Any] = {}
        self._operations: list[Operation] = []
        self._by_id: dict[str, Operation] = {}
        for template, item in document["paths"].items():
            shared = item.get("parameters", [])
            for method in HTTP_METHODS:
                if method in item:
                    self._add_operation(method, template, item[method], shared)
        # Fixed segments before parameters, so `/repos/{o}/{r}/pulls` never swallows longer paths.
        self._operations.sort(key=lambda op: (op.template.count("{"), -len(op.template)))
        wrapped = {**document, _TARGETS: self._targets}
        resource = Resource.from_contents(wrapped, default_specification=DRAFT4)
        registry: Registry = Registry().with_resource(_DOC_URI, resource)
        self._validators = {
            key: GitHubSchemaValidator(
                {"$ref": f"{_DOC_URI}#/{_TARGETS}/{key}"},
                registry=registry,
                format_checker=oas30_format_checker,
            )
            for key in self._targets
        }
        error_schema = document["components"]["schemas"]["basic-error"]
        self._generic_error = GitHubSchemaValidator(error_schema, format_checker=oas30_format_checker)

    # ---- building

    def _resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            parts = node["$ref"].removeprefix("#/").split("/")
            node = self.document
            for part in parts:
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _target(self, schema: dict[str, Any]) -> str:
        key = f"t{len(self._targets)}"
        self._targets[key] = schema
        return key

    def _add_operation(self, method: str, template: str, raw: dict[str, Any], shared: list[Any]) -> None:
        params: list[Parameter] = []
        multi: set[str] = set()
        for p in [*shared, *raw.get("parameters", [])]:
            p = self._resolve(p)
            schema = p.get("schema", {})
            if p.get("x-multi-segment") or (p["in"] == "path" and p["name"] == "path"):
                multi.add(p["name"])
            target = self._target(schema) if schema else None
            params.append(Parameter(p["name"], p["in"], bool(p.get("required")), schema, target))
        body = self._resolve(raw.get("requestBody")) if raw.get("requestBody") else None
        body_target = None
        if body:
            media = body.get("content", {}).get("application/json")
            if media and "schema" in media:
                body_target = self._target(media["schema"])
        responses: dict[str, str | None] = {}
        for status, response in raw.get("responses", {}).items():
            response = self._resolve(response)
            content = response.get("content", {})
            media = content.get("application/json") or next(iter(content.values()), None)
            responses[status] = self._target(media["schema"]) if media and "schema" in media else None
        operation = Operation(
            method=method.upper(),
            template=template,
            operation_id=raw["operationId"],
            regex=_template_regex(template, multi),
            parameters=params,
            body_required=bool(body and body.get("required")),
            body_target=body_target,
            responses=responses,
        )
        self._operations.append(operation)
        self._by_id[operation.operation_id] = operation

    # ---- matching

    @property
    def operations(self) -> list[Operation]:
        return list(self._operations)

    def operation(self, operation_id: str) -> Operation:
        return self._by_id[operation_id]

    def match(self, method: str, path: str) -> Match | None:
        for op in self._operations:
            if op.method != method.upper():
                continue
            m = op.regex.match(path)
            if m:
                return Match(op, m.groupdict())
        return None

    def path_exists(self, path: str) -> bool:
        """Whether any method serves this path (GitHub answers 404 either way; this names the cause)."""
        return any(op.regex.match(path) for op in self._operations)

    # ---- validating

    def _errors(self, target: str, instance: Any, label: str) -> list[str]:
        validator = self._validators[target]
        return [f"{label}: {_describe(e)}" for e in validator.iter_errors(instance)]

    def validate_request(
        self,
        match: Match,
        query: Mapping[str, str],
        body: Any,
        has_body: bool,
    ) -> tuple[Result, Result]:
        """(path-parameter result, query-and-body result): GitHub answers 404 for the first, 422 for the second."""
        path_result, rest = Result(), Result()
        op = match.operation
        for p in op.parameters:
            if p.location == "path":
                raw = match.path_params.get(p.name)
                if raw is None:
                    path_result.errors.append(f"path parameter {p.name!r} is missing")
                elif p.target:
                    path_result.errors += self._errors(p.target, _coerce(raw, p.schema), f"path parameter {p.name!r}")
            elif p.location == "query":
                if p.name not in query:
                    if p.required:
                        rest.errors.append(f"query parameter {p.name!r} is required")
                elif p.target:
                    rest.errors += self._errors(p.target, _coerce(query[p.name], p.schema), f"query parameter {p.name!r}")
        if not has_body:
            if op.body_required:
                rest.errors.append("request body is required")
        elif op.body_target:
            rest.errors += self._errors(op.body_target, body, "request body")
        return path_result, rest

    def validate_response(self, op: Operation, status: int, body: Any) -> Result:
        result = Result()
        key = str(status)
        if key in op.responses:
            target = op.responses[key]
        elif "default" in op.responses:
            target = op.responses["default"]
        elif status >= 400:
            # GitHub's description leaves out many error statuses (401 on almost every
            # operation); their bodies still have to be GitHub's basic-error shape.
            result.errors += [f"response {status}: {_describe(e)}" for e in self._generic_error.iter_errors(body)]
            return result
        else:
            result.errors.append(f"response status {status} is not documented for {op.operation_id}")
            return result
        if target is None:
            if body is not None:
                result.errors.append(f"response {status} must have no body")
            return result
        result.errors += self._errors(target, body, f"response {status} body")
        return result


@lru_cache(maxsize=4)
def _cached(spec_path: str) -> OpenAPIValidator:
    return OpenAPIValidator(load_document(Path(spec_path)))


def get_validator(spec_path: Path | None = None) -> OpenAPIValidator:
    """The process-wide validator for a spec file (compiling takes ~a second; do it once)."""
    return _cached(str((spec_path or default_spec_path()).resolve()))


def document_copy(spec_path: Path | None = None) -> dict[str, Any]:
    return copy.deepcopy(get_validator(spec_path).document)
