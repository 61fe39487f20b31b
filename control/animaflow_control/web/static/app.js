// Shared by every page: API calls with the session's CSRF token, notices, the confirmation dialog, copy
// buttons, local and relative times, sign-out.
"use strict";

const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content;

// The API's validation errors name the field and say what it needs in words (guards.readable_message).
function problemMessage(response, detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => {
      const field = (d.loc || []).slice(1).join(".");
      return field ? `${field}: ${d.msg}` : d.msg;
    }).join("; ");
  }
  return detail?.message || `${response.status} ${response.statusText}`;
}

async function api(method, url, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (csrfToken && method !== "GET") headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(url, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const detail = data?.detail;
    throw Object.assign(new Error(problemMessage(response, detail)), { status: response.status, detail });
  }
  return data;
}

function notify(message, kind = "info") {
  const toast = document.getElementById("toast");
  toast.textContent = message;
  toast.className = `toast toast-${kind}`;
  toast.hidden = false;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => { toast.hidden = true; }, 8000);
}

// The confirmation every change goes through: what, where, which version and model, in a real dialog.
// choice: {label, options: [[value, text]], value} for a list, or {label, value, placeholder, required}
// for a typed value. Resolves to {value} on confirm, null on Back or Escape.
function confirmAction({ title, facts = [], note = "", confirm = "Confirm", danger = false, choice = null }) {
  const dialog = document.getElementById("confirm");
  dialog.querySelector("h2").textContent = title;
  const list = dialog.querySelector(".facts");
  list.replaceChildren(...facts.flatMap(([term, value]) => {
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = term;
    dd.textContent = value;
    return [dt, dd];
  }));
  dialog.querySelector(".note").textContent = note;
  const ok = dialog.querySelector('[value="ok"]');
  ok.textContent = confirm;
  ok.classList.toggle("danger-fill", danger);
  const label = dialog.querySelector(".choice");
  const select = label.querySelector("select");
  const input = label.querySelector("input");
  label.hidden = !choice;
  select.hidden = !choice?.options;
  input.hidden = !choice || Boolean(choice.options);
  input.required = Boolean(choice && !choice.options && choice.required);
  if (choice) {
    label.querySelector("span").textContent = choice.label;
    if (choice.options) {
      select.replaceChildren(...choice.options.map(([value, text]) => new Option(text, value)));
      select.value = choice.value ?? "";
    } else {
      input.value = choice.value ?? "";
      input.placeholder = choice.placeholder ?? "";
    }
  }
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      if (dialog.returnValue !== "ok") return resolve(null);
      const value = choice ? (choice.options ? select.value : input.value.trim()) : null;
      resolve({ value });
    }, { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    (choice && !choice.options ? input : ok).focus();
  });
}

// Copy buttons (data-copy): the clipboard API where the page is a secure context (https, loopback),
// else the selection, which every browser copies from a plain-http farm address too.
async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const area = Object.assign(document.createElement("textarea"), { value: text });
  document.body.append(area);
  area.select();
  const copied = document.execCommand("copy");
  area.remove();
  if (!copied) throw new Error("the browser refused to copy");
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  try {
    await copyText(button.dataset.copy);
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  } catch (problem) {
    notify(`Could not copy: ${problem.message}. Select the text and copy it by hand.`, "error");
  }
});

// Times from the playbooks and the store are UTC; one written without a zone (an older status file) is
// read as UTC too, not as the browser's local time.
function parseTime(text) {
  return new Date(/(Z|[+-]\d\d:?\d\d)$/i.test(text) ? text : `${text}Z`);
}

function localTimes(root = document) {
  for (const cell of root.querySelectorAll("[data-time]")) {
    if (cell.dataset.time) cell.textContent = parseTime(cell.dataset.time).toLocaleString();
  }
}

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

// "3 min ago" beside a time (data-age), refreshed every 15 s; data-stale-after (seconds) marks old ones.
function relativeTimes(root = document) {
  for (const cell of root.querySelectorAll("[data-age]")) {
    const seconds = (Date.now() - parseTime(cell.dataset.age)) / 1000;
    cell.textContent = seconds < 10 ? "just now" : `${duration(seconds)} ago`;
    cell.title = parseTime(cell.dataset.age).toLocaleString();
    const stale = Number(cell.dataset.staleAfter || 0);
    cell.classList.toggle("stale", stale > 0 && seconds > stale);
  }
}

document.getElementById("sign-out")?.addEventListener("click", async () => {
  await api("DELETE", "/api/auth/session").catch(() => {});
  window.location.assign("/login");
});

localTimes();
relativeTimes();
setInterval(relativeTimes, 15000);
