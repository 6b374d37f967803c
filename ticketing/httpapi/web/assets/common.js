// gigbus page helpers shared by the concerts page and the ticket page.
// Plain browser JavaScript, no build step: everything hangs off window.gigbus.
"use strict";

(function () {
  const gigbus = (window.gigbus = {});

  // uuid returns a random UUID for an Idempotency-Key. crypto.randomUUID
  // exists only in secure contexts (https, localhost); ticketd is often
  // opened over plain http on a LAN address, so fall back to getRandomValues.
  gigbus.uuid = function () {
    if (window.crypto && typeof crypto.randomUUID === "function") {
      return crypto.randomUUID();
    }
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  };

  // api calls the JSON API and resolves to {status, ok, body, headers}; body
  // is the parsed JSON (a concert, a ticket or a problem) or null. Network
  // failures resolve too (status 0), so callers handle one shape.
  gigbus.api = async function (method, path, { body, headers = {} } = {}) {
    const init = { method, headers: { Accept: "application/json", ...headers } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (err) {
      return { status: 0, ok: false, body: { title: "Network error", detail: "The server cannot be reached. Check your connection and try again." }, headers: new Headers() };
    }
    let parsed = null;
    const type = res.headers.get("Content-Type") || "";
    if (type.includes("json")) {
      try {
        parsed = await res.json();
      } catch (err) {
        parsed = null;
      }
    }
    return { status: res.status, ok: res.ok, body: parsed, headers: res.headers };
  };

  // problemText is the sentence to show for a problem+json answer.
  gigbus.problemText = function (res) {
    const p = res.body || {};
    return p.detail || p.title || `The request failed (HTTP ${res.status}).`;
  };

  // clearErrors removes every field error shown in form.
  gigbus.clearErrors = function (form) {
    for (const el of form.querySelectorAll("[aria-invalid]")) {
      el.removeAttribute("aria-invalid");
      el.removeAttribute("aria-describedby");
    }
    for (const el of form.querySelectorAll(".field-error")) {
      el.textContent = "";
      el.hidden = true;
    }
  };

  // showFieldErrors puts each {field, message} of a 422 problem next to the
  // input named field: the message in the field's error element, tied to the
  // input by aria-describedby, and aria-invalid on the input. It returns the
  // messages that match no input, and focuses the first invalid input.
  gigbus.showFieldErrors = function (form, errors) {
    const rest = [];
    let first = null;
    for (const e of errors || []) {
      const input = form.elements.namedItem(e.field);
      const box = input && document.getElementById(`${input.id}-error`);
      if (!input || !box) {
        rest.push(e.field ? `${e.field} ${e.message}` : e.message);
        continue;
      }
      box.textContent = box.textContent ? `${box.textContent}; ${e.message}` : e.message;
      box.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", box.id);
      first = first || input;
    }
    if (first) first.focus();
    return rest;
  };

  // setOutcome shows a status message (kind: "ok", "warn", "error", "info")
  // in an outcome element; html is trusted markup built by our own code.
  gigbus.setOutcome = function (el, kind, text, link) {
    el.className = `outcome outcome-${kind}`;
    el.replaceChildren();
    if (text) el.append(text);
    if (link) {
      const a = document.createElement("a");
      a.href = link.href;
      a.textContent = link.text;
      el.append(" ", a);
    }
  };

  const dateFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", year: "numeric", hour: "numeric", minute: "2-digit" });
  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

  // formatDate renders an RFC 3339 date in the viewer's locale and time zone.
  gigbus.formatDate = function (iso) {
    const d = new Date(iso);
    return isNaN(d) ? iso : dateFormat.format(d);
  };

  gigbus.formatTime = function (iso) {
    const d = new Date(iso);
    return isNaN(d) ? iso : timeFormat.format(d);
  };

  // minorDigits is how many minor-unit digits a currency has (2 for EUR, 0
  // for JPY), as the browser's Intl knows it; 2 when it does not.
  gigbus.minorDigits = function (currency) {
    try {
      return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
    } catch (err) {
      return 2;
    }
  };

  // formatPrice renders integer minor units of currency in the viewer's locale.
  gigbus.formatPrice = function (cents, currency) {
    const digits = gigbus.minorDigits(currency);
    const amount = Number(cents) / 10 ** digits;
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(amount);
    } catch (err) {
      return `${amount.toFixed(digits)} ${currency}`;
    }
  };

  // localize re-renders the server's UTC dates and prices in the viewer's locale.
  gigbus.localize = function (root) {
    for (const t of root.querySelectorAll("time.date[datetime]")) {
      t.textContent = gigbus.formatDate(t.getAttribute("datetime"));
    }
    for (const p of root.querySelectorAll(".price[data-price-cents]")) {
      p.textContent = gigbus.formatPrice(p.dataset.priceCents, p.dataset.currency);
    }
  };

  // sleep is for polling a pending ticket between requests, never for
  // waiting on events.
  gigbus.sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
})();
