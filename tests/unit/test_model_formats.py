"""What a served model is (family, format, quantisation) and the model_family / family_models filters."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.animaflow.inference.plugins.filter.model_family import FilterModule
from ansible_collections.animaflow.inference.plugins.module_utils.model_formats import (
    bytes_ratio,
    describe,
    quality_note,
    quantisation,
)

CATALOGUE = [
    {"name": "qwen-q4", "family": "qwen2.5-7b", "file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "format": "gguf"},
    {
        "name": "qwen-q8",
        "family": "qwen2.5-7b",
        "url": "https://mirror.invalid/m/qwen2.5-7b-instruct-q8_0.gguf",
    },
    {"name": "qwen", "family": "qwen2.5-7b", "hf_repo": "Qwen/Qwen2.5-7B-Instruct", "format": "hf"},
    {"name": "qwen-awq", "family": "qwen2.5-7b", "hf_repo": "Qwen/Qwen2.5-7B-Instruct-AWQ", "format": "hf"},
    {"name": "smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf", "format": "gguf"},
    {"name": "tiny", "file": "animaflow-tiny.gguf", "format": "gguf"},
    {"name": "declared", "file": "model.gguf", "quantisation": "iq4_xs"},
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("qwen-q4", ("Q4_K_M", "file name")),
        ("qwen-q8", ("Q8_0", "file name")),  # from the URL's file name, lower case
        ("qwen", ("BF16", "assumed (Hugging Face weights as published)")),
        ("qwen-awq", ("AWQ", "repository name")),
        ("smollm2", ("Q4_1", "file name")),
        ("tiny", (None, "unknown")),
        ("declared", ("IQ4_XS", "declared")),
    ],
)
def test_quantisation_is_declared_or_read_from_the_name(name, expected) -> None:
    assert quantisation(next(entry for entry in CATALOGUE if entry["name"] == name)) == expected


def test_describe_names_family_format_and_quantisation() -> None:
    assert describe(CATALOGUE[0]) == {
        "model_family": "qwen2.5-7b",
        "model_format": "gguf",
        "quantisation": "Q4_K_M",
        "quantisation_source": "file name",
    }
    assert describe(CATALOGUE[4])["model_family"] == "smollm2"  # no family: its own name
    assert describe(None) == {
        "model_family": None, "model_format": None, "quantisation": None, "quantisation_source": None
    }  # fmt: skip


def test_quality_notes_give_the_llamacpp_figure_or_say_there_is_none() -> None:
    assert quality_note("Q4_K_M") == (
        "Q4_K_M: about 4.6 bits per weight, +0.1754 perplexity on Llama-3-8B per llama.cpp's quantize tool (b11312)"
    )
    assert quality_note("BF16").startswith("BF16: full-precision")
    assert "not measured here" in quality_note("AWQ") and "about 4 bits" in quality_note("AWQ")
    assert "declare quantisation" in quality_note(None)
    assert bytes_ratio("Q4_K_M", "BF16") == pytest.approx(16 / 4.6)
    assert bytes_ratio("Q4_K_M", "mystery") is None


def test_family_filters() -> None:
    filters = FilterModule().filters()
    assert filters["model_family"]("qwen-q4", CATALOGUE) == "qwen2.5-7b"
    assert filters["model_family"]("not-in-the-catalogue", CATALOGUE) == "not-in-the-catalogue"
    assert filters["family_models"](CATALOGUE, "qwen2.5-7b", "hf") == ["qwen", "qwen-awq"]
    # An entry without a format is a GGUF, as the roles read it.
    assert filters["family_models"](CATALOGUE, "qwen2.5-7b", "gguf") == ["qwen-q4", "qwen-q8"]
    with pytest.raises(AnsibleFilterError, match="animaflow_models must be a list"):
        filters["model_family"]("x", {"name": "x"})
