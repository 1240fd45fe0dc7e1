"""The OpenAPI 3.1 document of the HTTP API, built from the handlers' own msgspec Structs,
and a self-contained HTML reference of it (no CDN, no script)."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from tidydesk.queue.problems import PROBLEM_JSON, Problem

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REF = "#/components/schemas/{name}"
COMMON_ERRORS = (400, 401, 403, 421, 503)  # any authenticated operation
BODY_ERRORS = (408, 413)  # any operation that reads a body
ERROR_TEXT = {
    400: "malformed request: unknown or bad query parameter, path id, header or body",
    401: "no valid `Authorization: Bearer` token",
    403: "the token lacks the scope (or tenant) this needs, or a cross-site browser request",
    404: "no such ticket or message, or one of another tenant (indistinguishable)",
    408: "the request body did not arrive in time",
    409: "the change conflicts with the tickets' state (e.g. a merge into a merged ticket)",
    412: "If-Match names another version than the ticket's current one",
    413: "the request body or the event it makes is too large",
    421: "the Host header is not one this server answers for",
    422: "the mail was rejected by intake (the problem's `digest` names the raw bytes)",
    503: "NATS or PostgreSQL is unavailable; retry shortly",
}


@dataclass(frozen=True)
class Param:
    """A query parameter, header or path parameter of an operation."""

    name: str
    schema: dict[str, Any]
    description: str
    where: str = "query"
    required: bool = False


@dataclass(frozen=True)
class Op:
    """One operation: route, handler, required scope and its documented shapes."""

    method: str
    path: str
    handler: Handler
    summary: str
    scope: str | None  # None = public
    params: tuple[Param, ...] = ()
    body: type | None = None
    body_media: tuple[str, ...] = ("application/json",)
    ok: int = 200
    response: type | None = None
    response_media: str = "application/json"
    response_headers: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()

    @property
    def query(self) -> frozenset[str]:
        return frozenset(p.name for p in self.params if p.where == "query")


def document(ops: list[Op], title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `ops` (schemas from msgspec.json.schema_components)."""
    types = {t for op in ops for t in (op.body, op.response) if isinstance(t, type)}
    _, components = msgspec.json.schema_components(
        sorted((*types, Problem), key=lambda t: t.__name__), ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "Queue queries from the PostgreSQL projection, commands as "
                 "events, raw mail intake. Errors are application/problem+json (RFC 9457)."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "a token from `tidydesk tokens create`"}}},
        "security": [{"bearer": []}],
    }


def _schema(kind: type | None) -> dict[str, Any]:
    if kind is bytes:
        return {"type": "string", "format": "binary"}
    return {"$ref": REF.format(name=kind.__name__)} if kind else {}


def _operation(op: Op) -> dict[str, Any]:
    name = op.path.replace("/", "_").replace("{", "").replace("}", "").replace(".", "_")
    out: dict[str, Any] = {
        "summary": op.summary,
        "operationId": op.method.lower() + name,
        "description": f"Scope: `{op.scope}` (or `admin`)." if op.scope else "Public.",
    }
    if op.scope is None:
        out["security"] = []
    params = [{"name": p.name, "in": p.where, "required": p.required or p.where == "path",
               "description": p.description, "schema": p.schema} for p in op.params]
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": op.body is bytes, "content": {
            m: {"schema": _schema(op.body)} for m in op.body_media}}
    ok: dict[str, Any] = {"description": "success"}
    if op.response is not None:
        ok["content"] = {op.response_media: {"schema": _schema(op.response)}}
    if op.response_headers:
        ok["headers"] = {h.name: {"description": h.description, "schema": h.schema}
                         for h in op.response_headers}
    responses: dict[str, Any] = {str(op.ok): ok}
    if op.ok == 202 and op.path.startswith("/inbound"):
        responses["200"] = {"description": "a duplicate of a mail already taken",
                            "content": ok.get("content", {})}
    codes = set(op.errors) | (set(COMMON_ERRORS) if op.scope else set())
    if op.body is not None:
        codes |= set(BODY_ERRORS)
    for code in sorted(codes):
        responses[str(code)] = {"description": ERROR_TEXT[code], "content": {
            PROBLEM_JSON: {"schema": _schema(Problem)}}}
    out["responses"] = responses
    return out


def docs_page(spec: dict[str, Any]) -> str:
    """A plain HTML reference of the document: operations, parameters, shapes, errors."""
    e = html.escape
    parts = [f"<h1>{e(spec['info']['title'])} {e(spec['info']['version'])}</h1>",
             f"<p>{e(spec['info']['description'])} Machine-readable: "
             "<a href='/openapi.json'>/openapi.json</a>. Send "
             "<code>Authorization: Bearer &lt;token&gt;</code>.</p>"]
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            parts.append(f"<h2><code>{e(method.upper())} {e(path)}</code></h2>"
                         f"<p>{e(op['summary'])} {e(op['description'])}</p>")
            rows = "".join(f"<tr><td><code>{e(p['name'])}</code></td><td>{e(p['in'])}</td>"
                           f"<td>{e(_type(p['schema']))}</td><td>{e(p['description'])}</td></tr>"
                           for p in op.get("parameters", []))
            if rows:
                parts.append("<table><tr><th>parameter</th><th>in</th><th>type</th>"
                             f"<th></th></tr>{rows}</table>")
            if "requestBody" in op:
                parts.append("<p>Body: " + ", ".join(
                    f"{e(m)} {e(_type(c['schema']))}"
                    for m, c in op["requestBody"]["content"].items()) + "</p>")
            parts.append("<ul>" + "".join(
                f"<li><b>{e(code)}</b> {e(r['description'])}"
                + "".join(f" — {e(_type(c['schema']))}" for c in r.get("content", {}).values())
                + "</li>" for code, r in op["responses"].items()) + "</ul>")
    parts.append("<h1>Schemas</h1>")
    for name, schema in spec["components"]["schemas"].items():
        rows = "".join(f"<tr><td id='{e(name)}.{e(f)}'><code>{e(f)}</code></td>"
                       f"<td>{e(_type(s))}</td></tr>"
                       for f, s in schema.get("properties", {}).items())
        parts.append(f"<h3 id='{e(name)}'>{e(name)}</h3><p>{e(schema.get('description', ''))}"
                     f"</p><table>{rows}</table>")
    style = ("body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
             "padding:0 1rem}code{background:#f3f3f3;padding:0 .2em}table{border-collapse:"
             "collapse}td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left}"
             "h2{margin-top:2rem;font-size:1.1rem}")
    return ("<!doctype html><html lang='en'><meta charset='utf-8'>"
            f"<title>{e(spec['info']['title'])}</title><style>{style}</style><body>"
            + "\n".join(parts) + "</body></html>")


def _type(schema: dict[str, Any]) -> str:
    """A short human name of a JSON schema."""
    if "$ref" in schema:
        return str(schema["$ref"]).rpartition("/")[2]
    if "anyOf" in schema:
        return " | ".join(_type(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    kind = str(schema.get("format") or schema.get("type") or "any")
    return kind + (f" ({', '.join(map(str, schema['enum']))})" if "enum" in schema else "")
