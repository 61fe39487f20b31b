#!/usr/bin/env python3
# TEST STAND-IN: an OpenAI-compatible streaming server with a known schedule. It is not a model
# server and generates no text worth reading.
#
# It exists so that the benchmark client can be checked against a server whose timings are known
# exactly: POST /v1/chat/completions (stream=true) answers with
#   a role-only chunk (delta {"role": "assistant", "content": ""}) at --ttfr-ms,
#   the first content chunk at --ttft-ms (+ --ttft-per-active-ms for each other request in flight),
#   further content chunks every --interval-ms, each carrying --tokens-per-chunk tokens,
#   a finish chunk, a usage chunk (unless --no-usage) and data: [DONE], all timed from the moment
# the request body was read. max_tokens sets the token count (ignore_eos is assumed).
# Faults, by arrival order n = 1, 2, ...: --error-every K answers every Kth request with HTTP 500,
# --stall-every K sends the role chunk then nothing for --stall-s, --drop-every K closes the
# connection after the first content chunk. --api-key makes a Bearer token mandatory (401).
# --close-after-stream closes the connection after each streamed response although the headers
# do not say so, as llama-server does.
# GET /_seen returns what the requests asked for (prompts, max_tokens, ignore_eos, stream_options)
# and when the first and last content chunks were really written (ms after the request was read;
# role_at, first_content_at, last_content_at and done_at also as time.perf_counter(), taken after
# the write; role_from, first_content_from, last_content_from and done_from are taken just before it,
# so the bytes left between *_from and *_at even when the process was preempted around the write).
# It prints "listening http://127.0.0.1:PORT" once bound. Loopback only; standard library only.
from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from typing import Any


class ScheduledServer:
    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.arrivals = 0
        self.active = 0
        self.seen: list[dict[str, Any]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self.one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away (a timeout on its side): nothing to answer
        finally:
            writer.close()

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
        received = asyncio.get_running_loop().time()
        if method == "GET" and target == "/_seen":
            await self.send_json(writer, 200, {"requests": self.seen})
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
        }
        self.seen.append(entry)
        if self._every(self.options.error_every):
            await self.send_json(writer, 500, {"error": {"message": "injected failure"}})
            return True
        self.active += 1
        try:
            return await self.stream(writer, payload, received, self.arrivals, entry)
        finally:
            self.active -= 1

    def _every(self, k: int) -> bool:
        return k > 0 and self.arrivals % k == 0

    async def send_json(self, writer: asyncio.StreamWriter, status: int, data: dict[str, Any]) -> None:
        body = json.dumps(data).encode()
        head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()

    async def stream(
        self,
        writer: asyncio.StreamWriter,
        payload: dict[str, Any],
        received: float,
        arrival: int,
        entry: dict[str, Any],
    ) -> bool:
        options = self.options
        loop = asyncio.get_running_loop()
        tokens = int(payload.get("max_tokens") or 16)
        per_chunk = options.tokens_per_chunk
        chunks = math.ceil(tokens / per_chunk)
        ttft_s = (options.ttft_ms + options.ttft_per_active_ms * (self.active - 1)) / 1000.0

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            data = {
                "id": f"chatcmpl-{arrival}",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": payload.get("model"),
                "choices": choices,
                **extra,
            }
            event = f"data: {json.dumps(data)}\n\n".encode()
            return f"{len(event):x}\r\n".encode() + event + b"\r\n"

        async def at(offset_s: float, data: bytes) -> float:
            # Absolute deadlines from the arrival, so one late wake-up does not shift the rest.
            await asyncio.sleep(max(0.0, received + offset_s - loop.time()))
            started = time.perf_counter()
            writer.write(data)
            await writer.drain()
            return started

        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        entry["role_from"] = await at(
            options.ttfr_ms / 1000.0, chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
        )
        entry["role_at"] = time.perf_counter()
        if self._stall(arrival):
            await asyncio.sleep(options.stall_s)
            return False
        for k in range(chunks):
            count = min(per_chunk, tokens - k * per_chunk)
            text = "tok " * count
            written_from = await at(
                ttft_s + k * options.interval_ms / 1000.0, chunk([{"index": 0, "delta": {"content": text}}])
            )
            # When the write really happened: a loaded machine wakes the server late, and the
            # accuracy benchmark must not blame the client for that.
            entry["first_content_ms" if k == 0 else "last_content_ms"] = (loop.time() - received) * 1000.0
            # perf_counter is CLOCK_MONOTONIC, shared by every process on Linux: a client on this
            # machine can subtract its own stamps from these.
            entry["first_content_at" if k == 0 else "last_content_at"] = time.perf_counter()
            entry["first_content_from" if k == 0 else "last_content_from"] = written_from
            if k == 0 and options.drop_every > 0 and arrival % options.drop_every == 0:
                writer.transport.abort()
                return False
        entry["done_from"] = time.perf_counter()
        writer.write(chunk([{"index": 0, "delta": {}, "finish_reason": "length"}]))
        if not options.no_usage:
            usage = {"prompt_tokens": len(self.seen[-1]["prompt"].split()), "completion_tokens": tokens}
            usage["total_tokens"] = usage["prompt_tokens"] + tokens
            writer.write(chunk([], usage=usage))
        event = b"data: [DONE]\n\n"
        writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n0\r\n\r\n")
        await writer.drain()
        entry["done_at"] = time.perf_counter()
        return not options.close_after_stream

    def _stall(self, arrival: int) -> bool:
        k = self.options.stall_every
        return k > 0 and arrival % k == 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Scheduled OpenAI-compatible SSE server (test stand-in)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ttfr-ms", type=float, default=20.0)
    parser.add_argument("--ttft-ms", type=float, default=80.0)
    parser.add_argument("--ttft-per-active-ms", type=float, default=0.0)
    parser.add_argument("--interval-ms", type=float, default=40.0)
    parser.add_argument("--tokens-per-chunk", type=int, default=4)
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
    return options


async def serve(options: argparse.Namespace) -> None:
    server = await asyncio.start_server(
        ScheduledServer(options).handle, options.host, options.port, backlog=1024
    )
    port = server.sockets[0].getsockname()[1]
    print(f"listening http://{options.host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(parse_args()))
