// The run page follows the run live over Server-Sent Events: log lines and per-node task progress.
"use strict";

const root = document.getElementById("run");
const runId = root.dataset.run;
const log = document.getElementById("log");
const stateBadge = document.getElementById("run-state");
const cancelButton = document.getElementById("cancel");
const DONE = ["ok", "failed", "skipped", "unreachable"];
const FINISHED = ["successful", "failed", "canceled", "interrupted"];

let tasksStarted = 0;
let tasksExpected = null;
const perHost = {};

function showState(state, error, canceledBy) {
  stateBadge.textContent = state;
  if (canceledBy) document.getElementById("run-canceled").textContent = `· canceled by ${canceledBy}`;
  stateBadge.className = `pill pill-${state}`;
  if (cancelButton) cancelButton.hidden = FINISHED.includes(state);
  if (error) document.getElementById("run-error").textContent = error;
}

function drawProgress(finished) {
  const total = Math.max(tasksExpected || 0, tasksStarted, 1);
  for (const row of document.querySelectorAll(".progress-row")) {
    const counts = perHost[row.dataset.host] || {};
    const done = DONE.reduce((sum, kind) => sum + (counts[kind] || 0), 0);
    const failed = (counts.failed || 0) + (counts.unreachable || 0);
    const share = finished ? 100 : Math.min(100, Math.round((100 * done) / total));
    const fill = row.querySelector(".fill");
    fill.style.width = `${share}%`;
    fill.classList.toggle("failed", failed > 0);
    row.querySelector(".count").textContent =
      `${done} task${done === 1 ? "" : "s"}${failed ? `, ${failed} failed` : ""}` +
      (tasksExpected && !finished ? ` of ~${tasksExpected}` : "");
  }
}

function onAnsibleEvent(event) {
  if (event.stdout) {
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
    log.append(`${event.stdout}\n`);
    if (atBottom) log.scrollTop = log.scrollHeight;
  }
  if (event.event === "playbook_on_task_start") {
    tasksStarted += 1;
    document.getElementById("current-task").textContent = `Current task: ${event.task}`;
  } else if (event.event.startsWith("runner_on_") && event.host) {
    const kind = event.event.slice("runner_on_".length);
    if (DONE.includes(kind)) {
      perHost[event.host] ??= {};
      perHost[event.host][kind] = (perHost[event.host][kind] || 0) + 1;
    }
  }
}

async function follow() {
  const detail = await api("GET", `/api/runs/${runId}`);
  tasksExpected = detail.progress.tasks_expected;
  const source = new EventSource(`/api/runs/${runId}/events`);
  source.addEventListener("ansible", (message) => {
    onAnsibleEvent(JSON.parse(message.data));
    drawProgress(false);
  });
  source.addEventListener("state", (message) => {
    const data = JSON.parse(message.data);
    showState(data.state, data.error, data.canceled_by);
  });
  source.addEventListener("end", (message) => {
    source.close();
    const { state } = JSON.parse(message.data);
    drawProgress(state === "successful");
    document.getElementById("current-task").textContent = `Finished: ${state}`;
  });
}

cancelButton?.addEventListener("click", async () => {
  cancelButton.disabled = true;
  try {
    await api("POST", `/api/runs/${runId}/cancel`);
    notify("Cancel requested; the run stops at the next check.");
  } catch (problem) {
    notify(problem.message, "error");
    cancelButton.disabled = false;
  }
});

follow().catch((problem) => notify(problem.message, "error"));
