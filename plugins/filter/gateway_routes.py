# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""The studio gateway's routing table from the farm, and its URL (see module_utils/gateway_routes.py)."""

from __future__ import annotations

from typing import Any

from ansible_collections.animaflow.inference.plugins.module_utils.gateway_routes import (
    gateway_routes,
    gateway_url,
)

DOCUMENTATION = r"""
---
name: gateway_routes
short_description: One LiteLLM deployment per farm node, under the catalogue name of the model it serves
version_added: "0.2.0"
description:
  - For each node (sorted; C(animaflow_gateway_member=false) leaves one out) a deployment of its model
    (C(animaflow_model), the catalogue's name, which every backend serves under that name) at
    C(http://<address>:<animaflow_serve_port>/v1). The address is C(animaflow_gateway_node_address), else
    C(animaflow_bind_address) unless it is a wildcard, else C(ansible_host).
  - Node API keys never enter the proxy's configuration; each deployment names an environment variable
    (C(os.environ/ANIMAFLOW_NODE_<HOST>_KEY)) and C(node_keys) maps it to the node's C(animaflow_api_key).
  - A node without a model, or with one the catalogue lacks, is left out and named in C(problems).
positional: _input, hostvars, defaults
options:
  _input:
    description: The farm's host names (C(groups[gateway_nodes_group])).
    type: list
    elements: str
    required: true
  hostvars:
    description: Ansible's C(hostvars).
    type: dict
    required: true
  defaults:
    description: C({model, port, api_key, catalogue}) for what a node's variables leave unset; C(catalogue)
      lists the model names of C(animaflow_models).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Route the farm
  ansible.builtin.set_fact:
    routes: >-
      {{ groups['farm'] | animaflow.inference.gateway_routes(hostvars, {'model': animaflow_model,
         'port': animaflow_serve_port, 'api_key': animaflow_api_key,
         'catalogue': animaflow_models | map(attribute='name') | list}) }}
"""

RETURN = r"""
_value:
  description: C(model_list) (LiteLLM's), C(node_keys) (environment variable -> node key), C(deployments)
    ([{node, model, api_base}]), C(models) (the names assistants ask for), C(problems) (nodes left out, why).
  type: dict
"""


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"gateway_routes": gateway_routes, "gateway_url": gateway_url}
