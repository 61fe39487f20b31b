# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""How a pip-installed backend (vLLM, SGLang) is installed on one node: which CUDA wheel variant its
driver runs, where pip finds it (indexes, or the studio's wheelhouse), and, when the variant cannot
work, the problem and the fix in words. Pure: the filter animaflow.inference.wheel_plan and the unit
tests call it."""

from __future__ import annotations

import re
from typing import Any

from ansible.module_utils.compat.version import LooseVersion

NODE_WHEELHOUSE = "/var/cache/animaflow"
CREDENTIALS = re.compile(r"(?<=://)[^/@]*@")


def _driver_at_least(driver: str, needed: str) -> bool:
    return LooseVersion(str(driver)) >= LooseVersion(str(needed))


def wheel_plan(
    variants: dict[str, dict[str, Any]],
    package: str,
    title: str,
    version: str,
    chosen: str,
    driver: str,
    index_url: str = "",
    wheelhouse: str = "",
    mirror: str = "",
) -> dict[str, Any]:
    """variants: {name: {min_driver, index_urls, versions}}; chosen: a variant name or 'auto'."""
    driver = str(driver or "0")
    runnable = sorted(
        (name for name, spec in variants.items() if _driver_at_least(driver, spec["min_driver"])),
        key=lambda name: LooseVersion(str(variants[name]["min_driver"])),
        reverse=True,
    )
    has_version = [name for name, spec in variants.items() if version in spec["versions"]]
    if chosen != "auto":
        variant = chosen
    else:
        variant = next(
            (name for name in runnable if name in has_version), runnable[0] if runnable else "none"
        )
    index_urls = [
        url.replace("{version}", version) for url in variants.get(variant, {}).get("index_urls", [])
    ]

    mirror = mirror.rstrip("/")
    if not wheelhouse and mirror:
        wheelhouse = f"{mirror}/{package}/{version}/{variant}"
    remote = re.match(r"^(https?|file)://", wheelhouse) is not None
    node_wheelhouse = f"{NODE_WHEELHOUSE}/{package}/{version}-{variant}"
    # pip reads its sources from the environment, so index credentials never reach a command line.
    if wheelhouse:
        pip_env = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": wheelhouse if remote else node_wheelhouse}
    else:
        pip_env = {"PIP_INDEX_URL": index_url} if index_url else {}
        if index_urls:
            pip_env["PIP_EXTRA_INDEX_URL"] = " ".join(index_urls)
    # Recorded in the install marker (world-readable): the sources with any credentials cut out.
    pip_sources = [
        CREDENTIALS.sub("", part)
        for key, value in pip_env.items()
        if key != "PIP_NO_INDEX"
        for part in value.split(" ")
    ]

    known, listed = variant in variants, variant in has_version
    usable = known and listed and _driver_at_least(driver, variants[variant]["min_driver"])
    if not known:
        problem = f"{package}_wheel_variant={variant} is not a key of {package}_wheel_variants"
    elif not listed:
        problem = f"{title} {version} has no {variant} wheel"
    else:
        problem = f"the {variant} wheel needs driver {variants[variant]['min_driver']}+"
    newest_runnable = variants[runnable[0]]["versions"][-1] if runnable else ""
    # The oldest driver a variant that has this version needs (else the newest variant's).
    needed_driver = (
        min(str(variants[name]["min_driver"]) for name in has_version)
        if has_version
        else max(str(spec["min_driver"]) for spec in variants.values())
    )
    fix = (
        f"pin {package}_version={newest_runnable} for this node ({runnable[0]} runs on its driver), or "
        if newest_runnable
        else ""
    ) + (
        f"update the driver to R{needed_driver}+, or add {version} to {package}_wheel_variants.{variant}.versions"
        " once that index serves it"
    )
    exists_as = ", ".join(f"{name} (driver {variants[name]['min_driver']}+)" for name in has_version)
    table = "; ".join(
        f"{name} (driver {spec['min_driver']}+) for {title} {', '.join(spec['versions'])}"
        for name, spec in variants.items()
    )
    refusal = (
        f"{problem}. {title} {version} exists as {exists_as or 'no listed variant'}; the variants: {table}. "
        f"Nothing was changed. Fix: {fix}."
    )
    return {
        "variant": variant,
        "usable": usable,
        "refusal": "" if usable else refusal,
        "pip_env": pip_env,
        "pip_sources": pip_sources,
        "wheelhouse": wheelhouse,
        "wheelhouse_remote": remote,
        "wheelhouse_node": node_wheelhouse,
    }
