# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""The benchmark's one streaming HTTP client: HTTP/1.1 keep-alive, chunked decoding, SSE.

Standard library only, because it runs inside the llm_benchmark module on minimal nodes where
aiohttp or httpx are not installed.

Timestamps are taken when the bytes arrived, not when the client got round to them. Each
connection is a non-blocking socket the event loop watches (loop.add_reader); every read is one
recvmsg that also returns the kernel's receive timestamp of the newest bytes it read
(SO_TIMESTAMPNS, CLOCK_REALTIME, mapped onto time.perf_counter). A busy loop therefore reads late
but stamps right, and the difference (read time - arrival time, the "stamp lag") is kept as the
measure of how far behind the client ran. The kernel merges small segments a reader has not yet
collected and keeps the newest one's time, so when the lag exceeds the gap between two chunks of
one stream the earlier chunk is stamped with the later one's arrival: the lag still bounds the
error. Where the kernel gives no timestamp (not Linux, or it was refused) the read time is used.

Per read the client does the least: it undoes the chunked framing, keeps the body bytes and notes
which stamp they came with. Splitting the SSE events and parsing their JSON waits until the level
is over (interpret), so the client's own work cannot delay the stamps of the chunks behind it.
"""

from __future__ import annotations

import asyncio
import json
import platform
import re
import socket
import ssl
import struct
import sys
import time
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Bodies of error responses are read only to keep the message; this bounds the read.
_MAX_ERROR_BODY = 4096
# Status line and headers; a server sending more is not an OpenAI-compatible server.
_MAX_HEAD_BYTES = 65536
_READ_SIZE = 262144
# What asyncio.wait_for raises when time runs out: asyncio.TimeoutError, which only Python 3.11 made
# the builtin TimeoutError. Ubuntu 22.04 nodes run 3.10, where catching the builtin alone lets a
# timed-out request abort the whole benchmark.
_TIMEOUTS = (TimeoutError, asyncio.TimeoutError)

# SO_TIMESTAMPNS (= SCM_TIMESTAMPNS) is 35 in asm-generic/socket.h, which these architectures use;
# Python's socket module does not export it. Its payload is a native struct timespec.
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_STAMP_MACHINES = ("x86_64", "amd64", "aarch64", "arm64", "ppc64le", "s390x", "riscv64")
_TIMESPEC = struct.Struct("@ll")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
# A kernel stamp this far from the read time means the wall clock was stepped since calibration.
_STAMP_SANE_S = 30.0

_HEAD = 0
_CHUNKED = 1
_LENGTH = 2
_TO_EOF = 3
_DONE = 4

_EVENT_END = re.compile(rb"\r?\n\r?\n")


class ProtocolError(Exception):
    """The server answered, but not with well-formed HTTP/1.1 or SSE."""


class StaleConnectionError(ConnectionError):
    """A kept-alive connection the server had closed before it read the request.

    llama-server (cpp-httplib) closes the connection after every streamed response although its
    headers offer keep-alive; the next request on it meets EOF or a reset before any status line.
    The server never saw that request, so it is sent again on a new connection, as curl does.
    """


def kernel_stamps_supported() -> bool:
    return (
        sys.platform.startswith("linux")
        and platform.machine().lower() in _STAMP_MACHINES
        and hasattr(socket.socket, "recvmsg")
        and _ANCILLARY > 0
    )


class StampClock:
    """Maps the kernel's receive timestamps (CLOCK_REALTIME) onto time.perf_counter().

    On Linux perf_counter is CLOCK_MONOTONIC, shared by every process. The offset between the two
    clocks is read where the two readings lie closest together; NTP slews both clocks alike, and a
    step of the wall clock is caught by calibrating before every level.
    """

    def __init__(self) -> None:
        self.offset_ns = 0
        self.calibrate()

    def calibrate(self) -> None:
        best_window, best_offset = None, 0
        for _ in range(9):
            before = time.perf_counter_ns()
            real = time.time_ns()
            after = time.perf_counter_ns()
            if best_window is None or after - before < best_window:
                best_window, best_offset = after - before, real - (before + after) // 2
        self.offset_ns = best_offset


class ReadStats:
    """What the reads of one process looked like: stamp lags (ms) and where the stamps came from."""

    def __init__(self) -> None:
        self.lags_ms = array("d")
        self.kernel_stamps = 0
        self.read_stamps = 0

    def reset(self) -> None:
        self.__init__()


@dataclass
class Endpoint:
    host: str
    port: int
    path: str
    ssl_context: ssl.SSLContext | None
    host_header: str
    # Keep each reply's answer text (RequestRecord.content) for a workload that checks it. On the
    # endpoint because the forked workers of llm_bench_load build their pools from it.
    keep_content: bool = False


def parse_endpoint(base_url: str, route: str = "/v1/chat/completions") -> Endpoint:
    """base_url may be the server root or end in /v1 (the OpenAI convention); both mean the same."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be http(s)://host[:port][/prefix], got {base_url!r}")
    prefix = parts.path.rstrip("/")
    if prefix.endswith("/v1"):
        prefix = prefix[: -len("/v1")]
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    return Endpoint(
        host=parts.hostname,
        port=port,
        path=prefix + route,
        ssl_context=ssl.create_default_context() if secure else None,
        host_header=parts.netloc,
    )


@dataclass
class RequestRecord:
    """What one request did. Times are time.perf_counter() seconds; None when it did not happen."""

    index: int
    sent: float = 0.0
    first_event: float | None = None
    # Arrival of every chunk carrying generated tokens: answer (delta.content) or reasoning.
    content_times: list[float] = field(default_factory=list)
    # Arrival of the first chunk carrying answer text (delta.content), reasoning not counted.
    first_answer: float | None = None
    reasoning: bool = False  # some chunk carried reasoning_content (or reasoning)
    end: float | None = None
    output_tokens: int | None = None
    token_source: str | None = None  # "usage" or "chunks"
    # usage.prompt_tokens, and the prompt tokens the server took from its prefix cache
    # (usage.prompt_tokens_details.cached_tokens, else llama-server's timings.cache_n).
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    cached_source: str | None = None
    error: str | None = None  # http_<status>, timeout, connection, protocol
    error_detail: str | None = None
    # llama-server's own `timings` object (prompt_n, prompt_ms, predicted_n, predicted_ms, ...),
    # sent with the final chunk; None from servers that send none. Kept to check the client's
    # figures against the server's, never used in place of them.
    server_timings: dict[str, Any] | None = None
    # The choice's finish_reason ("stop", "length", ...) as the last chunk carrying one said.
    finish_reason: str | None = None
    # The answer text (delta.content joined): only when the endpoint keeps it, else None.
    content: str | None = None
    # Set by a workload that checks the answer (structured): None when not checked.
    valid: bool | None = None
    invalid_reason: str | None = None
    # The body as it arrived, until interpret() has read it: (bytes, end offset of each read,
    # arrival stamp of each read).
    raw: tuple[bytes, array, array] | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None


class _Response:
    """Incremental HTTP/1.1 response parser, fed from the read callback; resolves its future at the end."""

    def __init__(self, future: asyncio.Future, reused: bool) -> None:
        self.future = future
        self.reused = reused
        self.mode = _HEAD
        self.head = b""
        self.status = 0
        self.headers: dict[str, str] = {}
        self.parts: list[bytes] = []
        self.size = 0
        self.ends = array("q")
        self.stamps = array("d")
        self.need = 0  # chunked: data bytes of the current chunk still to come; length: body bytes
        self.crlf = 0  # chunked: bytes of the CRLF after a chunk's data still to come
        self.line = b""  # chunked: a size line cut by a read
        self.trailers = False
        self.limit = 0  # error bodies: stop after this many bytes
        self.got_bytes = False
        self.end = 0.0
        self.extra = b""

    def feed(self, data: bytes, stamp: float) -> bool:
        """Take one read's bytes; True once the response is complete."""
        self.got_bytes = True
        pos = 0
        if self.mode == _HEAD:
            self.head += data
            # The blank line ending the headers: CRLF CRLF, or LF LF from a lax server (whichever first).
            ends = [
                (at, width)
                for at, width in ((self.head.find(b"\r\n\r\n"), 4), (self.head.find(b"\n\n"), 2))
                if at >= 0
            ]
            cut, width = min(ends) if ends else (-1, 0)
            if cut < 0:
                if len(self.head) > _MAX_HEAD_BYTES:
                    raise ProtocolError("status line and headers too long")
                return False
            data, pos = self.head, cut + width
            self._parse_head(self.head[:cut])
            self.head = b""
            if self.mode == _DONE:
                return self._finish(data, pos, stamp)
        before = self.size
        if self.mode == _CHUNKED:
            done, pos = self._chunked(data, pos)
        elif self.mode == _LENGTH:
            take = min(self.need, len(data) - pos)
            self._take(data[pos : pos + take])
            pos += take
            self.need -= take
            done = self.need == 0
        else:
            self._take(data[pos:] if pos else data)
            pos, done = len(data), False
        if self.size != before:
            self.ends.append(self.size)
            self.stamps.append(stamp)
        if not done and self.limit and self.size >= self.limit:
            done, pos = True, len(data)
        return self._finish(data, pos, stamp) if done else False

    def _take(self, piece: bytes) -> None:
        if piece:
            self.parts.append(piece)
            self.size += len(piece)

    def _finish(self, data: bytes, pos: int, stamp: float) -> bool:
        self.mode = _DONE
        self.end = stamp
        self.extra = data[pos:]
        return True

    def feed_eof(self, stamp: float) -> bool:
        """The peer closed: the end of a body framed by EOF, an error otherwise."""
        if self.mode == _TO_EOF or (self.limit and self.mode != _HEAD):
            self.end = stamp
            self.mode = _DONE
            return True
        if not self.got_bytes and self.reused:
            raise StaleConnectionError("connection closed before the status line")
        if self.mode == _HEAD:
            raise ConnectionError(
                "connection closed inside the headers"
                if self.got_bytes
                else "connection closed before the status line"
            )
        raise ConnectionError("connection closed inside the body")

    def _parse_head(self, head: bytes) -> None:
        lines = head.replace(b"\r\n", b"\n").split(b"\n")
        parts = lines[0].decode("latin-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {lines[0][:80]!r}")
        self.status = int(parts[1])
        for line in lines[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()
        if self.status != 200:
            self.limit = _MAX_ERROR_BODY  # the status code is the finding; the message a courtesy
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            self.mode = _CHUNKED
        elif "content-length" in self.headers:
            try:
                self.need = int(self.headers["content-length"])
            except ValueError as error:
                raise ProtocolError("bad Content-Length") from error
            self.mode = _LENGTH if self.need > 0 else _DONE
        elif self.status in (204, 304) or self.status < 200:
            self.mode = _DONE
        else:
            self.mode = _TO_EOF  # neither framing: the body runs to EOF

    def _chunked(self, data: bytes, pos: int) -> tuple[bool, int]:
        """Undo chunked transfer encoding from data[pos:]; (body complete, position after it)."""
        end = len(data)
        parts = self.parts
        while pos < end:
            if self.need:
                stop = pos + self.need
                if stop <= end:
                    piece = data[pos:stop]
                    self.need, self.crlf, pos = 0, 2, stop
                else:
                    piece = data[pos:]
                    self.need, pos = stop - end, end
                parts.append(piece)
                self.size += len(piece)
                continue
            if self.crlf:
                byte = data[pos]
                if self.crlf == 2 and byte == 13:
                    self.crlf = 1
                elif byte == 10:
                    self.crlf = 0
                else:
                    raise ProtocolError("chunk not followed by CRLF")
                pos += 1
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                self.line += data[pos:]
                if len(self.line) > 1024:
                    raise ProtocolError("chunk size line too long")
                return False, end
            line = self.line + data[pos:newline] if self.line else data[pos:newline]
            self.line = b""
            pos = newline + 1
            if self.trailers:
                if not line.strip():  # trailers (rare) end with an empty line like the headers do
                    return True, pos
                continue
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as error:
                raise ProtocolError(f"bad chunk size line {line[:40]!r}") from error
            if size == 0:
                self.trailers = True
            else:
                self.need = size
        return False, pos


class Connection:
    """One keep-alive connection; a pool hands it to one request at a time.

    The loop calls _on_readable whenever the socket has bytes; each call is one recvmsg, stamped.
    """

    def __init__(self, sock: socket.socket, pool: ConnectionPool, kernel_stamps: bool) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.stats = pool.stats
        self.clock = pool.clock
        self.kernel_stamps = kernel_stamps
        self.reusable = True
        self.reused = False  # served a request before: the server may have closed it since
        self.closed = False
        self.response: _Response | None = None
        self.tls: ssl.SSLObject | None = None
        self._tls_in = self._tls_out = None
        self._handshake: asyncio.Future | None = None
        self._handshaking = False
        self._fd = sock.fileno()
        self.loop.add_reader(self._fd, self._on_readable)

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        self._tls_in, self._tls_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._tls_in, self._tls_out, server_hostname=server_hostname)
        self._handshaking = True
        try:
            while True:
                try:
                    self.tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pass
                await self._flush_tls()
                if self.closed:
                    raise ConnectionError("connection closed during the TLS handshake")
                if not self._tls_in.pending:  # nothing arrived while the flush awaited: wait for it
                    self._handshake = self.loop.create_future()
                    await self._handshake
            await self._flush_tls()
        finally:
            self._handshaking, self._handshake = False, None

    async def _flush_tls(self) -> None:
        assert self._tls_out is not None
        data = self._tls_out.read()
        if data:
            await self.loop.sock_sendall(self.sock, data)

    async def send(self, data: bytes) -> None:
        if self.tls is not None:
            self.tls.write(data)
            assert self._tls_out is not None
            data = self._tls_out.read()
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent < len(data):
            await self.loop.sock_sendall(self.sock, data[sent:])

    def alive(self) -> bool:
        """Nothing pending on an idle connection: no EOF, no stray bytes."""
        if self.closed or self.response is not None:
            return False
        try:
            self.sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return True  # nothing pending: as it was left
        except OSError:
            return False
        return False  # EOF (b"") or bytes nobody asked for

    def _on_readable(self) -> None:
        try:
            if self.kernel_stamps:
                data, ancillary, _flags, _address = self.sock.recvmsg(_READ_SIZE, _ANCILLARY)
            else:
                data, ancillary = self.sock.recv(_READ_SIZE), ()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._lost(error)
            return
        now = time.perf_counter()
        if not data:  # EOF: no bytes to stamp
            self._lost(None, now)
            return
        stamp = now
        stats = self.stats
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
                seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
                arrived = (seconds * 1_000_000_000 + nanoseconds - self.clock.offset_ns) / 1e9
                if now - _STAMP_SANE_S < arrived:
                    stamp = arrived if arrived < now else now
                    stats.lags_ms.append((now - stamp) * 1000.0)
                    stats.kernel_stamps += 1
                    break
        else:
            stats.read_stamps += 1
        if self.tls is None:
            self._deliver(data, stamp)
            return
        assert self._tls_in is not None
        self._tls_in.write(data)
        if self._handshaking:
            waiter, self._handshake = self._handshake, None
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        while True:
            try:
                plain = self.tls.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self._lost(None, stamp)
                return
            except ssl.SSLError as error:
                self._lost(ConnectionError(f"TLS: {error}"))
                return
            if not plain:
                break
            self._deliver(plain, stamp)
            if self.closed:
                return

    def _deliver(self, data: bytes, stamp: float) -> None:
        response = self.response
        if response is None:
            self.reusable = False  # bytes nobody asked for: the connection's state is unknown
            return
        try:
            complete = response.feed(data, stamp)
        except (ProtocolError, ConnectionError) as error:
            self.reusable = False
            self.response = None
            if not response.future.done():
                response.future.set_exception(error)
            return
        if complete:
            self.response = None
            if response.extra:
                self.reusable = False
            if not response.future.done():
                response.future.set_result(response)

    def _lost(self, error: BaseException | None, stamp: float | None = None) -> None:
        """EOF (error None) or a failed read: finish or fail the response in flight, close."""
        response, self.response = self.response, None
        self.reusable = False
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_exception(ConnectionError("connection closed during the TLS handshake"))
        if response is not None and not response.future.done():
            try:
                if error is not None:
                    if not response.got_bytes and response.reused:
                        raise StaleConnectionError(str(error) or type(error).__name__) from error
                    raise error if isinstance(error, ConnectionError) else ConnectionError(str(error))
                if response.feed_eof(time.perf_counter() if stamp is None else stamp):
                    response.future.set_result(response)
            except (ConnectionError, ProtocolError) as failure:
                response.future.set_exception(failure)
        self.close()

    def close(self) -> None:
        self.reusable = False
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self._fd)
            self.sock.close()


class ConnectionPool:
    """Idle connections kept across requests and concurrency levels: no handshake per request."""

    def __init__(self, endpoint: Endpoint, kernel_stamps: bool | None = None) -> None:
        self.endpoint = endpoint
        self._idle: list[Connection] = []
        self.opened = 0
        self.stale_retries = 0
        self.stats = ReadStats()
        self.clock = StampClock()
        self.kernel_stamps = kernel_stamps_supported() if kernel_stamps is None else kernel_stamps
        self._addresses: list[tuple[int, Any]] | None = None

    def _resolve(self) -> list[tuple[int, Any]]:
        # Resolved once and synchronously: asyncio would resolve a name in a thread, and threads
        # must not exist when the benchmark forks its worker processes.
        if self._addresses is None:
            found = socket.getaddrinfo(self.endpoint.host, self.endpoint.port, type=socket.SOCK_STREAM)
            self._addresses = [(family, address) for family, _type, _proto, _name, address in found]
        return self._addresses

    async def acquire(self, fresh: bool = False) -> Connection:
        while self._idle and not fresh:
            conn = self._idle.pop()
            # A server that closed an idle connection leaves EOF behind; do not send into it.
            if conn.alive():
                conn.reused = True
                return conn
            conn.close()
        loop = asyncio.get_running_loop()
        failure: OSError | None = None
        for family, address in self._resolve():
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, address)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as error:
                sock.close()
                failure = error
                continue
            except BaseException:
                sock.close()
                raise
            conn = Connection(sock, self, self.kernel_stamps and _enable_stamps(sock))
            if self.endpoint.ssl_context is not None:
                try:
                    await conn.start_tls(self.endpoint.ssl_context, self.endpoint.host)
                except BaseException:
                    conn.close()
                    raise
            self.opened += 1
            return conn
        raise failure or OSError(f"no address for {self.endpoint.host}")

    def release(self, conn: Connection) -> None:
        if conn.reusable and not conn.closed and conn.response is None:
            self._idle.append(conn)
        else:
            conn.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _enable_stamps(sock: socket.socket) -> bool:
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def build_request(endpoint: Endpoint, body: bytes, api_key: str | None) -> bytes:
    lines = [
        f"POST {endpoint.path} HTTP/1.1",
        f"Host: {endpoint.host_header}",
        "Content-Type: application/json",
        "Accept: text/event-stream",
        "Connection: keep-alive",
        f"Content-Length: {len(body)}",
    ]
    if api_key:
        lines.append(f"Authorization: Bearer {api_key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _keeps_alive(headers: dict[str, str]) -> bool:
    framed = "content-length" in headers or "chunked" in headers.get("transfer-encoding", "").lower()
    return framed and headers.get("connection", "").lower() != "close"


def _sse_data(event: bytes) -> bytes | None:
    lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def split_events(body: bytes, ends: array, stamps: array) -> list[tuple[float, bytes]]:
    """The SSE events' data payloads, each with the arrival stamp of the read that completed it."""
    events: list[tuple[float, bytes]] = []
    start = 0
    for match in _EVENT_END.finditer(body):
        event = body[start : match.start()].replace(b"\r\n", b"\n")
        start = match.end()
        data = _sse_data(event)
        # Comment-only events (": keep-alive") carry no data and are not chunks.
        if data is not None:
            events.append((stamps[min(bisect_left(ends, start), len(stamps) - 1)], data))
    # A server that ends the body without the blank line after its last event still sent it.
    tail = _sse_data(body[start:].replace(b"\r\n", b"\n"))
    if tail is not None and stamps:
        events.append((stamps[-1], tail))
    return events


async def _exchange(conn: Connection, request: bytes, record: RequestRecord) -> _Response:
    """Send one request and wait for the whole response, read by the connection's callback."""
    response = _Response(conn.loop.create_future(), conn.reused)
    conn.response = response
    record.sent = time.perf_counter()
    try:
        await conn.send(request)
    except OSError as error:
        conn.response = None
        conn.reusable = False
        # Nothing of a response arrived: on a reused connection the server closed it beforehand.
        if conn.reused:
            raise StaleConnectionError(str(error) or type(error).__name__) from error
        raise
    return await response.future


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def interpret(record: RequestRecord) -> None:
    """Read a completed record's body: SSE events, content stamps, token counts. Idempotent."""
    if record.raw is None:
        return
    body, ends, stamps = record.raw
    record.raw = None
    if record.error is None:
        interpret_events(record, split_events(body, ends, stamps))


def interpret_events(record: RequestRecord, events: list[tuple[float, bytes]]) -> None:
    """Turn the raw events into TTFR, content timestamps, the token counts and the prompt's."""
    if events:
        record.first_event = events[0][0]
    usage_tokens: int | None = None
    usage: dict[str, Any] = {}
    pieces: list[str] | None = [] if record.content is not None else None
    for arrived, payload in events:
        if payload.strip() == b"[DONE]":
            continue
        try:
            message = json.loads(payload)
        except ValueError as error:
            record.error, record.error_detail = "protocol", f"SSE data is not JSON: {error}"
            return
        if not isinstance(message, dict):
            continue
        if "error" in message:
            # vLLM and llama-server report failures inside a 200 stream.
            record.error, record.error_detail = "protocol", json.dumps(message["error"])[:300]
            return
        if isinstance(message.get("usage"), dict):
            usage = message["usage"]
            if _int(usage.get("completion_tokens")) is not None:
                usage_tokens = usage["completion_tokens"]
        timings = message.get("timings")
        if isinstance(timings, dict):
            record.server_timings = timings  # the last one covers the whole generation
        for choice in message.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            if isinstance(choice.get("finish_reason"), str):
                record.finish_reason = choice["finish_reason"]
            delta = choice.get("delta") or {}
            # Reasoning models stream their thinking in reasoning_content (llama-server, DeepSeek,
            # vLLM before 0.10) or reasoning (vLLM 0.10+, OpenRouter): generated tokens too.
            answer = bool(delta.get("content"))
            thought = bool(delta.get("reasoning_content") or delta.get("reasoning"))
            if answer or thought:
                record.content_times.append(arrived)
                record.reasoning = record.reasoning or thought
                if answer and record.first_answer is None:
                    record.first_answer = arrived
                if answer and pieces is not None and isinstance(delta["content"], str):
                    pieces.append(delta["content"])
                break
    if pieces is not None:
        record.content = "".join(pieces)
    record.prompt_tokens = _int(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else None
    if cached is not None:
        record.cached_tokens, record.cached_source = cached, "usage.prompt_tokens_details.cached_tokens"
    elif _int((record.server_timings or {}).get("cache_n")) is not None:
        record.cached_tokens, record.cached_source = record.server_timings["cache_n"], "timings.cache_n"
    if not record.content_times:
        record.error, record.error_detail = "protocol", "the stream carried no generated content"
        return
    if usage_tokens is not None:
        record.output_tokens, record.token_source = usage_tokens, "usage"
    else:
        # Undercounts when a chunk carries several tokens; the results say so.
        record.output_tokens, record.token_source = len(record.content_times), "chunks"


async def send_request(
    pool: ConnectionPool,
    request: bytes,
    index: int,
    timeout_s: float,
    interpret_now: bool = True,
) -> RequestRecord:
    """One streamed request. Never raises for what the server or network did: the record says.

    With interpret_now False the body stays in record.raw for interpret() to read later.
    """
    record = RequestRecord(index=index)
    if pool.endpoint.keep_content:
        record.content = ""  # filled by interpret(); left None, nothing is kept
    # At most two attempts: the second only after a stale kept-alive connection, on a new one,
    # which cannot be stale, so the loop ends.
    for fresh in (False, True):
        try:
            # Opening a connection is outside the clock: with keep-alive only a worker's first
            # request opens one, and its handshake is not the server's latency.
            conn = await asyncio.wait_for(pool.acquire(fresh=fresh), timeout_s)
        except _TIMEOUTS:
            record.error, record.error_detail = "timeout", f"no connection within {timeout_s} s"
            return record
        except (OSError, ssl.SSLError) as error:
            record.error, record.error_detail = "connection", str(error) or type(error).__name__
            return record
        try:
            response = await asyncio.wait_for(_exchange(conn, request, record), timeout_s)
        except StaleConnectionError:
            conn.reusable = False
            pool.stale_retries += 1
            continue  # record.sent is stamped again by the new attempt
        except _TIMEOUTS:
            conn.reusable = False
            record.error, record.error_detail = "timeout", f"not finished within {timeout_s} s"
        except ProtocolError as error:
            conn.reusable = False
            record.error, record.error_detail = "protocol", str(error)
        except OSError as error:
            conn.reusable = False
            record.error, record.error_detail = "connection", str(error) or type(error).__name__
        else:
            record.end = response.end
            body = b"".join(response.parts)
            if response.status != 200:
                conn.reusable = False  # the error body's framing is not worth trusting: start afresh
                record.error = f"http_{response.status}"
                record.error_detail = body[:300].decode("utf-8", "replace").strip() or None
            else:
                conn.reusable = conn.reusable and _keeps_alive(response.headers)
                record.raw = (body, response.ends, response.stamps)
        finally:
            pool.release(conn)
        break
    if interpret_now:
        interpret(record)
    return record
