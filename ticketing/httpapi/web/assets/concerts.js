// The concerts page: live seat counts, buying, the admin form, the events
// panel and the topology diagram. It only uses the public HTTP API and the
// SSE stream, so it works the same on the in-memory bus and on NATS.
"use strict";

(function () {
  const g = window.gigbus;
  const mermaidURL = document.currentScript.dataset.mermaid;
  const list = document.getElementById("concerts");
  const template = document.getElementById("concert-template");
  const MAX_EVENTS = 50;
  const TOKEN_KEY = "gigbus.adminToken";
  // The event types the page listens to; EventSource only delivers named
  // events to listeners of that name.
  const EVENT_TYPES = ["ConcertAdded", "TicketRequested", "TicketPurchased", "TicketRejected", "TicketCancelled", "message"];

  // ---- concert cards ----

  const cardOf = (id) => document.getElementById(`concert-${id}`);

  // newCard clones the server's placeholder card (concert id "__ID__") for a
  // concert added while the page is open.
  function newCard(id) {
    const frag = template.content.cloneNode(true);
    for (const el of frag.querySelectorAll("*")) {
      for (const attr of ["id", "for", "aria-labelledby", "data-concert-id"]) {
        const v = el.getAttribute(attr);
        if (v && v.includes("__ID__")) el.setAttribute(attr, v.replaceAll("__ID__", id));
      }
    }
    const card = frag.firstElementChild;
    enhanceCard(card);
    return card;
  }

  // insertCard places a card in date order, like the server's list.
  function insertCard(card) {
    const date = Date.parse(card.dataset.date);
    const next = Array.from(list.children).find((c) => Date.parse(c.dataset.date) > date);
    list.insertBefore(card, next || null);
    document.getElementById("concerts-empty").hidden = true;
  }

  // fillCard shows concert c (the API's JSON) in its card.
  function fillCard(card, c) {
    const soldOut = c.available_tickets <= 0;
    Object.assign(card.dataset, {
      date: c.date,
      priceCents: String(c.ticket_price_cents),
      currency: c.currency,
      available: String(c.available_tickets),
      total: String(c.total_tickets),
    });
    card.querySelector(".concert-name").textContent = c.name;
    card.querySelector(".legend-name").textContent = c.name;
    card.querySelector(".venue").textContent = c.venue;
    const time = card.querySelector("time.date");
    time.setAttribute("datetime", c.date);
    time.textContent = g.formatDate(c.date);
    card.querySelector(".price").textContent = g.formatPrice(c.ticket_price_cents, c.currency);
    card.querySelector(".remaining").textContent = String(c.available_tickets);
    card.querySelector(".total").textContent = String(c.total_tickets);
    const meter = card.querySelector(".seat-meter");
    meter.max = Math.max(c.total_tickets, 1);
    meter.value = c.available_tickets;
    meter.low = meter.max * 0.2;
    meter.high = meter.max * 0.5;
    meter.optimum = meter.max;
    card.classList.toggle("is-sold-out", soldOut);
    card.querySelector(".badge-soldout").hidden = !soldOut;
    syncBuyButton(card);
  }

  // syncBuyButton enables the button unless the concert is sold out or a
  // purchase is in flight.
  function syncBuyButton(card) {
    const form = card.querySelector("form.buy");
    if (form.dataset.busy) return;
    const soldOut = Number(card.dataset.available) <= 0;
    const button = form.querySelector(".buy-button");
    button.disabled = soldOut;
    button.textContent = soldOut ? "Sold out" : "Buy ticket";
  }

  // upsert shows concert c, adding its card when it is new.
  function upsert(c) {
    let card = cardOf(c.id);
    if (!card) {
      card = newCard(c.id);
      fillCard(card, c);
      insertCard(card);
      return;
    }
    fillCard(card, c);
  }

  // refreshConcert refetches one concert. Fetches of one concert never
  // overlap: a request made while one is running marks it dirty and runs once
  // more afterwards, so a slow old answer cannot overwrite a newer count.
  // During a rush (a load test sends thousands of events a second) that
  // further fetch waits a moment, so one open page costs a few requests a
  // second, not one per event.
  const fetching = new Map(); // concert id -> {dirty}
  async function refreshConcert(id) {
    const state = fetching.get(id);
    if (state) {
      state.dirty = true;
      return;
    }
    const me = { dirty: false };
    fetching.set(id, me);
    try {
      for (;;) {
        me.dirty = false;
        const res = await g.api("GET", `/api/concerts/${encodeURIComponent(id)}`);
        if (res.ok && res.body) upsert(res.body);
        if (!me.dirty) break;
        await g.sleep(200);
      }
    } finally {
      fetching.delete(id);
    }
  }

  // refreshAll refetches the list: on (re)connecting to the stream, so what
  // happened while the page was not listening shows too.
  async function refreshAll() {
    const res = await g.api("GET", "/api/concerts");
    if (!res.ok || !Array.isArray(res.body)) return;
    for (const c of res.body) upsert(c);
  }

  // ---- buying ----

  function enhanceCard(card) {
    const form = card.querySelector("form.buy");
    form.hidden = false;
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      buy(card, form);
    });
  }

  async function buy(card, form) {
    // A second click while a purchase is in flight does nothing; the button
    // is disabled too. Each attempt has its own Idempotency-Key, which the
    // retries of that attempt reuse: after a network failure (did the server
    // get it?) or a 409 saying the first request with the key is still
    // running, the server answers the retry with the first request's outcome
    // instead of selling a second ticket.
    if (form.dataset.busy) return;
    const id = card.dataset.concertId;
    const button = form.querySelector(".buy-button");
    const out = form.querySelector(".outcome");
    form.dataset.busy = "1";
    form.setAttribute("aria-busy", "true");
    button.disabled = true;
    button.textContent = "Buying…";
    g.clearErrors(form);
    g.setOutcome(out, "info", "Buying your ticket…");
    try {
      const request = {
        body: {
          customer_name: form.elements.customer_name.value.trim(),
          customer_email: form.elements.customer_email.value.trim(),
        },
        headers: { "Idempotency-Key": g.uuid() },
      };
      let res;
      for (const wait of [0, 500, 1500, 3000]) {
        if (wait) await g.sleep(wait);
        res = await g.api("POST", `/api/concerts/${encodeURIComponent(id)}/tickets`, request);
        const inFlight = res.status === 409 && /idempotency-key-in-use$/.test((res.body && res.body.type) || "");
        if (res.status !== 0 && !inFlight) break;
      }
      await showPurchase(form, out, res);
    } finally {
      delete form.dataset.busy;
      form.removeAttribute("aria-busy");
      syncBuyButton(card);
      refreshConcert(id);
    }
  }

  const ticketLink = (t) => ({ href: `/tickets/${encodeURIComponent(t.id)}`, text: `Ticket ${t.id}` });

  async function showPurchase(form, out, res) {
    switch (res.status) {
      case 201:
        showTicket(out, res.body);
        return;
      case 202: {
        g.setOutcome(out, "info", "Pending: waiting for the concert service to confirm…", ticketLink(res.body));
        const t = await pollTicket(res.body.id);
        showTicket(out, t || res.body);
        return;
      }
      case 409:
        if (res.body && res.body.ticket_id) {
          g.setOutcome(out, "warn", "Sold out: there was no seat left. You were not charged.");
        } else {
          g.setOutcome(out, "error", g.problemText(res));
        }
        return;
      case 422: {
        const rest = g.showFieldErrors(form, res.body && res.body.errors);
        g.setOutcome(out, "error", rest.length ? rest.join("; ") : "Please correct the highlighted field.");
        return;
      }
      case 404:
        g.setOutcome(out, "error", "This concert no longer exists.");
        return;
      default:
        g.setOutcome(out, "error", g.problemText(res));
    }
  }

  function showTicket(out, t) {
    switch (t.status) {
      case "confirmed":
        g.setOutcome(out, "ok", "Confirmed! Your ticket:", ticketLink(t));
        break;
      case "rejected":
        g.setOutcome(out, "warn", "Sold out: there was no seat left. You were not charged.");
        break;
      default:
        g.setOutcome(out, "info", "Still pending. Follow it on its page:", ticketLink(t));
    }
  }

  // pollTicket asks for a pending ticket until the saga decides, for at most
  // about 30 seconds; it returns the last ticket read, or null.
  async function pollTicket(id) {
    let last = null;
    for (let i = 0, delay = 250; i < 40; i++, delay = Math.min(delay * 1.5, 2000)) {
      await g.sleep(delay);
      const res = await g.api("GET", `/api/tickets/${encodeURIComponent(id)}`);
      if (res.ok && res.body) {
        last = res.body;
        if (last.status !== "pending") return last;
      }
    }
    return last;
  }

  // ---- admin: add a concert ----

  function setupAdmin() {
    const form = document.getElementById("admin-form");
    const tokenField = document.getElementById("admin-token-field");
    const kept = document.getElementById("admin-token-kept");
    const out = form.querySelector(".outcome");
    const showToken = () => {
      const has = !!sessionStorage.getItem(TOKEN_KEY);
      tokenField.hidden = has;
      kept.hidden = !has;
    };
    form.hidden = false;
    showToken();
    document.getElementById("admin-token-forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showToken();
      form.elements.token.focus();
    });

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (form.dataset.busy) return;
      g.clearErrors(form);
      const { body, errors } = readConcertForm(form);
      const token = sessionStorage.getItem(TOKEN_KEY) || form.elements.token.value.trim();
      if (!token) errors.unshift({ field: "token", message: "Type the admin token (ticketd prints it at start)." });
      if (errors.length) {
        g.showFieldErrors(form, errors);
        g.setOutcome(out, "error", "Please correct the highlighted fields.");
        return;
      }
      const button = form.querySelector("button[type=submit]");
      form.dataset.busy = "1";
      button.disabled = true;
      g.setOutcome(out, "info", "Adding the concert…");
      try {
        const res = await g.api("POST", "/api/concerts", { body, headers: { Authorization: `Bearer ${token}` } });
        if (res.status === 201 || res.status === 422) {
          // The token was accepted (a wrong one is 401 before any check of
          // the body): keep it for this tab only.
          sessionStorage.setItem(TOKEN_KEY, token);
          form.elements.token.value = "";
          showToken();
        }
        if (res.status === 201) {
          upsert(res.body);
          g.setOutcome(out, "ok", `Added “${res.body.name}”.`);
          for (const name of ["name", "venue", "date", "total_tickets", "ticket_price_cents"]) form.elements[name].value = "";
        } else if (res.status === 401) {
          sessionStorage.removeItem(TOKEN_KEY);
          showToken();
          g.showFieldErrors(form, [{ field: "token", message: "This admin token is not valid." }]);
          g.setOutcome(out, "error", "Not added: the admin token was refused.");
        } else if (res.status === 422) {
          const rest = g.showFieldErrors(form, res.body && res.body.errors);
          g.setOutcome(out, "error", rest.length ? rest.join("; ") : "Please correct the highlighted fields.");
        } else {
          g.setOutcome(out, "error", g.problemText(res));
        }
      } finally {
        delete form.dataset.busy;
        button.disabled = false;
      }
    });
  }

  // readConcertForm turns the form into the API's body, with the errors the
  // browser can tell before asking: the date and numbers it must convert.
  function readConcertForm(form) {
    const f = form.elements;
    const errors = [];
    const currency = f.currency.value.trim().toUpperCase();
    const body = { name: f.name.value.trim(), venue: f.venue.value.trim(), currency };

    // datetime-local is the viewer's local time without a zone; Date reads it
    // as local time and toISOString gives RFC 3339 in UTC.
    const date = f.date.value ? new Date(f.date.value) : null;
    if (!date || isNaN(date)) errors.push({ field: "date", message: "Pick a date and time." });
    else body.date = date.toISOString();

    const total = f.total_tickets.value.trim();
    if (!/^\d+$/.test(total)) errors.push({ field: "total_tickets", message: "Type a whole number of tickets, 0 or more." });
    else body.total_tickets = Number(total);

    const cents = toMinorUnits(f.ticket_price_cents.value, g.minorDigits(currency));
    if (cents === null) errors.push({ field: "ticket_price_cents", message: "Type a price such as 49.90." });
    else body.ticket_price_cents = cents;
    return { body, errors };
  }

  // toMinorUnits parses a decimal amount ("49.9", "49,90", "50") into integer
  // minor units without floating point; null when it is not one.
  function toMinorUnits(text, digits) {
    const m = /^\s*(\d{1,13})(?:[.,](\d*))?\s*$/.exec(text);
    if (!m) return null;
    const frac = m[2] || "";
    if (frac.length > digits) return null;
    return Number(m[1]) * 10 ** digits + Number(frac.padEnd(digits, "0") || "0");
  }

  // ---- live events ----

  const live = document.getElementById("live-status");
  function setLive(state, text) {
    live.hidden = false;
    live.dataset.state = state;
    live.querySelector(".live-text").textContent = text;
  }

  // Events are drawn in batches, at most MAX_EVENTS at a time, so a rush
  // of events costs the page little. (A timer, not requestAnimationFrame,
  // which stops in a hidden tab.)
  let pending = [];
  let timer = 0;
  function queueEvent(ce) {
    pending.push(ce);
    if (pending.length > MAX_EVENTS) pending = pending.slice(-MAX_EVENTS);
    if (!timer) {
      timer = setTimeout(() => {
        timer = 0;
        const batch = pending;
        pending = [];
        for (const e of batch) showEvent(e);
      }, 50);
    }
  }

  function showEvent(ce) {
    const ol = document.getElementById("event-list");
    const li = document.createElement("li");
    li.className = "event";
    li.dataset.type = ce.type || "";
    const type = document.createElement("span");
    type.className = "event-type";
    type.textContent = ce.type || "(untyped)";
    const time = document.createElement("time");
    time.className = "event-time";
    time.dateTime = ce.time || "";
    time.textContent = ce.time ? g.formatTime(ce.time) : "";
    const meta = document.createElement("span");
    meta.className = "event-meta";
    const detail = eventDetail(ce);
    if (detail) {
      const d = document.createElement("span");
      d.className = "event-detail";
      d.textContent = detail;
      meta.append(d, " · ");
    }
    const source = document.createElement("span");
    source.className = "event-source";
    source.textContent = ce.source || "";
    meta.append(source);
    if (ce.subject) {
      const subject = document.createElement("code");
      subject.className = "event-subject";
      subject.title = ce.subject;
      subject.textContent = ce.subject;
      meta.append(" · ", subject);
    }
    li.append(type, time, meta);
    ol.prepend(li);
    while (ol.children.length > MAX_EVENTS) ol.lastElementChild.remove();
    document.getElementById("events-empty").hidden = true;
  }

  // eventDetail is a few words on what an event says, from its public data.
  function eventDetail(ce) {
    const d = ce.data || {};
    switch (ce.type) {
      case "ConcertAdded":
        return d.name ? `“${d.name}”` : "";
      case "TicketPurchased":
        return typeof d.available_tickets === "number" ? `${d.available_tickets} left` : "";
      case "TicketRejected":
        return d.reason ? d.reason.replaceAll("_", " ") : "";
      default:
        return "";
    }
  }

  function onEvent(msg) {
    let ce;
    try {
      ce = JSON.parse(msg.data);
    } catch (err) {
      return;
    }
    queueEvent(ce);
    // Ticket events name their concert in data (their subject is the
    // ticket); ConcertAdded's subject is the concert.
    const concertID = (ce.data && ce.data.concert_id) || (ce.type === "ConcertAdded" && ce.subject);
    if (!concertID) return;
    switch (ce.type) {
      case "ConcertAdded":
      case "TicketPurchased":
        refreshConcert(concertID);
        break;
      case "TicketCancelled":
        // The seat goes back when the concert service has handled this event,
        // which may be just after the stream shows it and publishes nothing
        // more; so look again a little later too.
        refreshConcert(concertID);
        for (const ms of [300, 1000, 3000]) setTimeout(() => refreshConcert(concertID), ms);
        break;
    }
  }

  let source = null;
  function connect() {
    setLive("connecting", "Connecting…");
    source = new EventSource("/api/events");
    for (const type of EVENT_TYPES) source.addEventListener(type, onEvent);
    source.addEventListener("open", () => {
      setLive("on", "Live");
      refreshAll();
    });
    // The server missed events we never saw (we resumed from too far back):
    // what is on screen may be stale, so read everything again.
    source.addEventListener("reset", refreshAll);
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // The browser gives up on some errors (e.g. a 5xx); try again later.
        setLive("off", "Offline, retrying…");
        source.close();
        setTimeout(connect, 5000);
      } else {
        setLive("connecting", "Reconnecting…");
      }
    });
  }

  // ---- topology ----

  let mermaidReady = null;
  function loadMermaid() {
    if (!mermaidReady) {
      mermaidReady = new Promise((resolve, reject) => {
        const s = document.createElement("script");
        s.src = mermaidURL;
        s.onload = () => {
          const dark = window.matchMedia("(prefers-color-scheme: dark)").matches;
          const css = getComputedStyle(document.documentElement);
          const v = (name) => css.getPropertyValue(name).trim();
          window.mermaid.initialize({
            startOnLoad: false,
            securityLevel: "strict",
            theme: "base",
            themeVariables: {
              darkMode: dark,
              fontFamily: v("--font"),
              fontSize: "15px",
              background: v("--surface"),
              primaryColor: v("--accent-soft"),
              primaryBorderColor: v("--accent"),
              primaryTextColor: v("--text"),
              secondaryColor: v("--surface-2"),
              tertiaryColor: v("--surface-2"),
              lineColor: v("--muted"),
              textColor: v("--text"),
              clusterBkg: v("--surface-2"),
              clusterBorder: v("--border"),
              edgeLabelBackground: v("--surface"),
            },
            flowchart: { curve: "basis", padding: 12 },
          });
          resolve(window.mermaid);
        };
        s.onerror = () => reject(new Error("mermaid did not load"));
        document.head.append(s);
      });
    }
    return mermaidReady;
  }

  let shownTopology = null;
  let renders = 0;
  async function refreshTopology(force) {
    const res = await g.api("GET", "/topology");
    if (!res.ok || !res.body) return;
    const text = res.body.mermaid || "";
    if (text === shownTopology && !force) return;
    shownTopology = text;
    document.getElementById("topology-source").textContent = text;
    const box = document.getElementById("topology-diagram");
    const say = (state, msg) => {
      box.dataset.state = state;
      box.replaceChildren(Object.assign(document.createElement("p"), { className: "empty", textContent: msg }));
    };
    if (res.body.available === false) {
      say("unavailable", "This bus does not report its topology (the in-memory bus does).");
      return;
    }
    if (!/-->/.test(text)) {
      say("empty", "Nothing published or subscribed yet.");
      return;
    }
    try {
      const mermaid = await loadMermaid();
      const { svg } = await mermaid.render(`topology-svg-${++renders}`, text);
      box.innerHTML = svg; // rendered by Mermaid with securityLevel "strict"
      box.dataset.state = "drawn";
    } catch (err) {
      say("error", `The diagram could not be drawn (${err.message}); its source is below.`);
    }
  }

  function setupTopology() {
    const button = document.getElementById("topology-refresh");
    button.hidden = false;
    button.addEventListener("click", () => refreshTopology(true));
    refreshTopology(false);
    setInterval(() => {
      if (!document.hidden) refreshTopology(false);
    }, 5000);
  }

  // ---- start ----

  for (const card of list.querySelectorAll(".concert")) {
    enhanceCard(card);
    card.querySelector(".price").textContent = g.formatPrice(card.dataset.priceCents, card.dataset.currency);
  }
  g.localize(document);
  setupAdmin();
  connect();
  setupTopology();
})();
