// The run page follows the run live over Server-Sent Events: the log, each node's finished tasks and the
// task it is on, the elapsed time, and, when a run fails, the failing task and its message at the top.
"use strict";

const root = document.getElementById("run");
const runId = root.dataset.run;
const log = document.getElementById("log");
const stateBadge = document.getElementById("run-state");
const cancelButton = document.getElementById("cancel");
const DONE = ["ok", "failed", "skipped", "unreachable"];
const FINISHED = ["successful", "failed", "canceled", "interrupted"];

const perHost = {};
let state = root.dataset.state;
let finishedAt = root.dataset.finished ? parseTime(root.dataset.finished) : null;
const startedAt = parseTime(root.dataset.started);

function showElapsed() {
  const end = finishedAt || new Date();
  const verb = FINISHED.includes(state) ? "took" : "elapsed";
  document.getElementById("elapsed").textContent = `${verb} ${duration((end - startedAt) / 1000)}`;
}

function showState(newState, error, canceledBy) {
  state = newState;
  stateBadge.textContent = state;
  stateBadge.className = `pill pill-${state}`;
  if (canceledBy) document.getElementById("run-canceled").textContent = `· canceled by ${canceledBy}`;
  if (cancelButton) cancelButton.hidden = FINISHED.includes(state);
  if (error) document.getElementById("run-error").textContent = error;
  for (const bar of document.querySelectorAll(".progress-row .bar")) bar.className = `bar state-${state}`;
}

function drawProgress() {
  for (const row of document.querySelectorAll(".progress-row")) {
    const counts = perHost[row.dataset.host] || {};
    const done = DONE.reduce((sum, kind) => sum + (counts[kind] || 0), 0);
    const failed = (counts.failed || 0) + (counts.unreachable || 0);
    const parts = [`${done} task${done === 1 ? "" : "s"} done`];
    if (counts.changed) parts.push(`${counts.changed} changed`);
    if (failed) parts.push(`${failed} failed`);
    row.querySelector(".count").textContent = done ? parts.join(" · ") : "no task finished yet";
    row.querySelector(".bar").classList.toggle("has-failed", failed > 0);
    const now = row.querySelector(".now");
    now.textContent = !FINISHED.includes(state) && counts.task ? `now: ${counts.task}` : "";
  }
}

function onAnsibleEvent(event) {
  if (event.stdout) {
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
    log.append(`${event.stdout}\n`);
    if (atBottom) log.scrollTop = log.scrollHeight;
  }
  if (!event.event.startsWith("runner_on_") || !event.host) return;
  const counts = (perHost[event.host] ??= {});
  const kind = event.event.slice("runner_on_".length);
  if (kind === "start") counts.task = event.task;
  if (DONE.includes(kind)) {
    // An ignored failure is not one: the task's own failed_when or ignore_errors said so.
    const key = kind === "failed" && event.data?.ignore_errors ? "ok" : kind;
    counts[key] = (counts[key] || 0) + 1;
    if (event.data?.changed) counts.changed = (counts.changed || 0) + 1;
  }
}

// The server's verdict on what stopped the run (the last failure not ignored), shown at the top.
function showFailure(detail) {
  const panel = document.getElementById("run-failure");
  const failure = detail.failure;
  panel.querySelector("h2").textContent = failure?.host ? `This run failed on ${failure.host}` : "This run failed";
  panel.querySelector(".task").textContent = failure?.task ? `At the task “${failure.task}”:` : "";
  panel.querySelector(".message").textContent =
    failure?.message || detail.error || "no task reported a failure: see the log below";
  panel.hidden = false;
}

async function follow() {
  const source = new EventSource(`/api/runs/${runId}/events`);
  source.addEventListener("ansible", (message) => {
    onAnsibleEvent(JSON.parse(message.data));
    drawProgress();
  });
  source.addEventListener("state", (message) => {
    const data = JSON.parse(message.data);
    showState(data.state, data.error, data.canceled_by);
  });
  source.addEventListener("end", async () => {
    source.close();
    const detail = await api("GET", `/api/runs/${runId}`);
    finishedAt = detail.finished_at ? parseTime(detail.finished_at) : new Date();
    showState(detail.state, detail.error, detail.canceled_by);
    drawProgress();
    showElapsed();
    if (detail.state === "failed") showFailure(detail);
    // A run started to land somewhere (the farm's Benchmark and recommend) goes there when it succeeds.
    const landing = sessionStorage.getItem(`land-${runId}`);
    sessionStorage.removeItem(`land-${runId}`);
    if (detail.state === "successful" && landing) window.location.assign(landing);
  });
}

cancelButton?.addEventListener("click", async () => {
  const answer = await confirmAction({
    title: `Cancel run ${runId}?`,
    facts: [["Run", root.dataset.what], ["State", state]],
    note: "Its processes on the nodes are ended; what it already changed on a node stays as it is, and the " +
      "node's states are read again by its next action or Status. The run's history records you as the one who canceled it.",
    confirm: "Cancel the run",
    danger: true,
  });
  if (!answer) return;
  cancelButton.disabled = true;
  try {
    await api("POST", `/api/runs/${runId}/cancel`);
    notify("Cancel requested; the run stops at the next check.");
  } catch (problem) {
    notify(problem.message, "error");
    cancelButton.disabled = false;
  }
});

showElapsed();
setInterval(() => { if (!FINISHED.includes(state)) showElapsed(); }, 1000);
follow().catch((problem) => notify(problem.message, "error"));
