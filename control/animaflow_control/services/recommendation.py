"""The backend each node should run, from the collection's own recommendation logic (module_utils.recommend),
fed with the node's facts, its benchmark results and the studio profile from the inventory."""

from __future__ import annotations

from animaflow_control.catalogue import backends
from animaflow_control.schemas.benchmarks import NodeRecommendation, Recommendation
from animaflow_control.services.controller_files import ControllerFiles
from animaflow_control.services.inventory import Inventory
from ansible_collections.animaflow.inference.plugins.module_utils.recommend import recommend


def recommend_for_farm(inventory: Inventory, reports: ControllerFiles) -> Recommendation:
    nodes: dict[str, NodeRecommendation] = {}
    missing: list[str] = []
    for host in inventory.hosts:
        facts = reports.node_report("facts", host)
        if not facts or not facts.get("gpu"):
            missing.append(host)
            continue
        studio = inventory.hostvars[host].get("animaflow_studio") or {}
        result = recommend(facts["gpu"], reports.host_benchmarks(host), studio, backends())
        nodes[host] = NodeRecommendation.model_validate(result)
    message = "ok" if nodes else "no node has facts yet: run the facts action first"
    return Recommendation(available=bool(nodes), message=message, nodes=nodes, nodes_without_facts=missing)
