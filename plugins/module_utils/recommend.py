# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Which backend a node should run: hardware eligibility, the product brief's prior, measurements.

Pure functions over plain dicts (gpu facts, llm_benchmark results, the studio profile, the backends
catalogue), shared by the recommend_backend and runnable_backends filters and the control plane.
Standard library only.

Scoring, 0-100: the prior gives the eligible backends 40, 30, 20, 10 points in its order. When at
least two eligible backends were benchmarked on the node, measurements add up to 60 more: 40 times
the backend's goodput over the best goodput measured, and 20 times its output throughput at the
studio's expected concurrency over the best. Measurements therefore decide whenever they disagree
clearly with the prior, and the prior breaks near-ties and ranks what was not measured.
"""

from __future__ import annotations

from typing import Any

# At most this many people using the models at once is a "small studio" in the product brief.
SMALL_STUDIO_MAX_CONCURRENT_USERS = 4
PRIOR_POINTS = (40, 30, 20, 10)
GOODPUT_POINTS = 40
THROUGHPUT_POINTS = 20


def _version(text: Any) -> tuple[int, ...]:
    parts = []
    for piece in str(text).split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def eligibility(name: str, entry: dict[str, Any], gpu: dict[str, Any]) -> tuple[bool, list[str]]:
    """Can this backend use what the node has? The reasons say why not, or what was assumed."""
    title = entry.get("title", name)
    accelerator = gpu.get("accelerator") or "cpu"
    accelerators = list(entry.get("accelerators") or [])
    if accelerator not in accelerators:
        return False, [f"{title} cannot run on {accelerator}; it needs one of {', '.join(accelerators)}."]
    if accelerator != "cuda":
        return True, [f"{title} supports {accelerator}."]
    reasons = []
    needed = entry.get("min_compute_capability")
    capabilities = [g["compute_capability"] for g in gpu.get("gpus") or [] if g.get("compute_capability")]
    if needed and capabilities:
        lowest = min(capabilities, key=_version)
        if _version(lowest) < _version(needed):
            return False, [f"{title} needs compute capability {needed}; this node has a GPU at {lowest}."]
        reasons.append(f"{title} needs compute capability {needed}; the node's lowest is {lowest}.")
    elif needed:
        reasons.append(f"The GPUs' compute capability is unknown; assumed to meet {title}'s {needed}.")
    driver, needed_driver = gpu.get("driver_version"), entry.get("min_driver_version")
    if needed_driver and driver and _version(driver) < _version(needed_driver):
        return False, [f"{title} needs NVIDIA driver {needed_driver} or newer; the node has {driver}."]
    return True, reasons or [f"{title} supports cuda."]


def _inputs(gpu_facts: dict[str, Any] | None, catalogue: dict[str, Any]) -> tuple[dict, dict]:
    # A whole ansible_facts dict and the whole catalogue file are accepted too.
    gpu = dict(gpu_facts or {})
    return gpu.get("animaflow_gpu", gpu), catalogue.get("animaflow_backends", catalogue)


def runnable(gpu_facts: dict[str, Any] | None, catalogue: dict[str, Any]) -> list[str]:
    """The catalogue's backends this node can run (eligibility above), in catalogue order."""
    gpu, backends = _inputs(gpu_facts, catalogue)
    return [name for name, entry in backends.items() if eligibility(name, entry, gpu)[0]]


def expected_concurrency(studio: dict[str, Any]) -> int:
    # Without a concurrent_users figure, assume every artist may ask at once (the safe side).
    return max(1, int(studio.get("concurrent_users") or studio.get("artists") or 1))


def prior_order(gpu: dict[str, Any], studio: dict[str, Any]) -> tuple[list[str], str]:
    """The product brief's preference for this hardware and studio, best first, with its reason."""
    users = expected_concurrency(studio)
    small = users <= SMALL_STUDIO_MAX_CONCURRENT_USERS
    size = f"{users} concurrent user{'s' if users != 1 else ''}"
    accelerator, vendor = gpu.get("accelerator") or "cpu", gpu.get("vendor") or "none"
    if accelerator == "cuda":
        if studio.get("workload") == "pipeline":
            return ["sglang", "vllm", "llamacpp", "ollama"], (
                "NVIDIA GPU and a structured pipeline workload: SGLang first, then vLLM."
            )
        if small:
            return ["ollama", "llamacpp", "vllm", "sglang"], (
                f"NVIDIA GPU and a small studio ({size}): Ollama is the simplest to run."
            )
        return ["vllm", "sglang", "llamacpp", "ollama"], (
            f"NVIDIA GPU and {size}: vLLM or SGLang batch many requests best."
        )
    where = "AMD GPU" if vendor == "amd" else "No usable GPU"
    if small:
        return ["ollama", "llamacpp"], f"{where} and a small studio ({size}): Ollama, then llama.cpp."
    return ["llamacpp", "ollama"], f"{where} and {size}: llama.cpp's parallel slots, then Ollama."


def _by_backend(benchmark_results: Any) -> dict[str, dict[str, Any]]:
    """Accepts {backend: results} or a list of results (target.backend names each); last one wins."""
    if isinstance(benchmark_results, dict):
        return {name: results for name, results in benchmark_results.items() if results}
    found: dict[str, dict[str, Any]] = {}
    for results in benchmark_results or []:
        name = (results.get("target") or {}).get("backend")
        if name:
            found[name] = results
    return found


def measured_figures(results: dict[str, Any], users: int) -> dict[str, Any]:
    """Goodput, and throughput at the tested level nearest the studio's concurrency from below."""
    levels = sorted(results.get("levels") or [], key=lambda level: level["concurrency"])
    below = [level for level in levels if level["concurrency"] <= users]
    level = below[-1] if below else (levels[0] if levels else None)
    goodput = results.get("goodput") or {}
    return {
        "goodput": goodput.get("concurrency") or 0,
        "slo_ttft_ms": goodput.get("slo_ttft_ms"),
        "slo_tpot_ms": goodput.get("slo_tpot_ms"),
        "throughput": (level or {}).get("output_tokens_per_s") or 0.0,
        "at_concurrency": (level or {}).get("concurrency"),
    }


def _describe(name: str, figures: dict[str, Any]) -> str:
    return (
        f"{name} goodput {figures['goodput']} concurrent requests "
        f"(p95 TTFT <= {figures['slo_ttft_ms']} ms, p95 TPOT <= {figures['slo_tpot_ms']} ms) and "
        f"{figures['throughput']:.1f} output tokens/s at concurrency {figures['at_concurrency']}"
    )


def recommend(
    gpu_facts: dict[str, Any] | None,
    benchmark_results: Any,
    studio_profile: dict[str, Any] | None,
    catalogue: dict[str, Any],
) -> dict[str, Any]:
    gpu, backends = _inputs(gpu_facts, catalogue)
    studio = studio_profile or {}
    order, prior_reason = prior_order(gpu, studio)
    order += [name for name in backends if name not in order]
    users = expected_concurrency(studio)

    rows: dict[str, dict[str, Any]] = {}
    eligible_names = []
    for name in order:
        if name not in backends:
            continue
        ok, reasons = eligibility(name, backends[name], gpu)
        rows[name] = {"backend": name, "score": 0.0, "eligible": ok, "reasons": reasons}
        if ok:
            eligible_names.append(name)
    for place, name in enumerate(eligible_names):
        points = PRIOR_POINTS[place] if place < len(PRIOR_POINTS) else 0
        rows[name]["score"] = float(points)
        rows[name]["reasons"].append(f"Prior: place {place + 1} for this node and studio ({points} points).")

    results = _by_backend(benchmark_results)
    figures = {name: measured_figures(results[name], users) for name in eligible_names if name in results}
    reasons = [prior_reason]
    prior_choice = eligible_names[0] if eligible_names else None
    if len(figures) >= 2:
        best_goodput = max(f["goodput"] for f in figures.values())
        best_throughput = max(f["throughput"] for f in figures.values())
        for name, fig in figures.items():
            points = GOODPUT_POINTS * fig["goodput"] / best_goodput if best_goodput else 0.0
            points += THROUGHPUT_POINTS * fig["throughput"] / best_throughput if best_throughput else 0.0
            rows[name]["score"] += points
            rows[name]["reasons"].append(f"Measured: {_describe(name, fig)} ({points:.1f} points).")
        for name in eligible_names:
            if name not in figures:
                rows[name]["reasons"].append("Not benchmarked on this node: no measured points.")
    elif figures:
        reasons.append(
            "Only one eligible backend was benchmarked, so there is nothing to compare: prior only."
        )

    for row in rows.values():
        row["score"] = round(row["score"], 1)
    ranking = sorted(
        rows.values(), key=lambda row: (not row["eligible"], -row["score"], order.index(row["backend"]))
    )
    choice = ranking[0]["backend"] if ranking and ranking[0]["eligible"] else None
    if len(figures) >= 2 and choice in figures:
        if choice != prior_choice:
            prior_numbers = (
                f"; {_describe(prior_choice, figures[prior_choice])}" if prior_choice in figures else ""
            )
            reasons.append(
                f"Measurements override the prior, which preferred {prior_choice}: "
                f"{_describe(choice, figures[choice])}{prior_numbers}."
            )
        else:
            reasons.append(f"Measurements agree with the prior: {_describe(choice, figures[choice])}.")
    if choice is None:
        reasons.append("No backend in the catalogue can run on this node.")
    else:
        reasons.append(f"Choice: {choice} ({rows[choice]['score']} points).")
    return {"choice": choice, "ranking": ranking, "reasons": reasons}
