"""`LeanTransport`: the HTTP/1.1 transport under `AsyncClient`, keep-alive on plain asyncio.

Why it exists: waiting on tasks is many small GETs, and under httpx's default transport
(httpcore + h11 + anyio) each one costs about five times the CPU of the socket work it
does (bench/bench_concurrency.py measures both). This transport does only what the client
needs and nothing else:

- HTTP/1.1 over TCP or TLS, one request at a time per connection, idle connections kept
  per origin for reuse (at most `max_idle` each, closed after `keepalive_expiry` seconds);
- response bodies framed by Content-Length, chunked encoding, or the connection closing;
  small bodies are read at once (the connection goes back to the pool before the caller
  parses), large ones (videos) are streamed with flow control;
- httpx's timeouts (connect, write, and read per socket wait, like httpx) and httpx's
  exception classes, raised with the same meaning. `_base_client`'s money rule depends
  on that: `ConnectError` / `ConnectTimeout` only when no byte of the request can have
  left this machine.

Proxies and HTTP/2 stay with httpx: `AsyncClient` uses this transport only when no proxy
is configured in the environment (`wants_lean_transport`). Compression, redirects,
cookies and auth stay in httpx's client layer above.
"""

from __future__ import annotations

import asyncio
import select
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import httpx

__all__ = ["CookielessAsyncClient", "LeanTransport", "new_async_http", "wants_lean_transport"]

_MAX_HEAD = 64 * 1024  # status line + headers, like h11's default limit
_EAGER_BODY = 256 * 1024  # bodies up to this are read before the response is returned
_PAUSE_READING_AT = 1024 * 1024  # buffered bytes that pause the socket (flow control)
_CHUNK = 64 * 1024
_NO_BODY_STATUS = frozenset({204, 304})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def wants_lean_transport() -> bool:
    """False when the environment configures a proxy, which only httpx's transport honours."""
    proxies = urllib.request.getproxies()
    return not any(proxies.get(scheme) for scheme in ("http", "https", "all"))


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class CookielessAsyncClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` that neither stores nor sends cookies.

    The API authenticates with a header and the video host with signed URLs, so a cookie
    jar has nothing to do, yet httpx builds urllib request/response adapters for it on
    every response (about a twentieth of a poll's CPU).
    """

    @property  # type: ignore[override]
    def cookies(self) -> httpx.Cookies:
        return _NoCookies()

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        if cookies:
            raise ValueError("This client keeps no cookies.")


def new_async_http(timeout: httpx.Timeout, pool_size: int) -> httpx.AsyncClient:
    """AsyncClient's own httpx client: the lean transport unless a proxy is configured."""
    if wants_lean_transport():
        return CookielessAsyncClient(timeout=timeout, transport=LeanTransport(max_idle=pool_size))
    limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
    return CookielessAsyncClient(timeout=timeout, limits=limits)


class _Connection(asyncio.Protocol):
    """One socket: a receive buffer plus futures the reading coroutine waits on."""

    def __init__(self, loop: asyncio.AbstractEventLoop, origin: tuple[str, str, int]) -> None:
        self.loop = loop
        self.origin = origin
        self.idle_since = 0.0
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._eof = False
        self._closed = False
        self._error: BaseException | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > _PAUSE_READING_AT and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()  # type: ignore[union-attr]
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = self._closed = True
        self._error = exc
        self._writing_paused = False
        self._wake()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- state
    @property
    def reusable(self) -> bool:
        """Open, nothing unread, and the peer has not hung up (checked without a syscall)."""
        return not (self._eof or self._buffer) and self._transport is not None and not self._transport.is_closing()

    def socket_has_news(self) -> bool:
        """True if the idle socket is readable (data or a hang-up) or unusable, per the kernel."""
        try:
            fd = self._transport.get_extra_info("socket").fileno()  # type: ignore[union-attr]
            if hasattr(select, "poll"):  # no FD_SETSIZE limit (a kernel may hold many fds)
                poller = select.poll()
                poller.register(fd, select.POLLIN)
                return bool(poller.poll(0))
            return bool(select.select([fd], [], [], 0)[0])  # Windows
        except (AttributeError, OSError, ValueError):
            return True

    def close(self) -> None:
        self._closed = True
        if self._transport is not None:
            try:
                self._transport.close()
            except RuntimeError:  # its event loop is closed already (asyncio.run ended)
                pass

    # -- waiting
    async def _wait(self, timeout: float | None, timeout_error: type[httpx.TimeoutException]) -> None:
        """Until data, EOF or writability arrives; one timer per wait, as httpx times reads."""
        waiter = self._waiter = self.loop.create_future()
        timer = None if timeout is None else self.loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        except TimeoutError:
            raise timeout_error(f"No data for {timeout:g} s.") from None
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def _more(self, timeout: float | None, context: str) -> None:
        if self._eof:
            if self._error is not None:
                raise httpx.ReadError(f"{context}: {self._error}")
            raise httpx.RemoteProtocolError(f"{context}: the server closed the connection.")
        await self._wait(timeout, httpx.ReadTimeout)

    def _consumed(self) -> None:
        if self._reading_paused and len(self._buffer) < _PAUSE_READING_AT // 2 and not self._closed:
            self._reading_paused = False
            self._transport.resume_reading()  # type: ignore[union-attr]

    # -- writing
    async def write(self, data: bytes, timeout: float | None) -> None:
        if self._closed or self._transport is None or self._transport.is_closing():
            raise httpx.WriteError("The connection closed before the request was written.")
        self._transport.write(data)
        while self._writing_paused and not self._closed:
            await self._wait(timeout, httpx.WriteTimeout)
        if self._closed and self._error is not None:
            raise httpx.WriteError(str(self._error))

    # -- reading
    async def read_head(self, timeout: float | None) -> bytes:
        start = 0
        while True:
            end = self._buffer.find(b"\r\n\r\n", start)
            if end > _MAX_HEAD or (end < 0 and len(self._buffer) > _MAX_HEAD):
                raise httpx.RemoteProtocolError("The response headers are larger than 64 KiB.")
            if end >= 0:
                head = bytes(self._buffer[:end])
                del self._buffer[: end + 4]
                self._consumed()
                return head
            start = max(0, len(self._buffer) - 3)
            context = "Server disconnected without sending a response" if not self._buffer else (
                "Server disconnected in the middle of the response headers"
            )
            await self._more(timeout, context)

    async def read_line(self, timeout: float | None) -> bytes:
        start = 0
        while True:
            end = self._buffer.find(b"\r\n", start)
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 2]
                self._consumed()
                return line
            if len(self._buffer) > _MAX_HEAD:
                raise httpx.RemoteProtocolError("A chunk header in the response is too long.")
            start = max(0, len(self._buffer) - 1)
            await self._more(timeout, "Server disconnected in the middle of a chunked body")

    async def read_some(self, limit: int, timeout: float | None) -> bytes:
        """Up to `limit` buffered bytes, waiting for some; b"" once the peer has closed."""
        while not self._buffer:
            if self._eof:
                if self._error is not None:
                    raise httpx.ReadError(str(self._error))
                return b""
            await self._wait(timeout, httpx.ReadTimeout)
        data = bytes(self._buffer[:limit])
        del self._buffer[:limit]
        self._consumed()
        return data


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Body:
    """Reads one response body off a connection, in the framing its headers announce."""

    def __init__(self, conn: _Connection, length: int | None, chunked: bool, read_timeout: float | None) -> None:
        self.conn = conn
        self.remaining = length  # Content-Length left; None for chunked or until-close
        self.chunked = chunked
        self.chunk_left = 0
        self.done = length == 0
        self.read_timeout = read_timeout

    async def next(self) -> bytes:
        """The next piece of the body; b"" when it is complete."""
        if self.done:
            return b""
        conn, timeout = self.conn, self.read_timeout
        if self.chunked:
            if self.chunk_left == 0:
                size_line = await conn.read_line(timeout)
                try:
                    self.chunk_left = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise httpx.RemoteProtocolError("The response has a malformed chunk size.") from None
                if self.chunk_left < 0:
                    raise httpx.RemoteProtocolError("The response has a negative chunk size.")
                if self.chunk_left == 0:
                    while await conn.read_line(timeout):  # trailers, up to the empty line
                        pass
                    self.done = True
                    return b""
            data = await conn.read_some(min(self.chunk_left, _CHUNK), timeout)
            if not data:
                raise httpx.RemoteProtocolError("Server disconnected in the middle of a chunk.")
            self.chunk_left -= len(data)
            if self.chunk_left == 0 and await conn.read_line(timeout):
                raise httpx.RemoteProtocolError("A chunk in the response is longer than announced.")
            return data
        if self.remaining is None:  # until the server closes
            data = await conn.read_some(_CHUNK, timeout)
            self.done = not data
            return data
        data = await conn.read_some(min(self.remaining, _CHUNK), timeout)
        if not data:
            raise httpx.RemoteProtocolError(
                f"Server disconnected with {self.remaining} bytes of the body unsent."
            )
        self.remaining -= len(data)
        self.done = self.remaining == 0
        return data


class _StreamedBody(httpx.AsyncByteStream):
    """A body too large to read up front; hands the connection back when closed."""

    def __init__(self, pool: "LeanTransport", body: _Body, keep_alive: bool, prefix: list[bytes]) -> None:
        self._pool = pool
        self._body = body
        self._keep_alive = keep_alive
        self._prefix = prefix
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._prefix:
            yield piece
        self._prefix = []
        try:
            while True:
                piece = await self._body.next()
                if not piece:
                    break
                yield piece
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool._release(self._body.conn, self._keep_alive and self._body.done)


class LeanTransport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 for `httpx.AsyncClient(transport=...)`; see the module docstring.

    It opens a connection whenever none is idle: the number in flight is bounded by the
    caller (AsyncClient's gate), so there is no pool queue and no `PoolTimeout`.
    """

    def __init__(
        self, *, max_idle: int = 6, keepalive_expiry: float = 5.0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._max_idle = max_idle
        self._keepalive_expiry = keepalive_expiry
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._ssl_context = ssl_context  # None: httpx's default (certifi, SSL_CERT_FILE/DIR)
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("The transport is closed.")
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{scheme}://'.")
        if not url.host:
            raise httpx.UnsupportedProtocol("Request URL is missing a host.")
        origin = (scheme, url.host, url.port or _DEFAULT_PORTS[scheme])
        timeouts = request.extensions.get("timeout") or {}
        head = _request_head(request)
        # A hang-up the event loop has not processed yet would fail the request after it was
        # sent; for a create that means "may have been created". So for anything but a read
        # the socket itself is asked (one syscall) before a kept-alive connection is reused.
        ask_socket = request.method not in ("GET", "HEAD")
        conn = self._idle_connection(origin, ask_socket) or await self._connect(origin, timeouts.get("connect"))
        try:
            return await self._exchange(conn, request, head, timeouts)
        except BaseException:
            conn.close()
            raise

    async def aclose(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    # -- the pool
    def _idle_connection(self, origin: tuple[str, str, int], ask_socket: bool) -> _Connection | None:
        conns = self._idle.get(origin)
        if not conns:
            return None
        now = time.monotonic()
        loop = asyncio.get_running_loop()
        while conns:
            conn = conns.pop()
            if (
                conn.reusable
                and conn.loop is loop
                and now - conn.idle_since < self._keepalive_expiry
                and not (ask_socket and conn.socket_has_news())
            ):
                return conn
            conn.close()
        return None

    def _release(self, conn: _Connection, reusable: bool) -> None:
        if not reusable or self._closed or not conn.reusable:
            conn.close()
            return
        conns = self._idle.setdefault(conn.origin, [])
        if len(conns) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        conns.append(conn)

    async def _connect(self, origin: tuple[str, str, int], timeout: float | None) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if scheme == "https" else None
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(loop, origin), host, port, ssl=tls, server_hostname=host if tls else None,
                    happy_eyeballs_delay=0.25,  # a black-holed IPv6 route does not eat the connect timeout
                ),
                timeout,
            )
        except (asyncio.TimeoutError, TimeoutError):
            raise httpx.ConnectTimeout(f"Could not connect to {host}:{port} within {timeout:g} s.") from None
        except OSError as exc:  # includes DNS failures and TLS handshake errors
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return conn

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:  # built on first use: loading the CA bundle takes a while
            context = httpx.create_ssl_context()
            context.set_alpn_protocols(["http/1.1"])
            self._ssl_context = context
        return self._ssl_context

    # -- one request / response
    async def _exchange(
        self, conn: _Connection, request: httpx.Request, head: bytes, timeouts: dict[str, Any]
    ) -> httpx.Response:
        write_timeout, read_timeout = timeouts.get("write"), timeouts.get("read")
        try:
            content: bytes | None = request.content  # read already for bytes / json / form bodies
        except httpx.RequestNotRead:
            content = None
        if content is not None:
            await conn.write(head + content if len(content) <= _CHUNK else head, write_timeout)  # one segment
            if len(content) > _CHUNK:
                await conn.write(content, write_timeout)
        else:  # a streamed body: chunked unless the caller gave a Content-Length
            chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
            await conn.write(head, write_timeout)
            async for piece in request.stream:  # type: ignore[union-attr]
                if piece:
                    await conn.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece, write_timeout)
            if chunked:
                await conn.write(b"0\r\n\r\n", write_timeout)

        while True:
            version, status, reason, headers = _parse_head(await conn.read_head(read_timeout))
            if status >= 200 or status == 101:
                break  # 1xx interim answers (100 Continue, 103 Early Hints) are skipped
        if status == 101:
            raise httpx.RemoteProtocolError("The server switched protocols, which this client never asks for.")

        length, chunked, keep_alive = _framing(request.method, version, status, headers)
        body = _Body(conn, length, chunked, read_timeout)
        extensions = {"http_version": version, "reason_phrase": reason}
        if length is None or length <= _EAGER_BODY:
            pieces: list[bytes] = []
            size = 0
            while size <= _EAGER_BODY:
                piece = await body.next()
                if not piece:
                    self._release(conn, keep_alive)
                    content = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                    return httpx.Response(
                        status, headers=headers, stream=httpx.ByteStream(content), extensions=extensions
                    )
                pieces.append(piece)
                size += len(piece)
        else:
            pieces = []
        stream = _StreamedBody(self, body, keep_alive, pieces)
        return httpx.Response(status, headers=headers, stream=stream, extensions=extensions)


def _request_head(request: httpx.Request) -> bytes:
    target = request.url.raw_path
    parts = [request.method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
    for name, value in request.headers.raw:
        if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name or b":" in name or not name:
            raise httpx.LocalProtocolError(f"Illegal header {name!r}: header names and values are one line each.")
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def _parse_head(head: bytes) -> tuple[bytes, int, bytes, list[tuple[bytes, bytes]]]:
    lines = head.split(b"\r\n")
    status_line = lines[0]
    fields = status_line.split(b" ", 2)
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/1.") or len(fields[1]) != 3 or not fields[1].isdigit():
        raise httpx.RemoteProtocolError(f"The server sent a malformed status line: {status_line[:80]!r}.")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            raise httpx.RemoteProtocolError(f"The server sent a malformed header line: {line[:80]!r}.")
        headers.append((name, value.strip(b" \t")))
    return fields[0], int(fields[1]), fields[2] if len(fields) == 3 else b"", headers


def _framing(method: str, version: bytes, status: int, headers: list[tuple[bytes, bytes]]) -> tuple[int | None, bool, bool]:
    """(Content-Length or None, chunked?, keep the connection?) for one response (RFC 9112 §6)."""
    lengths, codings, connection = [], [], []
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length":
            lengths.append(value)
        elif lowered == b"transfer-encoding":
            codings += [c.strip().lower() for c in value.split(b",")]
        elif lowered == b"connection":
            connection += [c.strip().lower() for c in value.split(b",")]
    keep_alive = b"close" not in connection and (version == b"HTTP/1.1" or b"keep-alive" in connection)
    if method == "HEAD" or status in _NO_BODY_STATUS or status < 200:
        return 0, False, keep_alive
    if codings:
        if codings[-1] == b"chunked":
            return None, True, keep_alive
        return None, False, False  # framed by the connection closing
    if lengths:
        values = {v.strip() for length in lengths for v in length.split(b",")}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise httpx.RemoteProtocolError(f"The server sent an invalid Content-Length: {lengths[0][:40]!r}.")
        return int(next(iter(values))), False, keep_alive
    return None, False, False
