"""The input boundary every request crosses before any handler, the host's
or a plugin's, sees it.

One rule on SQLite and PostgreSQL alike: text may hold any Unicode
character except U+0000 (NUL), which PostgreSQL's `text` and `jsonb` cannot
store. A NUL anywhere in a JSON body (a key or a string), a query parameter
or the path is refused with a 400 naming where it is; a path may hold no
control character at all. JSON bodies nested deeper than `MAX_DEPTH` are
refused too, before a decoder or a handler recurses into them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from ..errors import FulmenError

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_DEPTH = 32
MAX_BODY = 10 * 1024 * 1024  # Litestar's own default request_max_body_size
URLENCODED = b"application/x-www-form-urlencoded"
_CONTROL = {chr(c) for c in range(0x20)} | {"\x7f"}


class InputRefused(Exception):
    def __init__(self, detail: str, status_code: int = 400) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status_code = status_code


def _where(path: list[str]) -> str:
    return ".".join(path) if path else "the body"


def check_json(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise `InputRefused` naming the first field that holds a NUL, or when
    `value` is nested deeper than `max_depth`. Iterative: no recursion."""
    stack: list[tuple[Any, list[str], int]] = [(value, [], 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise InputRefused(f"{_where(path)} holds a NUL character (U+0000), "
                                   "which cannot be stored")
        elif isinstance(item, dict):
            if depth >= max_depth:
                raise InputRefused(f"the JSON body is nested deeper than {max_depth} levels")
            for key, child in item.items():
                if "\x00" in key:
                    raise InputRefused(f"a key in {_where(path)} holds a NUL character (U+0000)")
                stack.append((child, [*path, key], depth + 1))
        elif isinstance(item, list):
            if depth >= max_depth:
                raise InputRefused(f"the JSON body is nested deeper than {max_depth} levels")
            for i, child in enumerate(item):
                stack.append((child, [*path, str(i)], depth + 1))


def check_body(body: bytes) -> None:
    """A body that does not start as JSON does is left to the handler (which
    answers 400 if it wanted JSON); one that does must decode (valid UTF-8,
    no lone surrogates) and pass `check_json`."""
    stripped = body.lstrip()
    if stripped[:1] not in (b"{", b"[", b'"'):
        return
    try:
        value = msgspec.json.decode(body)
    except RecursionError:
        raise InputRefused(f"the JSON body is nested deeper than {MAX_DEPTH} levels") from None
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError) as exc:
        # Looks like JSON but is not (bad UTF-8, a lone surrogate, truncated):
        # refused here, as no handler of ours takes such a body as anything else.
        raise InputRefused(f"the request body is not valid JSON: {exc}") from None
    check_json(value)


def check_urlencoded(raw: bytes, what: str) -> None:
    """`what` is "query parameter" or "form field"."""
    if b"%00" in raw or b"\x00" in raw:
        for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True,
                                    encoding="utf-8", errors="replace"):
            if "\x00" in key:
                raise InputRefused(f"a {what} name holds a NUL character (U+0000)")
            if "\x00" in value:
                raise InputRefused(f"{what} {key!r} holds a NUL character (U+0000)")


def check_target(scope: Scope) -> None:
    path: str = scope.get("path", "")
    if any(ch in _CONTROL for ch in path):
        raise InputRefused("the path holds a control character")
    check_urlencoded(scope.get("query_string", b""), "query parameter")


async def _refuse(send: Send, exc: InputRefused) -> None:
    """Raised, not written: Litestar runs this middleware inside each route's
    exception handling, so the route's own error format answers (a plugin
    with another protocol's error shape, such as LndHub, keeps it)."""
    error = FulmenError(exc.detail)
    error.status_code = exc.status_code
    raise error


class InputGuard:
    """ASGI middleware around the whole app (host and plugin routes)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:
            check_target(scope)
        except InputRefused as exc:
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await _refuse(send, exc)
            return
        # A route that parses its own body, to answer in its protocol's error
        # format (LndHub), says so with `opt={"raw_body": True}`; the path and
        # query are still checked above, and values that cannot be stored are
        # refused by the database boundary (`unstorable_value`).
        route = scope.get("route_handler")
        raw_body = bool(route is not None and getattr(route, "opt", {}).get("raw_body"))
        if kind == "websocket" or raw_body or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
        if content_type.startswith(b"multipart/"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        disconnected: Message | None = None
        while more:
            message = await receive()
            if message["type"] != "http.request":
                disconnected = message
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                await _refuse(send, InputRefused("the request body is too large", 413))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if disconnected is None:
            try:
                if content_type.startswith(URLENCODED):
                    check_urlencoded(body, "form field")
                else:
                    check_body(body)
            except InputRefused as exc:
                await _refuse(send, exc)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                if disconnected is not None:
                    return disconnected
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def unstorable_value(exc: BaseException) -> str | None:
    """The 400 message for a value the database refused to store (a number
    outside a 64-bit integer, a character it cannot hold) that got past the
    checks above: the last line of defence, for the host's and plugins'
    handlers alike. None for any other error."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OverflowError) or "out of int64 range" in str(exc):
            return "a number in the request is out of range"
        module = type(exc).__module__
        if module.startswith("asyncpg") and any(
                c.__name__ == "DataError" for c in type(exc).__mro__):
            return "a value in the request cannot be stored (out of range or not valid text)"
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None
