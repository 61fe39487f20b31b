#!/usr/bin/env python3
# TEST STAND-IN: an OpenAI-compatible streaming server with a known schedule. It is not a model
# server and generates no text worth reading.
#
# It exists so that the benchmark client can be checked against a server whose timings are known
# exactly: POST /v1/chat/completions (stream=true) answers with
#   a role-only chunk (delta {"role": "assistant", "content": ""}) at --ttfr-ms,
#   the first content chunk at --ttft-ms (+ --ttft-per-active-ms for each other request in flight),
#   further content chunks every --interval-ms, each carrying --tokens-per-chunk tokens (the first
#   --reasoning-tokens of them as delta.reasoning_content, the rest as delta.content),
#   a finish chunk, a usage chunk (unless --no-usage; prompt_tokens = the prompt's words, and
#   prompt_tokens_details.cached_tokens = --cached-tokens when given) and data: [DONE], all timed
#   from the moment the request body was read. max_tokens sets the token count (ignore_eos is assumed).
# Faults, by arrival order n = 1, 2, ... (per worker): --error-every K answers every Kth request with
# HTTP 500, --stall-every K sends the role chunk then nothing for --stall-s, --drop-every K closes the
# connection after the first content chunk. --api-key makes a Bearer token mandatory (401).
# --close-after-stream closes the connection after each streamed response although the headers
# do not say so, as llama-server does.
#
# Cheap enough to offer 50,000 chunks/s: one timer per process serves every stream whose chunk is
# due, chunks are formatted once per request, and all of a stream's chunks due at a wake-up go out in
# one write (--write-every-ms sets the least time between two writes to one stream, so at short
# intervals several chunks share a write). --workers N forks N processes before any starts its event
# loop, each listening on the port with SO_REUSEPORT.
#
# GET /_seen returns what the requests asked for (prompts, max_tokens, ignore_eos, stream_options),
# in arrival order, and when the chunks were really written: first_content_ms and last_content_ms
# (ms after the request was read); role_at, first_content_at, last_content_at and done_at as
# time.perf_counter() taken after the write, role_from, first_content_from, last_content_from and
# done_from taken just before it, so the bytes left between *_from and *_at even when the process was
# preempted around the write (perf_counter is CLOCK_MONOTONIC, shared by every process on Linux).
# buffered_writes counts writes the socket did not take at once (then the bytes left later). A
# request's entry appears once its response is over; the workers share a file of them.
# It prints "listening http://HOST:PORT" once bound. Loopback only; standard library only.
from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import math
import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _http_chunk(data: dict[str, Any]) -> bytes:
    event = f"data: {json.dumps(data)}\n\n".encode()
    return f"{len(event):x}\r\n".encode() + event + b"\r\n"


_DONE = b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"


class Pump:
    """One timer for every stream of this process: at each wake-up, write what is due."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.heap: list[tuple[float, int, Stream]] = []
        self.count = 0
        self.handle: asyncio.TimerHandle | None = None
        self.handle_at = math.inf

    def schedule(self, when: float, stream: Stream) -> None:
        heapq.heappush(self.heap, (when, self.count, stream))
        self.count += 1
        if when < self.handle_at:
            self._arm(when)

    def _arm(self, when: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.handle_at = when
        self.handle = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self.handle, self.handle_at = None, math.inf
        now = self.loop.time()
        heap = self.heap
        while heap and heap[0][0] <= now:
            stream = heapq.heappop(heap)[2]
            following = stream.advance(now)
            if following is not None:
                heapq.heappush(heap, (following, self.count, stream))
                self.count += 1
        if heap:
            self._arm(heap[0][0])


class Stream:
    """One streamed response: what is due when, written by the pump."""

    def __init__(self, server: ScheduledServer, transport: asyncio.Transport, payload: dict[str, Any], entry: dict[str, Any], received: float, arrival: int) -> None:  # fmt: skip
        options = server.options
        self.server, self.transport, self.entry, self.received = server, transport, entry, received
        self.finished = asyncio.get_running_loop().create_future()
        self.tokens = int(payload.get("max_tokens") or 16)
        self.per_chunk = options.tokens_per_chunk
        self.chunks = math.ceil(self.tokens / self.per_chunk)
        self.ttfr_s = options.ttfr_ms / 1000.0
        self.ttft_s = (options.ttft_ms + options.ttft_per_active_ms * (server.active - 1)) / 1000.0
        self.interval_s = options.interval_ms / 1000.0
        self.gap_s = options.write_every_ms / 1000.0
        self.stall = server.every(options.stall_every)
        self.drop = server.every(options.drop_every)
        self.role_sent = False
        self.k = 0  # the next content chunk
        base = {
            "id": f"chatcmpl-{arrival}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": payload.get("model"),
        }
        self.base = base
        self.role = _http_chunk(
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
        )
        self.reasoning_chunks = math.ceil(min(options.reasoning_tokens, self.tokens) / self.per_chunk)
        self.answer = self._content(self.per_chunk, "content")
        self.thought = self._content(self.per_chunk, "reasoning_content")
        self.tail = self._tail(options, entry)
        entry["tokens"] = self.tokens
        entry["buffered_writes"] = 0

    def _content(self, count: int, key: str) -> bytes:
        return _http_chunk({**self.base, "choices": [{"index": 0, "delta": {key: "tok " * count}}]})

    def _tail(self, options: argparse.Namespace, entry: dict[str, Any]) -> bytes:
        tail = _http_chunk({**self.base, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
        if not options.no_usage:
            prompt_tokens = len(entry["prompt"].split())
            usage: dict[str, Any] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": self.tokens,
                "total_tokens": prompt_tokens + self.tokens,
            }
            if options.cached_tokens is not None:
                usage["prompt_tokens_details"] = {"cached_tokens": options.cached_tokens}
            tail += _http_chunk({**self.base, "choices": [], "usage": usage})
        return tail + _DONE

    def _chunk(self, k: int) -> bytes:
        last = k == self.chunks - 1 and self.tokens % self.per_chunk
        key = "reasoning_content" if k < self.reasoning_chunks else "content"
        if last:
            return self._content(self.tokens - k * self.per_chunk, key)
        return self.thought if k < self.reasoning_chunks else self.answer

    def due(self, k: int) -> float:
        return self.received + self.ttft_s + k * self.interval_s

    def advance(self, now: float) -> float | None:
        """Write everything due by `now` in one write; the next deadline, None when over."""
        if self.transport.is_closing():
            self.finish(False)
            return None
        parts: list[bytes] = []
        role = first = last = False
        if not self.role_sent and self.received + self.ttfr_s <= now:
            parts.append(self.role)
            self.role_sent = role = True
        if self.role_sent and not self.stall:
            first = self.k == 0
            while self.k < self.chunks and self.due(self.k) <= now:
                parts.append(self._chunk(self.k))
                self.k += 1
                if self.drop:
                    break  # the connection goes right after the first content chunk, whatever is due
            first = first and self.k > 0
            last = self.k == self.chunks
            if last:
                parts.append(self.tail)
        if parts:
            self._write(b"".join(parts) if len(parts) > 1 else parts[0], role, first, last)
        if role and self.stall:
            self.server.loop.call_later(self.server.options.stall_s, self.finish, False)
            return None
        if first and self.drop:
            self.transport.abort()
            self.finish(False)
            return None
        if last:
            self.finish(not self.server.options.close_after_stream)
            return None
        following = self.received + self.ttfr_s if not self.role_sent else self.due(self.k)
        return max(following, now + self.gap_s)

    def _write(self, data: bytes, role: bool, first: bool, last: bool) -> None:
        entry = self.entry
        started = time.perf_counter()
        self.transport.write(data)
        written = time.perf_counter()
        after_ms = (self.server.loop.time() - self.received) * 1000.0
        if self.transport.get_write_buffer_size():
            entry["buffered_writes"] += 1
        if role:
            entry["role_from"], entry["role_at"] = started, written
        if first:
            entry["first_content_from"], entry["first_content_at"] = started, written
            entry["first_content_ms"] = after_ms
        if last:
            entry["last_content_from"], entry["last_content_at"] = started, written
            entry["last_content_ms"] = after_ms
            entry["done_from"], entry["done_at"] = started, written

    def finish(self, keep_alive: bool) -> None:
        if not self.finished.done():
            self.server.active -= 1
            self.server.record(self.entry)
            self.finished.set_result(keep_alive)


class ScheduledServer:
    def __init__(self, options: argparse.Namespace, seen_path: Path) -> None:
        self.options = options
        self.seen_path = seen_path
        self.arrivals = 0
        self.active = 0
        self.loop = asyncio.get_running_loop()
        self.pump = Pump()

    def record(self, entry: dict[str, Any]) -> None:
        # One write per line with O_APPEND: lines from several workers never interleave.
        line = (json.dumps(entry) + "\n").encode()
        fd = os.open(self.seen_path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def seen(self) -> list[dict[str, Any]]:
        lines = self.seen_path.read_text(encoding="utf-8").splitlines()
        entries = [json.loads(line) for line in lines if line.strip()]
        return sorted(entries, key=lambda entry: entry["arrived"])

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while await self.one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away (a timeout on its side): nothing to answer
        finally:
            writer.close()

    def every(self, k: int) -> bool:
        return k > 0 and self.arrivals % k == 0

    async def one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        request_line = await reader.readline()
        if not request_line:
            return False
        method, target, _ = request_line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        received = self.loop.time()
        arrived = time.perf_counter()
        if method == "GET" and target == "/_seen":
            await self.send_json(writer, 200, {"requests": self.seen()})
            return True
        if method != "POST" or target != "/v1/chat/completions":
            await self.send_json(writer, 404, {"error": {"message": f"no route {method} {target}"}})
            return True
        if self.options.api_key and headers.get("authorization") != f"Bearer {self.options.api_key}":
            await self.send_json(writer, 401, {"error": {"message": "invalid api key"}})
            return True
        payload = json.loads(body)
        self.arrivals += 1
        entry: dict[str, Any] = {
            "prompt": payload["messages"][-1]["content"],
            "max_tokens": payload.get("max_tokens"),
            "ignore_eos": payload.get("ignore_eos"),
            "stream_options": payload.get("stream_options"),
            "arrived": arrived,
            "worker": os.getpid(),
        }
        if self.every(self.options.error_every):
            self.record(entry)
            await self.send_json(writer, 500, {"error": {"message": "injected failure"}})
            return True
        self.active += 1
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        stream = Stream(self, writer.transport, payload, entry, received, self.arrivals)
        self.pump.schedule(received + min(stream.ttfr_s, stream.ttft_s), stream)
        keep_alive = await stream.finished
        if keep_alive:
            await writer.drain()
        return keep_alive

    async def send_json(self, writer: asyncio.StreamWriter, status: int, data: dict[str, Any]) -> None:
        body = json.dumps(data).encode()
        head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Scheduled OpenAI-compatible SSE server (test stand-in)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ttfr-ms", type=float, default=20.0)
    parser.add_argument("--ttft-ms", type=float, default=80.0)
    parser.add_argument("--ttft-per-active-ms", type=float, default=0.0)
    parser.add_argument("--interval-ms", type=float, default=40.0)
    parser.add_argument("--tokens-per-chunk", type=int, default=4)
    parser.add_argument("--reasoning-tokens", type=int, default=0)
    parser.add_argument("--cached-tokens", type=int)
    parser.add_argument("--write-every-ms", type=float, default=0.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--error-every", type=int, default=0)
    parser.add_argument("--stall-every", type=int, default=0)
    parser.add_argument("--stall-s", type=float, default=30.0)
    parser.add_argument("--drop-every", type=int, default=0)
    parser.add_argument("--no-usage", action="store_true")
    parser.add_argument("--close-after-stream", action="store_true")
    parser.add_argument("--api-key")
    options = parser.parse_args(argv)
    if not options.host.startswith("127."):
        parser.error("a test stand-in binds loopback only")
    if options.workers < 1 or options.tokens_per_chunk < 1:
        parser.error("--workers and --tokens-per-chunk must be >= 1")
    return options


async def serve(options: argparse.Namespace, seen_path: Path, life_fd: int | None = None, ready_fd: int | None = None) -> None:  # fmt: skip
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    if life_fd is not None:
        loop.add_reader(life_fd, stop.set)  # the main process went away (EOF) or said stop
    server = await asyncio.start_server(
        ScheduledServer(options, seen_path).handle,
        options.host,
        options.port,
        backlog=4096,
        reuse_port=options.workers > 1,
    )
    if ready_fd is None:
        port = server.sockets[0].getsockname()[1]
        print(f"listening http://{options.host}:{port}", flush=True)
    else:
        os.write(ready_fd, b"1")
        os.close(ready_fd)
    async with server:
        await stop.wait()


def serve_workers(options: argparse.Namespace, seen_path: Path) -> None:
    """Fork the workers before any event loop exists; they share the port through SO_REUSEPORT."""
    reserve = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reserve.bind((options.host, options.port))
    options.port = reserve.getsockname()[1]
    life_read, life_write = os.pipe()
    ready_read, ready_write = os.pipe()
    pids = []
    for _ in range(options.workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(life_write)
                os.close(ready_read)
                reserve.close()
                asyncio.run(serve(options, seen_path, life_read, ready_write))
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        pids.append(pid)
    os.close(life_read)
    os.close(ready_write)
    try:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        started = 0
        while started < options.workers:
            got = os.read(ready_read, options.workers)
            if not got:
                raise SystemExit("a worker died before it listened")
            started += len(got)
        reserve.close()
        print(f"listening http://{options.host}:{options.port}", flush=True)
        os.waitpid(pids[0], 0)  # until a signal ends this process, or a worker dies
    finally:
        os.close(life_write)  # every worker sees EOF and stops
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def main() -> None:
    options = parse_args()
    with tempfile.TemporaryDirectory(prefix="scheduled-sse-") as directory:
        seen_path = Path(directory) / "seen.jsonl"
        seen_path.touch()
        if options.workers == 1:
            asyncio.run(serve(options, seen_path))
        else:
            serve_workers(options, seen_path)


if __name__ == "__main__":
    main()
