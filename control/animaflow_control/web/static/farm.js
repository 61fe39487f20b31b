// One click on the grid starts a run and opens its page; the grid reloads when the farm changes.
"use strict";

const CONFIRM = { uninstall: "Uninstall", stop: "Stop" };

document.getElementById("farm-grid")?.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const { action, host, backend } = button.dataset;
  const body = { action, hosts: [host] };
  if (backend) body.backend = backend;
  if (CONFIRM[action] && !window.confirm(`${CONFIRM[action]} ${backend} on ${host}?`)) return;
  if (action === "upgrade" || action === "switch") {
    const hint = action === "upgrade" ? "the version to install beside the running one" : "an installed version (empty: the latest)";
    const version = window.prompt(`${action} ${backend} on ${host}: ${hint}`, "");
    if (version === null || (action === "upgrade" && !version.trim())) return;
    if (version.trim()) body.version = version.trim();
  }
  button.disabled = true;
  try {
    const run = await api("POST", "/api/runs", body);
    window.location.assign(`/runs/${run.id}`);
  } catch (problem) {
    button.disabled = false;
    const holder = problem.detail?.run;
    notify(holder ? `${problem.message}. Open /runs/${holder} to follow it.` : problem.message, "error");
  }
});

// Runs started elsewhere (another operator, the API) change states and locks: reload when they do.
const POLL_MS = 5000;
let farmSnapshot = null;

async function watchFarm() {
  try {
    const snapshot = JSON.stringify((await api("GET", "/api/nodes")).nodes);
    if (farmSnapshot !== null && snapshot !== farmSnapshot) {
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
