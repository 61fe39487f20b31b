// Actions on a node's backend, wherever their buttons are (the farm grid, a recommendation's Apply):
// each change asks first in a dialog that says what the run will do where (node, backend, version
// from -> to, model), then starts the run and opens its page.
"use strict";

let farm = null; // the last GET /api/nodes: states, plans (default version and model) and titles

async function loadFarm() {
  farm = await api("GET", "/api/nodes");
  return farm;
}

function describeNode(node) {
  const gpu = node.facts?.gpu;
  if (!gpu) return node.name;
  const what = gpu.count ? `${gpu.count}× ${gpu.gpus[0].name}` : `${node.facts.cpu?.physical_cores ?? "?"} CPU cores`;
  return `${node.name} (${(gpu.accelerator || "?").toUpperCase()}, ${what})`;
}

// A run the API refused: the button again, and why (a busy node names the run that holds it).
function refused(button, problem) {
  button.disabled = false;
  const holder = problem.detail?.run;
  notify(holder ? `${problem.message}. Open /runs/${holder} to follow it.` : problem.message, "error");
}

// What each action asks before it runs; null: it runs on the click (start, benchmark, facts, status).
function confirmation(action, node, backend) {
  const title = farm.backends[backend] || backend;
  const state = node.status?.backends?.[backend] || { installed_versions: [] };
  const plan = node.plans?.[backend] || {};
  const installed = state.installed_versions || [];
  const active = state.active_version || installed.at(-1) || "";
  const model = state.model || plan.model || "the inventory's animaflow_model";
  const where = ["Node", describeNode(node)];
  const others = Object.entries(node.status?.backends || {})
    .filter(([name, other]) => name !== backend && (other.running || other.installed_versions?.length))
    .map(([name, other]) => `${farm.backends[name] || name}${other.running ? " (running)" : ""}`);
  switch (action) {
    case "install":
      return {
        title: `Install ${title} on ${node.name}?`,
        facts: [where, ["Version", plan.version ? `${plan.version} (the inventory's, else the role's default)` : "as the inventory sets it"], ["Model", plan.model || model]],
        choice: { label: "Another version (empty: the one above)", value: "", placeholder: plan.version || "" },
        note: "Downloads or builds the release into its own directory and configures it; it does not start it.",
        confirm: "Install",
      };
    case "upgrade": {
      const target = plan.version && plan.version !== active ? plan.version : "";
      return {
        title: `Upgrade ${title} on ${node.name}?`,
        facts: [where, ["Version", `${active || "none"} → the one below`], ["Model", model]],
        choice: { label: "New version", value: target, placeholder: "e.g. a release tag", required: true },
        note: `Installs the new version beside ${active || "the current one"}, restarts on it and checks its health; ` +
          `if the check fails it rolls back to ${active || "the current one"}.`,
        confirm: "Upgrade",
      };
    }
    case "switch":
      return {
        title: `Make ${title} the only backend on ${node.name}?`,
        facts: [where, ["Model", model], ["Stops and disables", others.join(", ") || "nothing else is installed"]],
        choice: { label: "Version", options: installed.map((v) => [v, v === active ? `${v} (active)` : v]), value: active },
        note: "Assistants routed to this node are served by this backend once it is healthy.",
        confirm: "Switch",
      };
    case "uninstall": {
      const inactive = installed.filter((v) => v !== state.active_version);
      return {
        title: `Uninstall ${title} from ${node.name}?`,
        facts: [where, ["Installed", installed.join(", ") || "nothing"], ["Model", model]],
        choice: {
          label: "Remove",
          options: [
            ["", installed.length ? `every version (${installed.join(", ")})` : "every version"],
            ...inactive.map((v) => [v, `only ${v} (inactive)`]),
          ],
          value: "",
        },
        note: state.running ? "It is running: removing every version stops it, and assistants routed to this node lose it." : "The model files stay in the node's models directory (animaflow_models_dir).",
        confirm: "Uninstall",
        danger: true,
      };
    }
    case "stop":
      return {
        title: `Stop ${title} on ${node.name}?`,
        facts: [where, ["Version", active || "?"], ["Model", model], ["Endpoint", state.endpoint || "?"]],
        note: "Assistants routed to this node lose it until it starts again.",
        confirm: "Stop",
        danger: true,
      };
    default:
      return null;
  }
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action][data-host]");
  if (!button) return;
  const { action, host, backend } = button.dataset;
  const body = { action, hosts: [host] };
  if (backend) body.backend = backend;
  try {
    const node = (farm || (await loadFarm())).nodes.find((n) => n.name === host);
    const question = node && backend ? confirmation(action, node, backend) : null;
    if (question) {
      const answer = await confirmAction(question);
      if (!answer) return;
      if (answer.value) body.version = answer.value;
    }
    button.disabled = true;
    const run = await api("POST", "/api/runs", body);
    window.location.assign(`/runs/${run.id}`);
  } catch (problem) {
    refused(button, problem);
  }
});

