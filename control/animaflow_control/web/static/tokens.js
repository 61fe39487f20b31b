"use strict";

document.getElementById("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    const created = await api("POST", "/api/tokens", {
      name: form.get("name"), role: form.get("role"), expires_at: form.get("expires_at") || null,
    });
    const shown = document.getElementById("new-token");
    shown.querySelector("code").textContent = created.token;
    shown.hidden = false;
    event.target.reset();
  } catch (problem) {
    notify(problem.message, "error");
  }
});

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-revoke]");
  if (!button || !window.confirm("Revoke this token? Its sessions end at once.")) return;
  try {
    await api("DELETE", `/api/tokens/${button.dataset.revoke}`);
    window.location.reload();
  } catch (problem) {
    notify(problem.message, "error");
  }
});
