# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Which backend a node should run: hardware eligibility, the product brief's prior, measurements.

Pure functions over plain dicts (gpu facts, llm_benchmark results, the studio profile, the backends
catalogue), shared by the recommend_backend and runnable_backends filters and the control plane.
Standard library only.

The prior is the brief's "Which backend should I choose?" (README): 1-10 artists on NVIDIA, Ollama
(vLLM later for throughput); more artists on NVIDIA, vLLM or SGLang; heavy pipeline automation on
NVIDIA, SGLang; no NVIDIA GPU, llama.cpp or Ollama (Ollama first for a small studio).

Scoring, 0-100: the prior gives the eligible backends 40, 30, 20, 10 points in its order. When at
least two eligible backends were benchmarked on the node with one model family and the studio's
workload, measurements add up to 60 more: 40 times the backend's goodput (requests per second inside
every SLO) over the best, and 20 times its output throughput at the studio's concurrency over the
best. A backend measured to meet the SLOs at the studio's concurrency ranks above every backend that
did not or was not measured. The reasons name the formats compared, and whenever the choice is not
the measured best they say so, with both sets of numbers.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_schema import current, readable
from ansible_collections.animaflow.inference.plugins.module_utils.model_formats import (
    BITS,
    bytes_ratio,
    format_name,
    quality_note,
)

# The brief: a small studio has 1-10 artists, a large one 10-100 and more.
SMALL_STUDIO_MAX_ARTISTS = 10
PRIOR_POINTS = (40, 30, 20, 10)
GOODPUT_POINTS = 40
THROUGHPUT_POINTS = 20
# animaflow_studio.workload -> the benchmark workload whose results decide (llm_benchmark workload).
STUDIO_WORKLOADS = {"interactive": "chat", "pipeline": "structured", "shared_prefix": "shared_prefix"}
WORKLOAD_WORDS = {
    "chat": "chat",
    "structured": "structured output (JSON schema)",
    "shared_prefix": "a long shared system prompt",
}


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


def studio_artists(studio: dict[str, Any]) -> int:
    # The brief sizes a studio by its artists; without them, by the people asking at once.
    return max(1, int(studio.get("artists") or studio.get("concurrent_users") or 1))


def benchmark_workload(studio: dict[str, Any]) -> str:
    """The llm_benchmark workload matching the studio's declared workload (chat when undeclared)."""
    return STUDIO_WORKLOADS.get(str(studio.get("workload") or "interactive"), "chat")


def prior_order(gpu: dict[str, Any], studio: dict[str, Any]) -> tuple[list[str], str]:
    """The product brief's preference for this hardware and studio, best first, with its reason."""
    artists = studio_artists(studio)
    small = artists <= SMALL_STUDIO_MAX_ARTISTS
    size = f"{'small' if small else 'large'} studio ({artists} artist{'s' if artists != 1 else ''})"
    accelerator, vendor = gpu.get("accelerator") or "cpu", gpu.get("vendor") or "none"
    if accelerator == "cuda":
        if studio.get("workload") == "pipeline":
            return ["sglang", "vllm", "llamacpp", "ollama"], (
                "Brief: NVIDIA GPU and heavy pipeline automation (structured output): SGLang first, then vLLM."
            )
        if small:
            return ["ollama", "vllm", "llamacpp", "sglang"], (
                f"Brief: NVIDIA GPU and a {size}: Ollama first, the simplest to run; vLLM later for throughput."
            )
        return ["vllm", "sglang", "llamacpp", "ollama"], (
            f"Brief: NVIDIA GPU and a {size}: vLLM or SGLang, which batch many requests best."
        )
    where = "AMD GPU (vLLM and SGLang need NVIDIA)" if vendor == "amd" else "No usable GPU"
    if small:
        return ["ollama", "llamacpp"], f"Brief: {where} and a {size}: Ollama first, then llama.cpp."
    return [
        "llamacpp",
        "ollama",
    ], f"Brief: {where} and a {size}: llama.cpp's parallel slots first, then Ollama."


def _workload_kind(results: dict[str, Any]) -> str:
    return (results.get("workload") or {}).get("kind") or "chat"


def _family(results: dict[str, Any]) -> str | None:
    target = results.get("target") or {}
    return target.get("model_family") or target.get("model")


def select_results(
    benchmark_results: Any, workload: str, eligible: list[str]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The newest results per eligible backend for `workload` and one model family, and notes on the rest.

    Accepts {backend: results} or a list of results (target.backend names each, oldest first). When
    results of several families are at hand (older runs), the family most backends were measured with
    is compared, ties going to the newest run's family.
    """
    if isinstance(benchmark_results, dict):
        listed = [
            {**res, "target": {**(res.get("target") or {}), "backend": name}}
            for name, res in benchmark_results.items()
            if res
        ]
    else:
        listed = list(benchmark_results or [])
    notes: list[str] = []
    newest: dict[str, dict[str, Any]] = {}
    other_workloads: set[str] = set()
    for results in listed:
        if not readable(results):
            continue
        results = current(results)
        name = (results.get("target") or {}).get("backend")
        if not name or name not in eligible:
            continue
        if _workload_kind(results) != workload:
            other_workloads.add(_workload_kind(results))
            continue
        newest.pop(name, None)  # re-insert: dict order is then newest last
        newest[name] = results
    if other_workloads and len(newest) < 2:
        notes.append(
            f"Results for {', '.join(sorted(other_workloads))} were not used: the studio's workload is "
            f"{WORKLOAD_WORDS.get(workload, workload)} (benchmark it with -e benchmark_workloads={workload})."
        )
    families: dict[str | None, list[str]] = {}
    for name, results in newest.items():
        families.setdefault(_family(results), []).append(name)
    if len(families) <= 1:
        return newest, notes
    order = list(families)
    chosen = max(order, key=lambda family: (len(families[family]), order.index(family)))
    left_out = [f"{', '.join(families[f])} ({f})" for f in order if f != chosen]
    notes.append(
        f"Compared only backends serving {chosen}: {'; '.join(left_out)} served another model family, "
        "and a bake-off compares one family (benchmark.yml -e benchmark_family=...)."
    )
    return {name: newest[name] for name in families[chosen]}, notes


def measured_figures(results: dict[str, Any], users: int) -> dict[str, Any]:
    """Goodput, the concurrency met within the SLOs, and throughput at the tested level nearest the
    studio's concurrency from below."""
    results = current(results)
    levels = sorted(results.get("levels") or [], key=lambda level: level["concurrency"])
    below = [level for level in levels if level["concurrency"] <= users]
    level = below[-1] if below else (levels[0] if levels else None)
    goodput = results.get("goodput") or {}
    within = results.get("max_concurrency_within_slo") or {}
    target = results.get("target") or {}
    return {
        "goodput": goodput.get("request_per_s"),
        "within_slo": within.get("concurrency") or 0,
        "meets_users": (within.get("concurrency") or 0) >= users,
        "slo_ttft_ms": within.get("slo_ttft_ms", goodput.get("slo_ttft_ms")),
        "slo_tpot_ms": within.get("slo_tpot_ms", goodput.get("slo_tpot_ms")),
        "throughput": (level or {}).get("output_tokens_per_s") or 0.0,
        "at_concurrency": (level or {}).get("concurrency"),
        "model": target.get("model"),
        "version": target.get("version"),
        "model_family": target.get("model_family"),
        "model_format": target.get("model_format"),
        "quantisation": target.get("quantisation"),
    }


def _label(name: str, backends: dict[str, Any]) -> str:
    # "llama.cpp (llama-server)" reads as llama.cpp in a sentence.
    return str((backends.get(name) or {}).get("title", name)).split(" (")[0]


def _describe(label: str, figures: dict[str, Any]) -> str:
    goodput = "not measured" if figures["goodput"] is None else f"{figures['goodput']:.2f} requests/s"
    return (
        f"{label}: goodput {goodput} inside the SLOs (p95 TTFT <= {figures['slo_ttft_ms']} ms, "
        f"p95 TPOT <= {figures['slo_tpot_ms']} ms), within them up to {figures['within_slo']} concurrent "
        f"requests, {figures['throughput']:.1f} output tokens/s at concurrency {figures['at_concurrency']}"
    )


def _served(label: str, figures: dict[str, Any]) -> str:
    version = f" {figures['version']}" if figures.get("version") else ""
    if not figures.get("model"):
        return f"{label}{version} (model not recorded in its results)"
    fmt = format_name(figures.get("model_format")) or "format unknown"
    return f"{label}{version} serving {figures['model']} ({fmt} {figures.get('quantisation') or 'quantisation unknown'})"


def compared_formats(figures: dict[str, dict[str, Any]], labels: dict[str, str]) -> tuple[list[dict], str]:
    """What the measurements compared, as rows and as one sentence that names the quality cost."""
    rows = [
        {
            "backend": name,
            "model": fig.get("model"),
            "model_family": fig.get("model_family"),
            "model_format": fig.get("model_format"),
            "quantisation": fig.get("quantisation"),
            "quality": quality_note(fig.get("quantisation")),
        }
        for name, fig in figures.items()
    ]
    family = next((row["model_family"] for row in rows if row["model_family"]), None)
    sentence = "Compared: " + "; ".join(_served(labels[name], fig) for name, fig in figures.items())
    sentence += f", one model family ({family})." if family else "."
    quants = sorted({row["quantisation"] for row in rows if row["quantisation"]}, key=str)
    if quants:
        sentence += " Quality: " + "; ".join(quality_note(q) for q in quants) + "."
    else:
        sentence += " Quantisations unknown: declare quantisation in animaflow_models to know what they cost."
    known = [quant for quant in quants if quant in BITS]
    if len(known) > 1:
        low, high = min(known, key=BITS.__getitem__), max(known, key=BITS.__getitem__)
        ratio = bytes_ratio(low, high)
        if ratio and ratio > 1.2:
            sentence += (
                f" {low} reads {ratio:.1f}x fewer bytes per token than {high}, which alone speeds its decoding: "
                "the comparison is of the formats as each backend serves them, not of equal weights."
            )
    return rows, sentence


def _gap(best: str, other: str, figures: dict[str, dict[str, Any]], labels: dict[str, str]) -> str:
    """How far `best` measured ahead of `other`, in numbers."""
    a, b = figures[best], figures[other]
    parts = []
    if b["throughput"]:
        pct = (a["throughput"] / b["throughput"] - 1) * 100
        parts.append(
            f"{labels[best]} made {pct:+.0f}% output tokens/s ({a['throughput']:.1f} against "
            f"{b['throughput']:.1f} at concurrency {a['at_concurrency']})"
        )
    if a["goodput"] is not None and b["goodput"] is not None:
        parts.append(f"goodput {a['goodput']:.2f} against {b['goodput']:.2f} requests/s")
    return ", ".join(parts) or f"{labels[best]} scored more measured points"


def _meets(names: list[str], figures: dict[str, dict[str, Any]], labels: dict[str, str], users: int) -> str:
    meeting = [labels[name] for name in names if figures[name]["meets_users"]]
    who = "both" if len(meeting) == len(names) == 2 else ("all" if len(meeting) == len(names) else None)
    target = f"the SLOs at {users} concurrent user{'s' if users != 1 else ''}"
    if who:
        return f"{who} meet {target}"
    if not meeting:
        return f"neither meets {target}" if len(names) == 2 else f"none meets {target}"
    return f"only {', '.join(meeting)} meets {target}"


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
    workload = benchmark_workload(studio)
    labels = {name: _label(name, backends) for name in order}

    rows: dict[str, dict[str, Any]] = {}
    eligible_names = []
    for name in order:
        if name not in backends:
            continue
        ok, reasons = eligibility(name, backends[name], gpu)
        rows[name] = {"backend": name, "score": 0.0, "eligible": ok, "reasons": reasons, "prior": 0}
        if ok:
            eligible_names.append(name)
    for place, name in enumerate(eligible_names):
        points = PRIOR_POINTS[place] if place < len(PRIOR_POINTS) else 0
        rows[name]["score"] = rows[name]["prior"] = float(points)
        rows[name]["reasons"].append(f"Prior: place {place + 1} for this node and studio ({points} points).")

    selected, notes = select_results(benchmark_results, workload, eligible_names)
    figures = {name: measured_figures(selected[name], users) for name in eligible_names if name in selected}
    reasons = [prior_reason, *notes]
    compared: list[dict[str, Any]] = []
    prior_choice = eligible_names[0] if eligible_names else None
    measured_points: dict[str, float] = {}
    tiered = False
    if len(figures) >= 2:
        compared, sentence = compared_formats(figures, labels)
        reasons.append(f"{sentence} Workload: {WORKLOAD_WORDS.get(workload, workload)}.")
        # Request goodput exists from schema_version 2 on; older results compare on concurrency instead.
        by_rate = all(fig["goodput"] is not None for fig in figures.values())
        key = "goodput" if by_rate else "within_slo"
        best_goodput = max(fig[key] or 0 for fig in figures.values())
        best_throughput = max(fig["throughput"] for fig in figures.values())
        for name, fig in figures.items():
            points = GOODPUT_POINTS * (fig[key] or 0) / best_goodput if best_goodput else 0.0
            points += THROUGHPUT_POINTS * fig["throughput"] / best_throughput if best_throughput else 0.0
            measured_points[name] = points
            rows[name]["score"] += points
            rows[name]["measured"] = {
                k: fig[k] for k in ("goodput", "within_slo", "throughput", "at_concurrency")
            }
            rows[name]["reasons"].append(f"Measured: {_describe(labels[name], fig)} ({points:.1f} points).")
        for name in eligible_names:
            if name not in figures:
                rows[name]["reasons"].append(
                    "Not benchmarked on this node for this workload: no measured points."
                )
        tiered = any(fig["meets_users"] for fig in figures.values())
    elif figures:
        reasons.append(
            "Only one eligible backend was benchmarked, so there is nothing to compare: prior only."
        )

    for row in rows.values():
        row["score"] = round(row["score"], 1)

    def rank(row: dict[str, Any]) -> tuple:
        met = tiered and row["backend"] in figures and figures[row["backend"]]["meets_users"]
        return (not row["eligible"], not met if tiered else False, -row["score"], order.index(row["backend"]))

    ranking = sorted(rows.values(), key=rank)
    choice = ranking[0]["backend"] if ranking and ranking[0]["eligible"] else None
    if measured_points and choice is not None:
        reasons.append(_verdict(choice, prior_choice, figures, measured_points, rows, labels, users))
    if choice is None:
        reasons.append("No backend in the catalogue can run on this node.")
    else:
        reasons.append(f"Choice: {labels[choice]} ({rows[choice]['score']} points).")
    return {
        "choice": choice,
        "ranking": ranking,
        "reasons": reasons,
        "workload": workload,
        "compared": compared,
    }


def _verdict(
    choice: str,
    prior_choice: str | None,
    figures: dict[str, dict[str, Any]],
    measured_points: dict[str, float],
    rows: dict[str, dict[str, Any]],
    labels: dict[str, str],
    users: int,
) -> str:
    """The sentence that ties the choice to the measurements, numbers included, never contradicting them."""
    best = max(measured_points, key=lambda name: measured_points[name])
    if choice not in figures:
        return (
            f"None of the measured backends meets the SLOs at {users} concurrent users ({_meets(list(figures), figures, labels, users)}); "
            f"{labels[choice]} was not benchmarked here and is chosen on the brief alone: benchmark it before relying on it."
        )
    if choice == best:
        runner = max((n for n in measured_points if n != choice), key=lambda n: measured_points[n])
        if choice == prior_choice:
            return (
                f"Measurements agree with the prior: {_gap(choice, runner, figures, labels)}; "
                f"{_meets([choice, runner], figures, labels, users)}."
            )
        if prior_choice in figures and prior_choice != runner:
            prior_numbers = f"; {_describe(labels[prior_choice], figures[prior_choice])}"
        elif prior_choice not in figures and prior_choice:
            prior_numbers = f"; {labels[prior_choice]} was not benchmarked here"
        else:
            prior_numbers = ""
        return (
            f"Measurements override the prior, which preferred {labels.get(prior_choice, prior_choice)}: "
            f"{_gap(choice, runner, figures, labels)}{prior_numbers}; {_meets([choice, runner], figures, labels, users)}."
        )
    if not figures[best]["meets_users"] and figures[choice]["meets_users"]:
        return (
            f"{labels[best]} measured ahead ({_gap(best, choice, figures, labels)}), but only {labels[choice]} "
            f"meets the SLOs at {users} concurrent users: {labels[choice]} chosen."
        )
    prior_gap = rows[choice]["prior"] - rows[best]["prior"]
    measured_gap = measured_points[best] - measured_points[choice]
    return (
        f"{labels[best]} measured ahead: {_gap(best, choice, figures, labels)}; "
        f"{_meets([best, choice], figures, labels, users)}. {labels[choice]} kept because the brief prefers it "
        f"for this node and studio ({rows[choice]['prior']:.0f} against {rows[best]['prior']:.0f} prior points, "
        f"{prior_gap:.0f} more) and the measured lead is worth only {measured_gap:.1f} points. "
        f"Switch to {labels[best]} if the extra speed matters more than the brief's reason."
    )
