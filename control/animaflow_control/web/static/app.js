// Shared by every page: API calls with the session's CSRF token, notices, local times, sign-out.
"use strict";

const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content;

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
    const message = typeof detail === "string" ? detail
      : Array.isArray(detail) ? detail.map((d) => `${d.loc?.slice(1).join(".")}: ${d.msg}`).join("; ")
      : detail?.message || `${response.status} ${response.statusText}`;
    throw Object.assign(new Error(message), { status: response.status, detail });
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

function localTimes(root = document) {
  for (const cell of root.querySelectorAll("[data-time]")) {
    if (cell.dataset.time) cell.textContent = new Date(cell.dataset.time).toLocaleString();
  }
}

document.getElementById("sign-out")?.addEventListener("click", async () => {
  await api("DELETE", "/api/auth/session").catch(() => {});
  window.location.assign("/login");
});

localTimes();
