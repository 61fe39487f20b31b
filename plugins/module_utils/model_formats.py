# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""What a served model is: its family, its format and its quantisation, and what that costs in quality.

A bake-off compares backends on one model family, each in the format it serves (GGUF for llama.cpp and
Ollama, Hugging Face weights for vLLM and SGLang), so the verdict has to say which quantisations it
compared: a 4-bit GGUF reads a quarter of the bytes of BF16 weights per token, which is much of why it
decodes faster, and it answers a little worse. Standard library only.
"""

from __future__ import annotations

import re
from typing import Any

# Perplexity added by each llama.cpp quantisation, as llama.cpp's own quantize tool lists them
# (tools/quantize/quantize.cpp, release b11312): the same model measured before and after.
LLAMACPP_PPL_SOURCE = "llama.cpp's quantize tool (b11312)"
LLAMACPP_PPL: dict[str, tuple[float, str]] = {
    "Q2_K": (3.5199, "Llama-3-8B"),
    "Q2_K_S": (3.1836, "Llama-3-8B"),
    "Q3_K_S": (1.6321, "Llama-3-8B"),
    "Q3_K_M": (0.6569, "Llama-3-8B"),
    "Q3_K_L": (0.5562, "Llama-3-8B"),
    "Q4_0": (0.4685, "Llama-3-8B"),
    "Q4_1": (0.4511, "Llama-3-8B"),
    "Q4_K_S": (0.2689, "Llama-3-8B"),
    "Q4_K_M": (0.1754, "Llama-3-8B"),
    "Q5_0": (0.1316, "Llama-3-8B"),
    "Q5_1": (0.1062, "Llama-3-8B"),
    "Q5_K_S": (0.1049, "Llama-3-8B"),
    "Q5_K_M": (0.0569, "Llama-3-8B"),
    "Q6_K": (0.0217, "Llama-3-8B"),
    "Q8_0": (0.0026, "Llama-3-8B"),
    "F16": (0.0020, "Mistral-7B"),
    "BF16": (-0.0050, "Mistral-7B"),
}
# Bits per weight of the common types, for "reads N x fewer bytes" (GGUF k-quants mix types: these are
# the tool's file sizes over the parameter count, rounded).
BITS: dict[str, float] = {
    "Q2_K": 3.0, "Q2_K_S": 3.0, "Q3_K_S": 3.4, "Q3_K_M": 3.7, "Q3_K_L": 4.0, "Q4_0": 4.3, "Q4_1": 4.8,
    "Q4_K_S": 4.4, "Q4_K_M": 4.6, "Q5_0": 5.2, "Q5_1": 5.6, "Q5_K_S": 5.2, "Q5_K_M": 5.3, "Q6_K": 6.1,
    "Q8_0": 8.0, "F16": 16.0, "BF16": 16.0, "FP16": 16.0, "F32": 32.0, "FP8": 8.0, "AWQ": 4.0,
    "GPTQ": 4.0, "INT4": 4.0, "INT8": 8.0,
}  # fmt: skip
FULL_PRECISION = {"F16", "BF16", "FP16", "F32"}
FORMAT_NAMES = {"gguf": "GGUF", "hf": "Hugging Face"}
_GGUF_TYPE = re.compile(r"(?:^|[._-])(I?Q[1-8](?:_[0-9A-Z]+)*|BF16|F16|F32)(?=[._-]|$)", re.IGNORECASE)
_HF_QUANT = re.compile(r"(?:^|[._-])(awq|gptq|fp8|int4|int8|bnb|gguf)(?=[._-]|$)", re.IGNORECASE)


def quantisation(entry: dict[str, Any]) -> tuple[str | None, str]:
    """The declared quantisation, else what the file or repository name says; and where it came from."""
    declared = entry.get("quantisation") or entry.get("quantization")
    if declared:
        return str(declared).upper(), "declared"
    fmt = (entry.get("format") or "gguf").lower()
    name = str(entry.get("file") or entry.get("url") or entry.get("hf_repo") or entry.get("name") or "")
    name = name.rsplit("/", 1)[-1]
    if fmt == "gguf":
        found = _GGUF_TYPE.findall(name.removesuffix(".gguf"))
        return (found[-1].upper(), "file name") if found else (None, "unknown")
    found = _HF_QUANT.findall(name)
    if found:
        return found[-1].upper(), "repository name"
    # Hugging Face weights without a quantisation in their name are the published 16-bit weights.
    return "BF16", "assumed (Hugging Face weights as published)"


def format_name(fmt: str | None) -> str:
    """gguf -> GGUF, hf -> Hugging Face, for reports and the dashboard; empty when unknown."""
    return FORMAT_NAMES.get(fmt or "", fmt or "")


def family(entry: dict[str, Any]) -> str:
    """The model family an animaflow_models entry belongs to: its `family`, else its own name."""
    return str(entry.get("family") or entry.get("name") or "")


def describe(entry: dict[str, Any] | None) -> dict[str, Any]:
    """family, format, quantisation (and its source) of an animaflow_models entry."""
    entry = entry or {}
    quant, source = quantisation(entry)
    return {
        "model_family": family(entry) or None,
        "model_format": (entry.get("format") or "gguf").lower() if entry else None,
        "quantisation": quant,
        "quantisation_source": source if entry else None,
    }


def quality_note(quant: str | None) -> str:
    """What a quantisation costs in answer quality, in words, with the figure where one is known."""
    if not quant:
        return "quantisation unknown: declare quantisation in animaflow_models to know what it costs"
    if quant in FULL_PRECISION:
        return f"{quant}: full-precision weights, the reference quality"
    if quant in LLAMACPP_PPL:
        added, model = LLAMACPP_PPL[quant]
        return (
            f"{quant}: about {BITS[quant]:g} bits per weight, +{added:.4f} perplexity on {model} "
            f"per {LLAMACPP_PPL_SOURCE}"
        )
    bits = BITS.get(quant)
    about = f"about {bits:g} bits per weight, " if bits else ""
    return f"{quant}: {about}quality loss not measured here: check the publisher's evaluation"


def bytes_ratio(low: str | None, high: str | None) -> float | None:
    """How many times fewer bytes per weight `low` reads than `high` (None when either is unknown)."""
    if low not in BITS or high not in BITS:
        return None
    return BITS[high] / BITS[low]
