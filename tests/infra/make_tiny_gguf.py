#!/usr/bin/env python3
"""Write a tiny random-weight llama model as GGUF, for tests that need a model llama-server loads fast.

2 layers, n_embd 64, 4 heads, n_ff 128, context 256, F16 weights (F32 norms), a byte-level BPE
vocabulary with a few hundred merges and a ChatML template. It answers with gibberish; pass
"ignore_eos": true for fixed lengths. The output is byte-for-byte reproducible (fixed seed, sorted
vocabulary), so its sha256 can be written into inventories.

    python tests/infra/make_tiny_gguf.py OUT.gguf
"""

from __future__ import annotations

import argparse
import collections
import itertools
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, TokenType

N_LAYER = 2
N_EMBD = 64
N_HEAD = 4
N_FF = 128
N_CTX = 256
N_MERGES = 400
SEED = 20261129

# A few sentences to learn merges from: enough for common English pairs, nothing more.
CORPUS = (
    "The render farm serves language models to the artists of the studio. "
    "Every node runs one backend at a time and answers through the OpenAI API. "
    "What is the capital of France? The capital of France is Paris. "
    "Hello, how are you today? I am fine, thank you, and you? "
    "Lighting, shading, compositing and animation are the work of the studio."
)

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (what llama.cpp's BPE expects)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def learn_merges(text: str, count: int) -> list[tuple[str, str]]:
    table = byte_to_unicode()
    words = collections.Counter()
    for i, word in enumerate(text.split(" ")):
        raw = (" " + word if i else word).encode()
        words[tuple(table[b] for b in raw)] += 1
    merges: list[tuple[str, str]] = []
    for _ in range(count):
        pairs: collections.Counter = collections.Counter()
        for word, freq in words.items():
            for a, b in itertools.pairwise(word):
                pairs[(a, b)] += freq
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])
        merges.append(best)
        merged = collections.Counter()
        for word, freq in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += freq
        words = merged
    return merges


def build_vocab() -> tuple[list[str], list[int], list[str]]:
    table = byte_to_unicode()
    tokens = [table[b] for b in range(256)]
    merges = learn_merges(CORPUS, N_MERGES)
    seen = set(tokens)
    for a, b in merges:
        if a + b not in seen:
            tokens.append(a + b)
            seen.add(a + b)
    types = [TokenType.NORMAL] * len(tokens)
    for special in SPECIALS:
        tokens.append(special)
        types.append(TokenType.CONTROL)
    return tokens, types, [f"{a} {b}" for a, b in merges]


def write(path: Path, seed: int = SEED) -> None:
    rng = np.random.default_rng(seed)
    tokens, types, merges = build_vocab()
    n_vocab = len(tokens)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float16)

    def norm() -> np.ndarray:
        return np.ones(N_EMBD, dtype=np.float32)

    writer = GGUFWriter(str(path), "llama")
    writer.add_name("animaflow-tiny-test")
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(1)  # mostly F16
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokens.index("<|endoftext|>"))
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    # Dimension 0 of every embedding is a large constant that the small layers barely change, so the
    # output layer can rule tokens out through that dimension alone: control tokens and bytes that
    # are not printable ASCII never come out (llama-server rejects invalid UTF-8 in chat parsing), and
    # neither does the end-of-sequence token, so every answer has exactly max_tokens tokens.
    embd = weight(n_vocab, N_EMBD)
    embd[:, 0] = 1.0
    table = {ch: b for b, ch in byte_to_unicode().items()}
    banned = np.array([t in SPECIALS or not all(0x20 <= table[c] < 0x7F for c in t) for t in tokens])
    output = weight(n_vocab, N_EMBD)
    output[:, 0] = np.where(banned, -10.0, 0.0)
    writer.add_tensor("token_embd.weight", embd)
    for i in range(N_LAYER):
        blk = f"blk.{i}"
        writer.add_tensor(f"{blk}.attn_norm.weight", norm())
        writer.add_tensor(f"{blk}.attn_q.weight", weight(N_EMBD, N_EMBD))
        writer.add_tensor(f"{blk}.attn_k.weight", weight(N_EMBD, N_EMBD))
        writer.add_tensor(f"{blk}.attn_v.weight", weight(N_EMBD, N_EMBD))
        writer.add_tensor(f"{blk}.attn_output.weight", weight(N_EMBD, N_EMBD))
        writer.add_tensor(f"{blk}.ffn_norm.weight", norm())
        writer.add_tensor(f"{blk}.ffn_gate.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"{blk}.ffn_up.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"{blk}.ffn_down.weight", weight(N_EMBD, N_FF))
    writer.add_tensor("output_norm.weight", norm())
    writer.add_tensor("output.weight", output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    # Another seed gives another model of the same shape: tests that give nodes different models.
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".tmp")
    write(tmp, args.seed)
    tmp.replace(args.output)
    print(f"{args.output} {args.output.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
