"""An assistant that keeps asking the studio gateway, with the official openai client and its settings
unchanged, while the farm changes under it. No retries of its own (max_retries=0): every failure it
counts is one the gateway let through. Runs until STOP_FILE exists (or --seconds pass), then writes
{ok, failed, errors: [{at, error}], first_at, last_at} to --out; --progress holds the running counts.

    client_loop.py --base-url URL --key KEY --model NAME --out FILE --progress FILE --stop-file FILE
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import openai
from openai import OpenAI


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("--base-url", "--key", "--model", "--out", "--progress", "--stop-file"):
        parser.add_argument(name, required=True)
    parser.add_argument("--seconds", type=float, default=300)
    args = parser.parse_args()
    client = OpenAI(base_url=args.base_url, api_key=args.key, max_retries=0, timeout=30)
    ok, errors = 0, []
    started = time.time()
    while not Path(args.stop_file).exists() and time.time() - started < args.seconds:
        at = time.time()
        try:
            answer = client.chat.completions.create(
                model=args.model,
                messages=[{"role": "user", "content": f"Frame {ok + len(errors)}?"}],
                max_tokens=4,
            )
            ok += bool(answer.choices)
        except openai.APIError as error:
            errors.append({"at": at, "error": f"{type(error).__name__}: {error}"[:300]})
        Path(args.progress).write_text(json.dumps({"ok": ok, "failed": len(errors)}))
    Path(args.out).write_text(
        json.dumps(
            {"ok": ok, "failed": len(errors), "errors": errors, "first_at": started, "last_at": time.time()}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
