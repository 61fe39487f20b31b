# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""The benchmark's one streaming HTTP client: HTTP/1.1 keep-alive, chunked decoding, SSE.

Standard library only, because it runs inside the llm_benchmark module on minimal nodes where
aiohttp or httpx are not installed. It does the least possible per streamed chunk: it stamps the
time and keeps the raw SSE payload; JSON is parsed only after the response has ended, so the
client's own work does not delay the timestamps of the chunks behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Bodies of error responses are read only to keep the message; this bounds the read.
_MAX_ERROR_BODY = 4096
# Status line and headers; a server sending more is not an OpenAI-compatible server.
_MAX_HEADER_LINES = 100
# What asyncio.wait_for raises when time runs out: asyncio.TimeoutError, which only Python 3.11 made
# the builtin TimeoutError. Ubuntu 22.04 nodes run 3.10, where catching the builtin alone lets a
# timed-out request abort the whole benchmark.
_TIMEOUTS = (TimeoutError, asyncio.TimeoutError)


class ProtocolError(Exception):
    """The server answered, but not with well-formed HTTP/1.1 or SSE."""


class StaleConnectionError(ConnectionError):
    """A kept-alive connection the server had closed before it read the request.

    llama-server (cpp-httplib) closes the connection after every streamed response although its
    headers offer keep-alive; the next request on it meets EOF or a reset before any status line.
    The server never saw that request, so it is sent again on a new connection, as curl does.
    """


@dataclass
class Endpoint:
    host: str
    port: int
    path: str
    ssl_context: ssl.SSLContext | None
    host_header: str


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
    content_times: list[float] = field(default_factory=list)
    end: float | None = None
    output_tokens: int | None = None
    token_source: str | None = None  # "usage" or "chunks"
    error: str | None = None  # http_<status>, timeout, connection, protocol
    error_detail: str | None = None
    # llama-server's own `timings` object (prompt_n, prompt_ms, predicted_n, predicted_ms, ...),
    # sent with the final chunk; None from servers that send none. Kept to check the client's
    # figures against the server's, never used in place of them.
    server_timings: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Connection:
    """One keep-alive connection; a pool hands it to one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reusable = True
        self.reused = False  # served a request before: the server may have closed it since

    def close(self) -> None:
        self.reusable = False
        self.writer.close()


class ConnectionPool:
    """Idle connections kept across requests and concurrency levels: no handshake per request."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._idle: list[Connection] = []
        self.opened = 0
        self.stale_retries = 0

    async def acquire(self, fresh: bool = False) -> Connection:
        while self._idle and not fresh:
            conn = self._idle.pop()
            # A server that closed an idle connection leaves EOF behind; do not send into it.
            if not conn.reader.at_eof():
                conn.reused = True
                return conn
            conn.close()
        reader, writer = await asyncio.open_connection(
            self.endpoint.host,
            self.endpoint.port,
            ssl=self.endpoint.ssl_context,
            limit=1 << 20,
        )
        self.opened += 1
        return Connection(reader, writer)

    def release(self, conn: Connection) -> None:
        if conn.reusable:
            self._idle.append(conn)
        else:
            conn.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        for conn in idle:
            with contextlib.suppress(OSError):  # the peer already went away: nothing to release
                await conn.writer.wait_closed()


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


async def _read_status(reader: asyncio.StreamReader) -> int:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed before the status line")
    parts = status_line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"bad status line {status_line[:80]!r}")
    return int(parts[1])


async def _read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADER_LINES):
        line = await reader.readline()
        if line in (b"\r\n", b"\n"):
            return headers
        if not line:
            raise ConnectionError("connection closed inside the headers")
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    raise ProtocolError("too many header lines")


async def _body_pieces(reader: asyncio.StreamReader, headers: dict[str, str]):
    """Yield the body as it arrives, undoing chunked transfer encoding."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readline()
            if not size_line:
                raise ConnectionError("connection closed inside a chunked body")
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError as error:
                raise ProtocolError(f"bad chunk size line {size_line[:40]!r}") from error
            if size == 0:
                # Trailers (rare) end with an empty line like the headers do.
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                return
            data = await reader.readexactly(size)
            if await reader.readexactly(2) != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
            yield data
    elif "content-length" in headers:
        remaining = int(headers["content-length"])
        while remaining > 0:
            data = await reader.read(min(remaining, 65536))
            if not data:
                raise ConnectionError("connection closed before Content-Length bytes")
            remaining -= len(data)
            yield data
    else:
        # Neither framing: the body runs to EOF and the connection cannot be reused.
        while data := await reader.read(65536):
            yield data


def _keeps_alive(headers: dict[str, str]) -> bool:
    framed = "content-length" in headers or "chunked" in headers.get("transfer-encoding", "").lower()
    return framed and headers.get("connection", "").lower() != "close"


def _sse_data(event: bytes) -> bytes | None:
    lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


async def _stream(
    conn: Connection, request: bytes, record: RequestRecord, events: list[tuple[float, bytes]]
) -> None:
    """Send one request and collect (arrival time, SSE data payload) pairs until the body ends."""
    record.sent = time.perf_counter()
    try:
        conn.writer.write(request)
        await conn.writer.drain()
        status = await _read_status(conn.reader)
    except ConnectionError as error:
        # Nothing of a response arrived: on a reused connection the server closed it beforehand.
        if conn.reused:
            raise StaleConnectionError(str(error) or type(error).__name__) from error
        raise
    headers = await _read_headers(conn.reader)
    if status != 200:
        conn.reusable = False  # the error body's framing is not worth trusting: start afresh
        body = b""
        try:
            async for piece in _body_pieces(conn.reader, headers):
                body += piece
                if len(body) >= _MAX_ERROR_BODY:
                    break
        except (ConnectionError, ProtocolError, asyncio.IncompleteReadError):
            pass  # the status code is the finding; the message is a courtesy
        record.error = f"http_{status}"
        record.error_detail = body[:300].decode("utf-8", "replace").strip() or None
        record.end = time.perf_counter()
        return
    conn.reusable = _keeps_alive(headers)
    buffer = b""
    async for piece in _body_pieces(conn.reader, headers):
        now = time.perf_counter()
        # Normalise CRLF after joining so a CR at the end of one piece meets its LF.
        buffer = (buffer + piece).replace(b"\r\n", b"\n")
        while (cut := buffer.find(b"\n\n")) >= 0:
            event, buffer = buffer[:cut], buffer[cut + 2 :]
            data = _sse_data(event)
            # Comment-only events (": keep-alive") carry no data and are not chunks.
            if data is not None:
                events.append((now, data))
    record.end = time.perf_counter()
    # A server that ends the body without the blank line after its last event still sent it.
    tail = _sse_data(buffer)
    if tail is not None:
        events.append((record.end, tail))


def _content_of(delta: dict[str, Any]) -> bool:
    # Reasoning models stream their thinking in reasoning_content; those are generated tokens too.
    return bool(delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning"))


def interpret_events(record: RequestRecord, events: list[tuple[float, bytes]]) -> None:
    """Turn the raw events into TTFR, content timestamps and the token count."""
    if events:
        record.first_event = events[0][0]
    usage_tokens: int | None = None
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
        usage = message.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            usage_tokens = usage["completion_tokens"]
        timings = message.get("timings")
        if isinstance(timings, dict):
            record.server_timings = timings  # the last one covers the whole generation
        for choice in message.get("choices") or []:
            if isinstance(choice, dict) and _content_of(choice.get("delta") or {}):
                record.content_times.append(arrived)
                break
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
) -> RequestRecord:
    """One streamed request. Never raises for what the server or network did: the record says."""
    record = RequestRecord(index=index)
    events: list[tuple[float, bytes]] = []
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
        except OSError as error:
            record.error, record.error_detail = "connection", str(error) or type(error).__name__
            return record
        try:
            await asyncio.wait_for(_stream(conn, request, record, events), timeout_s)
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
        except (OSError, asyncio.IncompleteReadError) as error:
            conn.reusable = False
            record.error, record.error_detail = "connection", str(error) or type(error).__name__
        finally:
            pool.release(conn)
        break
    if record.error is None:
        interpret_events(record, events)
    return record
