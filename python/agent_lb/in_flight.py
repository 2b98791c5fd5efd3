"""Counting the requests an agent is still answering, so that ``leave()`` releases the lease only
once they are done: a counter (``lease.track()``), WSGI middleware (Flask, Django, …) and ASGI
middleware (Starlette, FastAPI, plain ASGI apps). Thread-safe: a WSGI server's worker threads and
the lease's own thread share one counter."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any, Awaitable, Callable, Iterable, Iterator, List, MutableMapping, Optional

WSGIApp = Callable[[MutableMapping[str, Any], Callable[..., Any]], Iterable[bytes]]
ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class InFlightCounter:
    """Units of work in progress: ``begin()`` returns the end (counted once however often it is
    called); ``track()`` counts a ``with`` block; ``wait_idle(timeout)`` waits for zero."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    @property
    def in_flight(self) -> int:
        return self._count

    def begin(self) -> Callable[[], None]:
        with self._idle:
            self._count += 1
        ended = [False]

        def end() -> None:
            with self._idle:
                if ended[0]:
                    return
                ended[0] = True
                self._count -= 1
                if self._count == 0:
                    self._idle.notify_all()

        return end

    @contextmanager
    def track(self) -> Iterator[None]:
        """``with counter.track(): …`` counts the block while it runs (exceptions included)."""
        end = self.begin()
        try:
            yield
        finally:
            end()

    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        """True once nothing is in flight; False when ``timeout`` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._count > 0:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True


class _CountedBody:
    """A WSGI response body that ends its count when the server closes it (after the last byte of a streamed body)."""

    def __init__(self, body: Iterable[bytes], end: Callable[[], None]) -> None:
        self._body = body
        self._end = end

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        finally:
            # The last byte was handed to the server, or the server gave up on the body. Not only
            # close(): a server may skip it — werkzeug's development server does when the client
            # resets the connection right after the response (a load balancer dropping a pooled
            # connection), which left such a request counted and leave() waiting until its deadline.
            self._end()

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._end()


class WsgiInFlightMiddleware:
    """WSGI middleware: a request is in flight from the call until the server closes its response
    body (so a streamed response counts until its last byte). ``app.wsgi_app =
    WsgiInFlightMiddleware(app.wsgi_app, lease.in_flight)`` in Flask, or ``lease.wsgi_middleware(app)``."""

    def __init__(self, app: WSGIApp, counter: InFlightCounter) -> None:
        self.app = app
        self.counter = counter

    def __call__(self, environ: MutableMapping[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        end = self.counter.begin()
        try:
            body = self.app(environ, start_response)
        except BaseException:
            end()
            raise
        return _CountedBody(body, end)


class AsgiInFlightMiddleware:
    """ASGI middleware: each ``http`` and ``websocket`` connection is in flight until the app
    returns (after its last ``http.response.body``); ``lifespan`` passes through uncounted."""

    def __init__(self, app: ASGIApp, counter: InFlightCounter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        end = self.counter.begin()
        try:
            await self.app(scope, receive, send)
        finally:
            end()


__all__: List[str] = ["InFlightCounter", "WsgiInFlightMiddleware", "AsgiInFlightMiddleware"]
