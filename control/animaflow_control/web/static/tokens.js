// Tokens: a new one is shown once (with a copy button) and joins the list without a reload; revoking asks first.
"use strict";

function tokenRow(token) {
  const row = document.createElement("tr");
  row.dataset.token = token.id;
  const cells = [
    token.id, token.name, null, parseTime(token.created_at).toLocaleString(), "never",
    token.expires_at ? parseTime(token.expires_at).toLocaleString() : "never", null,
  ];
  for (const text of cells) row.insertCell().textContent = text ?? "";
  const role = Object.assign(document.createElement("span"), { className: `role role-${token.role}`, textContent: token.role });
  row.cells[2].append(role);
  const revoke = Object.assign(document.createElement("button"), {
    type: "button", className: "small danger", textContent: "Revoke",
  });
  revoke.dataset.revoke = token.id;
  row.cells[6].append(revoke);
  return row;
}

document.getElementById("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    const created = await api("POST", "/api/tokens", {
      name: form.get("name"), role: form.get("role"), expires_at: form.get("expires_at") || null,
    });
    const shown = document.getElementById("new-token");
    shown.querySelector("code").textContent = created.token;
    shown.querySelector("button[data-copy]").dataset.copy = created.token;
    shown.hidden = false;
    document.querySelector("#tokens tbody").append(tokenRow(created)); // the list is in id order
    event.target.reset();
  } catch (problem) {
    notify(problem.message, "error");
  }
});

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-revoke]");
  if (!button) return;
  const row = button.closest("tr");
  const answer = await confirmAction({
    title: `Revoke token ${row.cells[1].textContent}?`,
    facts: [["Id", button.dataset.revoke], ["Role", row.cells[2].textContent.trim()]],
    note: "Its sessions end at once; scripts that use it get 401 from now on.",
    confirm: "Revoke",
    danger: true,
  });
  if (!answer) return;
  try {
    await api("DELETE", `/api/tokens/${button.dataset.revoke}`);
    row.classList.add("revoked");
    button.replaceWith(Object.assign(document.createElement("span"), { className: "muted", textContent: "revoked" }));
  } catch (problem) {
    notify(problem.message, "error");
  }
});
