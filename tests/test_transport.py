"""LeanTransport against real sockets: framing, keep-alive reuse, flow control, timeouts,
and the exception classes the money rule depends on (ConnectError only when nothing was sent)."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import ssl
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from framepack_widgets import _transport
from framepack_widgets._transport import CookielessAsyncClient, LeanTransport, new_async_http, wants_lean_transport

@dataclass
class Received:
    connection: int
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedServer:
    """Answers each request with the next scripted action: raw bytes, or a coroutine that
    gets the connection's reader and writer. `close_after` closes after that answer."""

    actions: list = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    closed_by_client: int = 0
    server: asyncio.AbstractServer | None = None
    port: int = 0

    async def __aenter__(self) -> "ScriptedServer":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        index = self.connections
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.closed_by_client += 1
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = b""
                if "content-length" in headers:
                    body = await reader.readexactly(int(headers["content-length"]))
                elif headers.get("transfer-encoding") == "chunked":
                    while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                        body += (await reader.readexactly(size + 2))[:-2]
                    await reader.readuntil(b"\r\n")  # the empty trailer section
                self.received.append(Received(index, method, target, headers, body))
                action = self.actions.pop(0)
                close = False
                if isinstance(action, tuple):
                    action, close = action
                if isinstance(action, bytes):
                    writer.write(action)
                    await writer.drain()
                else:
                    keep = await action(reader, writer)
                    close = close or keep is False
                if close:
                    writer.close()
                    return
        except (ConnectionError, asyncio.CancelledError):
            return


def response(body: bytes = b"{}", status: str = "200 OK", *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def chunked(*pieces: bytes, trailers: str = "") -> bytes:
    out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    for piece in pieces:
        out += b"%x;ext=1\r\n%s\r\n" % (len(piece), piece)
    return out + b"0\r\n" + trailers.encode() + b"\r\n"


def lean_client(**kwargs: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=LeanTransport(**kwargs), timeout=5)  # type: ignore[arg-type]


async def test_content_length_answers_share_one_kept_alive_connection() -> None:
    async with ScriptedServer([response(b'{"n": 1}'), response(b'{"n": 2}'), response(b"")]) as server:
        async with lean_client() as http:
            first = await http.get(server.url + "/a?x=1", headers={"x-api-key": "k"})
            second = await http.post(server.url + "/b", json={"hello": "wörld"})
            third = await http.get(server.url + "/c")
    assert (first.json(), second.json(), third.content) == ({"n": 1}, {"n": 2}, b"")
    assert first.http_version == "HTTP/1.1" and first.reason_phrase == "OK"
    assert server.connections == 1
    get, post, _ = server.received
    assert (get.method, get.target, get.headers["x-api-key"], get.headers["host"]) == (
        "GET", "/a?x=1", "k", f"127.0.0.1:{server.port}",
    )
    assert (post.method, json.loads(post.body)) == ("POST", {"hello": "wörld"})
    assert post.headers["content-length"] == str(len(post.body))


async def test_connection_close_and_http_1_0_answers_are_not_reused() -> None:
    answers = [response(b"1", "200 OK", "Connection: close"), b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n2", response(b"3")]
    async with ScriptedServer(answers) as server:
        async with lean_client() as http:
            bodies = [(await http.get(server.url)).content for _ in range(3)]
    assert bodies == [b"1", b"2", b"3"]
    assert server.connections == 3


async def test_chunked_answer_with_extensions_and_trailers_then_reuse() -> None:
    answers = [chunked(b'{"a":', b' 1}', trailers="X-Checksum: 1\r\n"), response(b"next")]
    async with ScriptedServer(answers) as server:
        async with lean_client() as http:
            first = await http.get(server.url)
            second = await http.get(server.url)
    assert first.json() == {"a": 1} and second.content == b"next"
    assert server.connections == 1


async def test_body_framed_by_the_connection_closing() -> None:
    answers = [(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", True), response(b"fresh")]
    async with ScriptedServer(answers) as server:
        async with lean_client() as http:
            assert (await http.get(server.url)).text == "until the end"
            assert (await http.get(server.url)).text == "fresh"
    assert server.connections == 2


async def test_answers_without_a_body_and_interim_answers() -> None:
    answers = [
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 12345\r\n\r\n",  # the answer to a HEAD
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + response(b"after interim"),
    ]
    async with ScriptedServer(answers) as server:
        async with lean_client() as http:
            assert (await http.get(server.url)).status_code == 204
            assert (await http.get(server.url)).status_code == 304
            head = await http.head(server.url)
            assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "12345")
            assert (await http.get(server.url)).content == b"after interim"
    assert server.connections == 1


async def test_gzip_bodies_are_decoded_by_httpx_above_the_transport() -> None:
    payload = json.dumps({"status": "completed", "pad": "x" * 5000}).encode()
    async with ScriptedServer([response(gzip.compress(payload), "200 OK", "Content-Encoding: gzip")]) as server:
        async with lean_client() as http:
            answer = await http.get(server.url)
    assert answer.json()["status"] == "completed"
    assert "gzip" in server.received[0].headers["accept-encoding"]


async def test_large_bodies_stream_with_flow_control_and_free_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    buffered: list[int] = []
    data_received = _transport._Connection.data_received

    def spy(self: _transport._Connection, data: bytes) -> None:
        data_received(self, data)
        buffered.append(len(self._buffer))

    monkeypatch.setattr(_transport._Connection, "data_received", spy)
    big = bytes(range(256)) * (3 * 4096)  # 3 MiB: past the eager limit and the read pause mark
    big_chunked = [big[i : i + 700_000] for i in range(0, len(big), 700_000)]
    answers = [response(big), chunked(*big_chunked), response(b"small")]
    async with ScriptedServer(answers) as server:
        async with lean_client() as http:
            async with http.stream("GET", server.url) as streamed:
                await asyncio.sleep(0.2)  # let the socket fill the buffer past the pause mark
                pieces = [piece async for piece in streamed.aiter_raw()]
            assert b"".join(pieces) == big and len(pieces) > 1
            # reading paused at the mark instead of buffering the whole body
            assert _transport._PAUSE_READING_AT < max(buffered) < _transport._PAUSE_READING_AT + 512 * 1024
            assert (await http.get(server.url)).content == big
            assert (await http.get(server.url)).content == b"small"
    assert server.connections == 1


async def test_a_stream_closed_early_does_not_return_its_connection() -> None:
    big = b"v" * (2 * 1024 * 1024)
    async with ScriptedServer([response(big), response(b"fresh")]) as server:
        async with lean_client() as http:
            async with http.stream("GET", server.url) as streamed:
                async for _ in streamed.aiter_raw():
                    break
            assert (await http.get(server.url)).content == b"fresh"
    assert server.connections == 2


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    answers = [(response(b"1"), True), response(b"2"), (response(b"3"), True), response(b"4")]
    async with ScriptedServer(answers) as server:
        async with lean_client() as http:
            assert (await http.get(server.url)).content == b"1"
            await asyncio.sleep(0.05)  # the FIN arrives while the connection is idle
            assert (await http.post(server.url, json={})).content == b"2"
            assert (await http.get(server.url)).content == b"3"
            await asyncio.sleep(0.05)
            assert (await http.get(server.url)).content == b"4"
    assert server.connections == 3


async def test_a_create_never_rides_a_connection_the_kernel_knows_is_dead() -> None:
    # The FIN is in the kernel but the event loop has not run since: `reusable` cannot know.
    # For anything but a GET/HEAD the transport asks the socket, so a create goes out on a
    # fresh connection instead of failing as "may have been created".
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    answered = threading.Event()
    seen: list[bytes] = []

    def serve() -> None:
        for index in range(2):
            conn, _ = listener.accept()
            with conn:
                seen.append(conn.recv(65536))
                conn.sendall(response(b"%d" % index))
            answered.set()
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    async with lean_client() as http:
        assert (await http.get(f"http://127.0.0.1:{port}/")).content == b"0"
        answered.wait(5)  # blocks the loop: the hang-up stays unseen by asyncio
        time.sleep(0.05)
        assert (await http.post(f"http://127.0.0.1:{port}/", json={"create": 1})).content == b"1"
    thread.join(5)
    assert seen[1].startswith(b"POST ")


async def test_idle_connections_expire_and_the_idle_list_is_capped() -> None:
    async with ScriptedServer([response(b"%d" % i) for i in range(6)]) as server:
        async with lean_client(max_idle=1, keepalive_expiry=0.1) as http:
            await asyncio.gather(*(http.get(server.url) for _ in range(3)))  # three connections
            transport: LeanTransport = http._transport  # type: ignore[assignment]
            assert [len(conns) for conns in transport._idle.values()] == [1]
            await http.get(server.url)  # reuses the one idle connection
            await asyncio.sleep(0.2)
            await http.get(server.url)  # it expired: a new one
            await asyncio.sleep(0.05)
    assert server.connections == 4
    assert server.closed_by_client >= 3


async def test_aclose_closes_idle_connections() -> None:
    async with ScriptedServer([response()]) as server:
        http = lean_client()
        await http.get(server.url)
        await http.aclose()
        await asyncio.sleep(0.05)
    assert server.closed_by_client == 1


async def test_streamed_request_bodies_are_sent_chunked() -> None:
    async def body():
        yield b"first,"
        yield b""
        yield b"second"

    async with ScriptedServer([response(b"ok")]) as server:
        async with lean_client() as http:
            await http.post(server.url, content=body())
    (request,) = server.received
    assert request.headers["transfer-encoding"] == "chunked" and request.body == b"first,second"


async def test_a_cookieless_client_never_sends_back_what_the_server_set() -> None:
    answers = [response(b"1", "200 OK", "Set-Cookie: session=abc; Path=/"), response(b"2")]
    async with ScriptedServer(answers) as server:
        async with CookielessAsyncClient(transport=LeanTransport()) as http:
            await http.get(server.url)
            await http.get(server.url)
            assert not http.cookies
            with pytest.raises(ValueError):
                http.cookies = {"a": "b"}
    assert "cookie" not in server.received[1].headers


# -- failures, and the exception classes the client's retry rules read


async def test_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with lean_client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/")


async def test_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    async def never(*args: object, **kwargs: object) -> None:
        await asyncio.sleep(10)

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "create_connection", never)
    async with httpx.AsyncClient(transport=LeanTransport(), timeout=httpx.Timeout(5, connect=0.05)) as http:
        with pytest.raises(httpx.ConnectTimeout):
            await http.get("http://127.0.0.1:9/")


async def test_unsupported_scheme_and_header_injection_send_nothing() -> None:
    async with ScriptedServer([]) as server:
        async with lean_client() as http:
            with pytest.raises(httpx.UnsupportedProtocol):
                await LeanTransport().handle_async_request(httpx.Request("GET", "ftp://127.0.0.1/"))
            with pytest.raises(httpx.LocalProtocolError):
                await http.get(server.url, headers={"x-evil": "a\r\nx-api-key: stolen"})
    assert server.connections == 0


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await reader.read(1)  # answers nothing; returns when the client hangs up
    return False


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    return False


async def _reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return False


def _then(raw: bytes, keep: bool = False) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]:
    async def action(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        await writer.drain()
        return keep

    return action


@pytest.mark.parametrize(
    ("action", "error"),
    [
        (_hang_up, httpx.RemoteProtocolError),
        (_reset, httpx.ReadError),
        (_then(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"), httpx.RemoteProtocolError),
        (_then(b"HTTP/1.1 200 OK\r\nContent-Le"), httpx.RemoteProtocolError),
        (_then(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc"), httpx.RemoteProtocolError),
        (_then(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", keep=True), httpx.RemoteProtocolError),
        (_then(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", keep=True),
         httpx.RemoteProtocolError),
        (_then(b"SSH-2.0-OpenSSH\r\n\r\n", keep=True), httpx.RemoteProtocolError),
        (_then(b"HTTP/1.1 2000 OK\r\n\r\n", keep=True), httpx.RemoteProtocolError),
        (_then(b"HTTP/1.1 200 OK\r\n folded: header\r\n\r\n", keep=True), httpx.RemoteProtocolError),
        (_then(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", keep=True), httpx.RemoteProtocolError),
        (_then(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", keep=True),
         httpx.RemoteProtocolError),
        (_then(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", keep=True), httpx.RemoteProtocolError),
        (_then(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", keep=True), httpx.RemoteProtocolError),
        (_then(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", keep=True), httpx.RemoteProtocolError),
    ],
    ids=[
        "hang-up", "reset", "short-body", "cut-headers", "cut-chunk", "bad-chunk-size", "long-chunk",
        "not-http", "bad-status", "folded-header", "no-colon", "conflicting-length", "negative-length",
        "huge-head", "switching-protocols",
    ],
)
async def test_broken_answers_raise_httpx_errors_and_drop_the_connection(action: object, error: type) -> None:
    async with ScriptedServer([action, response(b"fine")]) as server:
        async with lean_client() as http:
            with pytest.raises(error):
                await http.get(server.url)
            assert (await http.get(server.url)).content == b"fine"
    assert server.connections == 2


async def test_read_timeout_closes_the_connection() -> None:
    async with ScriptedServer([_silent, response(b"later")]) as server:
        async with httpx.AsyncClient(transport=LeanTransport(), timeout=httpx.Timeout(5, read=0.1)) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get(server.url)
            assert (await http.get(server.url)).content == b"later"
    assert server.connections == 2


async def test_write_timeout_when_the_server_stops_reading() -> None:
    done = asyncio.Event()

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await done.wait()  # never reads: the socket buffers fill up
        writer.close()

    server = await asyncio.start_server(stall, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(transport=LeanTransport(), timeout=httpx.Timeout(5, write=0.2)) as http:
            with pytest.raises(httpx.WriteTimeout):
                await http.post(f"http://127.0.0.1:{port}/", content=b"x" * (64 * 1024 * 1024))
    finally:
        done.set()
        server.close()


async def test_cancelling_a_request_closes_its_connection() -> None:
    async with ScriptedServer([_silent, response(b"next")]) as server:
        async with lean_client() as http:
            request = asyncio.ensure_future(http.get(server.url))
            await asyncio.sleep(0.1)
            request.cancel()
            with pytest.raises(asyncio.CancelledError):
                await request
            assert (await http.get(server.url)).content == b"next"
            transport: LeanTransport = http._transport  # type: ignore[assignment]
            assert sum(len(conns) for conns in transport._idle.values()) == 1
    assert server.connections == 2


async def test_tls_with_a_private_certificate_authority() -> None:
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            writer.write(response(b'{"tls": true}'))
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        transport = LeanTransport(ssl_context=client_context)
        async with httpx.AsyncClient(transport=transport) as http:
            answers = [await http.get(f"https://127.0.0.1:{port}/") for _ in range(2)]
            assert [a.json() for a in answers] == [{"tls": True}] * 2
            assert sum(len(conns) for conns in transport._idle.values()) == 1
        async with httpx.AsyncClient(transport=LeanTransport()) as http:  # the default trust store
            with pytest.raises(httpx.ConnectError):
                await http.get(f"https://127.0.0.1:{port}/")
    finally:
        server.close()


def test_a_proxy_in_the_environment_hands_over_to_httpx_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert wants_lean_transport()
    assert isinstance(new_async_http(httpx.Timeout(5), 6)._transport, LeanTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert not wants_lean_transport()
    http = new_async_http(httpx.Timeout(5), 6)
    assert isinstance(http, CookielessAsyncClient)
    assert not isinstance(http._transport, LeanTransport)
