"""An assistant that keeps asking the studio gateway, with the official openai client and its settings
unchanged, while the farm changes under it. No retries of its own (max_retries=0): every failure it
counts is one the gateway let through. Runs until STOP_FILE exists (or --seconds pass), then writes
{ok, failed, by_node, errors: [{at, error}], first_at, last_at} to --out; --progress holds the running
counts. by_node counts the answers per node, from the deployment id the gateway names in its
x-litellm-model-id header (the gateway role makes it the node's inventory name).

    client_loop.py --base-url URL --key KEY --model NAME --out FILE --progress FILE --stop-file FILE [--ca PEM]
"""

from __future__ import annotations

import argparse
import json
import ssl
import time
from pathlib import Path

import httpx
import openai
from openai import OpenAI


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("--base-url", "--key", "--model", "--out", "--progress", "--stop-file"):
        parser.add_argument(name, required=True)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--ca", help="the CA that issued the gateway's certificate (https)")
    args = parser.parse_args()
    client = OpenAI(
        base_url=args.base_url,
        api_key=args.key,
        max_retries=0,
        timeout=30,
        http_client=httpx.Client(verify=ssl.create_default_context(cafile=args.ca)) if args.ca else None,
    )
    ok, errors, by_node = 0, [], {}
    started = time.time()
    while not Path(args.stop_file).exists() and time.time() - started < args.seconds:
        at = time.time()
        try:
            raw = client.chat.completions.with_raw_response.create(
                model=args.model,
                messages=[{"role": "user", "content": f"Frame {ok + len(errors)}?"}],
                max_tokens=4,
            )
            if raw.parse().choices:
                ok += 1
                node = raw.headers.get("x-litellm-model-id", "?")
                by_node[node] = by_node.get(node, 0) + 1
        except openai.APIError as error:
            errors.append({"at": at, "error": f"{type(error).__name__}: {error}"[:300]})
        # Whole or not at all: the side effect reads it while this loop runs.
        partial = Path(args.progress + ".part")
        partial.write_text(json.dumps({"ok": ok, "failed": len(errors), "by_node": by_node}))
        partial.replace(args.progress)
    result = {"ok": ok, "failed": len(errors), "by_node": by_node, "errors": errors}
    Path(args.out).write_text(json.dumps({**result, "first_at": started, "last_at": time.time()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
