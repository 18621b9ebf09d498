"""openapi.yaml stays in step with the route table: same paths and methods, errors in the
envelope, every $ref resolvable. No server and no database: plain functions, no fixtures."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import tornado.routing
import tornado.web
import tornado.websocket
import yaml

from cronchat.web import app
from cronchat.web.base import BaseHandler
from cronchat.web.static import ClientAssetHandler

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
ERROR_SCHEMA = "#/components/schemas/Error"
# Error statuses whose body is deliberately not the envelope: /readyz answers 503 with the
# readiness object, so monitoring sees which check failed; a failed WebSocket upgrade is
# answered by tornado's WebSocketHandler in plain text, before any code of ours runs.
NOT_ENVELOPE = {
    ("/readyz", "get", "503"),
    ("/api/v1/ws", "get", "400"),
    ("/api/v1/ws", "get", "426"),
}
# The WebSocket takes its token from the upgrade's header or from a first ``auth`` frame, so
# the header is optional there, and a bad token closes the socket (4001) instead of a 401.
# Media files take a signed link or a token (``signed_links`` handlers): the header is
# optional there too, and its absence without a link answers 401.
OPTIONAL_AUTH = [{}, {"bearerAuth": []}]
_PLACEHOLDER = "{}"
_SPEC_PARAM = re.compile(r"\{[^{}/]+\}")


def routes() -> list[tuple[str, type[tornado.web.RequestHandler]]]:
    """The API's routes: the route table without the browser client's pages and assets
    (``cronchat.web.static``), which are files for browsers, not endpoints of the API."""
    return [
        (pattern, handler)
        for pattern, handler in app.routes()
        if not issubclass(handler, ClientAssetHandler)
    ]


def load_spec() -> dict[str, Any]:
    with SPEC_PATH.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def route_path(pattern: str) -> str:
    """A route regex in a neutral form: each capture group becomes ``{}``."""
    groups = re.compile(pattern).groups
    markers = [f"zzparam{index}zz" for index in range(groups)]
    path = tornado.routing.PathMatches(pattern).reverse(*markers)
    for marker in markers:
        path = path.replace(marker, _PLACEHOLDER)
    return path


def spec_path(path: str) -> str:
    """A spec path in the same neutral form: each ``{name}`` becomes ``{}``."""
    return _SPEC_PARAM.sub(_PLACEHOLDER, path)


def handler_methods(handler: type[tornado.web.RequestHandler]) -> set[str]:
    """The HTTP methods a handler implements itself (tornado's defaults answer 405)."""
    methods = set()
    for cls in handler.__mro__:
        if cls in (tornado.web.RequestHandler, BaseHandler, object):
            continue
        methods.update(name for name in HTTP_METHODS if name in vars(cls))
    return methods


def served_operations() -> set[tuple[str, str]]:
    return {
        (route_path(pattern), method)
        for pattern, handler in routes()
        for method in handler_methods(handler)
    }


def websocket_paths() -> set[str]:
    """The served paths of WebSocket handlers, in neutral form."""
    return {
        route_path(pattern)
        for pattern, handler in routes()
        if issubclass(handler, tornado.websocket.WebSocketHandler)
    }


def spec_operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (spec_path(path), method)
        for path, item in spec["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def resolve(spec: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local $refs are used: {ref}"
    node: Any = spec
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolvable $ref {ref}"
        node = node[part]
    return node


def deref(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(spec, node["$ref"])
    return node


def refers_to_error(spec: dict[str, Any], schema: Any, seen: frozenset[str] = frozenset()) -> bool:
    """Whether a schema is the Error envelope, directly, through $refs or an allOf."""
    if not isinstance(schema, dict):
        return False
    ref = schema.get("$ref")
    if ref is not None:
        if ref == ERROR_SCHEMA:
            return True
        if ref in seen:
            return False
        return refers_to_error(spec, resolve(spec, ref), seen | {ref})
    return any(refers_to_error(spec, part, seen) for part in schema.get("allOf", []))


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def all_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        for value in node.values():
            found.extend(all_refs(value))
        return found
    if isinstance(node, list):
        return [ref for value in node for ref in all_refs(value)]
    return []


def test_route_paths_convert_to_spec_form() -> None:
    assert route_path(r"/api/v1/users/([^/]+)") == "/api/v1/users/{}"
    assert route_path(r"/healthz") == "/healthz"
    assert spec_path("/api/v1/users/{id}") == "/api/v1/users/{}"


def test_spec_is_openapi_3_1() -> None:
    spec = load_spec()
    assert str(spec["openapi"]).startswith("3.1.")
    assert spec["info"]["title"] and spec["info"]["version"]
    assert "bearerAuth" in spec["components"]["securitySchemes"]


def test_spec_operations_equal_the_route_table() -> None:
    spec = load_spec()
    served = served_operations()
    documented = spec_operations(spec)
    assert served - documented == set(), "served but not in openapi.yaml"
    assert documented - served == set(), "in openapi.yaml but not served"


def test_spec_paths_are_unique_once_parameter_names_are_ignored() -> None:
    spec = load_spec()
    neutral = [spec_path(path) for path in spec["paths"]]
    assert len(neutral) == len(set(neutral))


def test_path_parameters_are_declared() -> None:
    spec = load_spec()
    for path, item in spec["paths"].items():
        templated = {name[1:-1] for name in _SPEC_PARAM.findall(path)}
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            declared = [
                deref(spec, parameter)
                for parameter in item.get("parameters", []) + operation.get("parameters", [])
            ]
            in_path = {p["name"] for p in declared if p["in"] == "path"}
            assert in_path == templated, f"{method.upper()} {path}: path parameters"
            assert all(p.get("required") is True for p in declared if p["in"] == "path")


def test_public_endpoints_are_exactly_the_public_handlers() -> None:
    spec = load_spec()
    assert spec["security"] == [{"bearerAuth": []}]
    handlers = {route_path(pattern): handler for pattern, handler in routes()}
    sockets = websocket_paths()
    for path, method, operation in operations(spec):
        handler = handlers[spec_path(path)]
        security = operation.get("security")
        if spec_path(path) in sockets:
            assert security == OPTIONAL_AUTH, f"{method.upper()} {path}: security"
            assert "401" not in operation["responses"], f"{method.upper()} {path}: a 401"
            continue
        if getattr(handler, "signed_links", False):
            assert security == OPTIONAL_AUTH, f"{method.upper()} {path}: security"
            assert "401" in operation["responses"], f"{method.upper()} {path}: no 401"
            continue
        assert security in (None, [], [{"bearerAuth": []}]), f"{method.upper()} {path}: security"
        public = security == []
        assert public == bool(handler.public), f"{method.upper()} {path}: security"
        if not public:
            assert "401" in operation["responses"], f"{method.upper()} {path}: no 401"


def test_every_operation_lists_its_responses_and_errors_use_the_envelope() -> None:
    spec = load_spec()
    exempt_seen = set()
    sockets = websocket_paths()
    for path, method, operation in operations(spec):
        responses = operation.get("responses")
        assert responses, f"{method.upper()} {path}: no responses"
        # A WebSocket upgrade succeeds with 101 Switching Protocols, and only with it.
        success = ("101",) if spec_path(path) in sockets else ("2",)
        assert any(str(status).startswith(success) for status in responses), f"{path}: no success"
        for status, response in responses.items():
            status = str(status)
            if not status.startswith(("4", "5")):
                continue
            if (path, method, status) in NOT_ENVELOPE:
                exempt_seen.add((path, method, status))
                continue
            body = deref(spec, response)
            schema = body.get("content", {}).get("application/json", {}).get("schema")
            assert refers_to_error(spec, schema), f"{method.upper()} {path} {status}: not Error"
    assert exempt_seen == NOT_ENVELOPE, "an exemption no longer matches the spec"


def test_every_ref_resolves() -> None:
    spec = load_spec()
    refs = all_refs(spec)
    assert refs
    for ref in refs:
        resolve(spec, ref)
