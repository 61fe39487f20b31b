"use strict";

document.getElementById("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("signin-error");
  error.hidden = true;
  try {
    await api("POST", "/api/auth/session", { token: document.getElementById("token").value.trim() });
    window.location.assign("/");
  } catch (problem) {
    error.textContent = problem.message;
    error.hidden = false;
  }
});
