"""A tiny TCP proxy that breaks connections mid-request, as a flaky network between a student and the hub.

Each connection carries one HTTP request. The proxy reads it whole, forwards it to the hub's
proxy, and then resets the student's side (TCP RST) instead of answering: `mid` at once, while
the service is still working on the request, or `after` once the whole answer has come back
(the answer is lost). The student's client sees a broken connection either way and cannot
know whether its create was made. With `resets=n` it does that to the first n requests
only, and passes the later ones through, answers and all (a network that recovers).

Two more modes stand for a proxy in the way (the hub's, a load balancer) rather than a broken
connection: `bad-gateway` answers 502 (an HTML page) without forwarding anything, and
`gateway-timeout` forwards the request, lets the service answer, and answers 504 instead.
"""

from __future__ import annotations

import asyncio
import socket
import struct

__all__ = ["ResettingProxy"]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head + (await reader.readexactly(length) if length else b"")


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return head + await reader.readexactly(int(value.strip()))
    return head


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class ResettingProxy:
    def __init__(self, target_port: int, mode: str, resets: int | None = None) -> None:
        assert mode in ("mid", "after", "bad-gateway", "gateway-timeout")
        self.target_port = target_port
        self.mode = mode
        self.resets = 0
        self.passed = 0
        self._budget = resets  # None: reset every request
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> "ResettingProxy":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_request(reader)
            if self.mode == "bad-gateway" and (self._budget is None or self.resets < self._budget):
                self.resets += 1
                page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nConnection: close\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(page), page))
                await writer.drain()
                writer.close()
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            up_writer.write(request)
            await up_writer.drain()
            if self._budget is not None and self.resets >= self._budget:  # recovered: pass it through
                answer = await _read_response(up_reader)  # one request a connection: the client must not reuse it
                writer.write(answer.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
                await writer.drain()
                self.passed += 1
                writer.close()
                up_writer.close()
                return
            if self.mode == "gateway-timeout":
                await _read_response(up_reader)  # the service did it; the proxy gave up waiting
                self.resets += 1
                writer.write(b"HTTP/1.1 504 Gateway Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                writer.close()
                up_writer.close()
                return
            if self.mode == "after":
                await _read_response(up_reader)
            else:
                await asyncio.sleep(0.005)  # the request is on its way to the service
            self.resets += 1
            _reset(writer)
            up_writer.close()
        except (OSError, asyncio.IncompleteReadError):
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
