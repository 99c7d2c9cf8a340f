// Asset Ledger: the project's own small script. Pages work without it; it adds live run progress,
// the TLS risk warning on the source form, and confirmations for destructive buttons.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Confirm destructive actions (buttons with data-confirm).
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  // Source form: show the TLS risk warning (and require its acknowledgement) while verification is off.
  const tlsVerify = document.getElementById("tls_verify");
  const risk = document.getElementById("tls-risk");
  if (tlsVerify && risk) {
    const acknowledge = document.getElementById("acknowledge_tls_risk");
    const sync = () => {
      const off = !tlsVerify.checked;
      risk.hidden = !off;
      if (acknowledge) acknowledge.required = off;
    };
    tlsVerify.addEventListener("change", sync);
    sync();
  }

  // Auth type: show only the credential fields the chosen type needs.
  const authType = document.getElementById("auth_type");
  if (authType) {
    const sync = () => {
      document.querySelectorAll("[data-auth]").forEach((el) => {
        el.hidden = el.dataset.auth !== authType.value;
      });
    };
    authType.addEventListener("change", sync);
    sync();
  }

  // Run detail: while a run is queued or running, poll its JSON and reload once it has ended.
  const live = document.querySelector("[data-live-run]");
  if (live) {
    const url = "/api/v1/runs/" + encodeURIComponent(live.dataset.liveRun);
    const status = document.getElementById("run-status");
    const phase = document.getElementById("run-progress-text");
    const bar = document.getElementById("run-progress-bar");
    const tick = async () => {
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (response.ok) {
          const run = await response.json();
          if (status) {
            status.textContent = run.status;
            status.className = "badge status-" + run.status;
          }
          const p = run.progress;
          if (p && phase) {
            phase.textContent = `${p.phase || ""} ${p.done ?? ""}/${p.total ?? ""} ${p.node || ""} ${p.message || ""}`.trim();
            if (bar && p.total) bar.style.width = Math.min(100, Math.round((100 * p.done) / p.total)) + "%";
          }
          if (run.status !== "queued" && run.status !== "running") {
            window.location.reload();
            return;
          }
        }
      } catch (err) {
        // The server may be restarting; try again on the next tick.
      }
      window.setTimeout(tick, 1000);
    };
    window.setTimeout(tick, 1000);
  }
});

