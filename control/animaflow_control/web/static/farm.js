// The farm grid: its buttons are actions.js's; the farm-level bake-off asks, runs, and lands on the
// recommendation. The grid reloads when the farm changes.
"use strict";

// Benchmark and recommend: every node, every installed backend it can run, nothing installed.
document.getElementById("benchmark-farm")?.addEventListener("click", async (event) => {
  const button = event.currentTarget;
  try {
    const { nodes } = farm || (await loadFarm());
    const installed = nodes.filter((n) => Object.values(n.status?.backends || {}).some((b) => b.installed_versions?.length));
    const answer = await confirmAction({
      title: "Benchmark the farm and recommend a backend per node?",
      facts: [
        ["Nodes", `${nodes.length} (${nodes.map((n) => n.name).join(", ")})`],
        ["With backends", installed.length ? installed.map((n) => n.name).join(", ") : "none installed yet: nothing to measure"],
        ["Backends", "each node's installed ones that its hardware can run, one model family"],
        ["Workload", "the studio's (animaflow_studio.workload in the inventory)"],
      ],
      note: "Installs nothing. On each node the installed backends take turns serving while they are measured, so " +
        "assistants routed to it may be slower or briefly refused; the backend active before is restored at the end. " +
        "When it finishes you land on the recommendation.",
      confirm: "Benchmark and recommend",
    });
    if (!answer) return;
    button.disabled = true;
    const run = await api("POST", "/api/runs", { action: "benchmark", hosts: ["farm"] });
    sessionStorage.setItem(`land-${run.id}`, "/benchmarks#recommendation");
    window.location.assign(`/runs/${run.id}`);
  } catch (problem) {
    refused(button, problem);
  }
});

// Runs started elsewhere (another operator, the API) and every action's own status report change the
// grid: reload when the nodes change.
const POLL_MS = 5000;
let farmSnapshot = null;

async function watchFarm() {
  try {
    const snapshot = JSON.stringify((await loadFarm()).nodes);
    if (farmSnapshot !== null && snapshot !== farmSnapshot && !document.getElementById("confirm").open) {
      window.location.reload();
      return;
    }
    farmSnapshot = snapshot;
  } catch (problem) {
    if (problem.status === 401) window.location.assign("/login");
  }
  setTimeout(watchFarm, POLL_MS);
}

if (document.getElementById("farm-grid")) watchFarm();
