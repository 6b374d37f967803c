// The ticket page: shows the ticket's status as it changes and cancels it.
"use strict";

(function () {
  const g = window.gigbus;
  const box = document.getElementById("ticket");
  const id = box.dataset.ticketId;
  const form = document.getElementById("cancel-form");
  const button = document.getElementById("cancel-button");
  const out = form.querySelector(".outcome");

  const notes = {
    pending: "Your ticket is being confirmed…",
    confirmed: "Keep this page's address: whoever has it can cancel the ticket.",
    rejected: "This ticket was not issued: the concert sold out.",
    cancelled: "This ticket is cancelled; its seat went back on sale.",
  };

  function show(t) {
    box.dataset.status = t.status;
    const badge = document.getElementById("ticket-status");
    badge.textContent = t.status;
    badge.className = `badge status status-${t.status}`;
    const note = t.status === "rejected" && t.reason !== "sold_out" ? "This ticket was not issued." : notes[t.status];
    document.getElementById("ticket-note").textContent = note || "";
    button.disabled = t.status !== "confirmed";
  }

  form.hidden = false;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (form.dataset.busy) return;
    form.dataset.busy = "1";
    button.disabled = true;
    g.setOutcome(out, "info", "Cancelling…");
    try {
      const res = await g.api("POST", `/api/tickets/${encodeURIComponent(id)}/cancel`);
      if (res.ok && res.body) {
        show(res.body);
        g.setOutcome(out, "ok", "Cancelled. The seat is back on sale.");
      } else {
        g.setOutcome(out, "error", g.problemText(res));
      }
    } finally {
      delete form.dataset.busy;
      button.disabled = box.dataset.status !== "confirmed";
    }
  });

  // A pending ticket turns confirmed or rejected in a moment; follow it.
  async function follow() {
    for (let delay = 250; box.dataset.status === "pending"; delay = Math.min(delay * 1.5, 2000)) {
      await g.sleep(delay);
      const res = await g.api("GET", `/api/tickets/${encodeURIComponent(id)}`);
      if (res.ok && res.body) show(res.body);
    }
  }

  g.localize(document);
  follow();
})();
