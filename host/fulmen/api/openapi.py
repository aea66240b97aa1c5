"""The published OpenAPI 3.1 schema of the host's and plugins' routes.

Litestar builds it from the route handlers; `complete()` adds what the
handlers cannot say themselves: the two credentials (`X-Api-Key` and an
`Authorization: Bearer` token), and the JSON error bodies every operation
can answer (`{"detail": ..., "status_code": ...}`, or LNURL's
`{"status": "ERROR", "reason": ...}` on LNURL routes).

Served at `/schema/openapi.json`, with a browsable page at `/schema` that is
plain HTML rendered here: no script and no asset from elsewhere, so it works
offline.
"""

from __future__ import annotations

import copy
import html
import json
from typing import Any

from litestar import Request
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "description": "`detail` and `status_code` (host and plugin APIs), or LNURL's "
                   "`status: ERROR` and `reason` (LNURL routes)",
    "properties": {
        "detail": {"type": "string"},
        "status_code": {"type": "integer"},
        "status": {"type": "string"},
        "reason": {"type": "string"},
    },
}
ERRORS = {
    "400": "The request is not valid: `detail` names the problem",
    "401": "A key or token is missing or wrong",
    "403": "The key is not allowed to do this",
    "404": "Not found",
    "405": "Method not allowed",
    "409": "Conflict with the current state",
    "413": "The request body is too large",
    "429": "Too many requests: retry after `Retry-After` seconds",
}


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of Litestar's schema with the credentials and error answers."""
    schema = copy.deepcopy(schema)
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update({
        "ApiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key",
                   "description": "A wallet's admin or invoice (read) key"},
        "Bearer": {"type": "http", "scheme": "bearer",
                   "description": "The admin key, or an account token"},
    })
    components.setdefault("schemas", {})["Error"] = ERROR_BODY
    error_ref = {"$ref": "#/components/schemas/Error"}
    for path_item in schema.get("paths", {}).values():
        for method in METHODS:
            operation = path_item.get(method)
            if not operation:
                continue
            operation.setdefault("security", [{"ApiKey": []}, {"Bearer": []}, {}])
            responses = operation.setdefault("responses", {})
            for code in list(responses):
                if code.startswith("4"):
                    del responses[code]
            for code, description in ERRORS.items():
                responses[code] = {"description": description,
                                   "content": {"application/json": {"schema": error_ref}}}
    return schema


class CompletedJson(JsonRenderPlugin):
    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        return self.render_json(request, complete(openapi_schema))


def _schema_text(value: Any) -> str:
    return html.escape(json.dumps(value, indent=1, sort_keys=True)[:4000])


class OfflinePage(OpenAPIRenderPlugin):
    """Every operation with its parameters and body and answer schemas, as HTML."""

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        schema = complete(openapi_schema)
        info = schema.get("info", {})
        json_url = self.get_openapi_json_route(request)
        out = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(info.get('title', 'API'))} API</title>",
            ("<style>body{font-family:sans-serif;max-width:60em;margin:auto;padding:1em}"
             "details{border-bottom:1px solid #ddd;padding:.3em 0}code{font-weight:bold}"
             "pre{background:#f6f6f6;padding:.5em;overflow:auto;font-size:85%}</style></head><body>"),
            f"<h1>{html.escape(info.get('title', 'API'))} {html.escape(info.get('version', ''))}</h1>",
            (f"<p>The machine-readable schema: <a href='{html.escape(json_url)}'>openapi.json</a> "
             "(OpenAPI 3.1). Send a wallet key as <code>X-Api-Key</code>, or the admin key or an "
             "account token as <code>Authorization: Bearer</code>.</p>"),
        ]
        for path, item in sorted(schema.get("paths", {}).items()):
            for method in METHODS:
                op = item.get(method)
                if not op:
                    continue
                summary = op.get("summary") or op.get("description") or ""
                out.append(f"<details><summary><code>{method.upper()} {html.escape(path)}</code> "
                           f"{html.escape(summary.splitlines()[0] if summary else '')}</summary>")
                if op.get("description"):
                    out.append(f"<p>{html.escape(op['description'])}</p>")
                params = op.get("parameters") or []
                if params:
                    out.append("<ul>")
                    for p in params:
                        out.append(f"<li>{html.escape(p.get('in', ''))} <code>"
                                   f"{html.escape(p.get('name', ''))}</code>"
                                   f"{' (required)' if p.get('required') else ''}: "
                                   f"{_schema_text(p.get('schema', {}))}</li>")
                    out.append("</ul>")
                if op.get("requestBody"):
                    out.append(f"<p>Body:</p><pre>{_schema_text(op['requestBody'])}</pre>")
                for code, response in sorted(op.get("responses", {}).items()):
                    if code.startswith("2"):
                        out.append(f"<p>{html.escape(code)}:</p>"
                                   f"<pre>{_schema_text(response)}</pre>")
                out.append("</details>")
        out.append("</body></html>")
        return "".join(out).encode()


def config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Fulmen",
        version=version,
        description="LNbits-compatible wallet API of the Fulmen host and its plugins.",
        path="/schema",
        use_handler_docstrings=True,
        render_plugins=[CompletedJson(path="/openapi.json"), OfflinePage(path="/")],
    )
