// The tidydesk page: the queue, a ticket's timeline, the stats as SVG charts and a live
// tail of events. It talks only to the documented API (/openapi.json); the sign-in cookie
// rides along on same-origin requests. Text goes in as textContent, never as HTML.
"use strict";

const $ = (selector) => document.querySelector(selector);
const SVG = "http://www.w3.org/2000/svg";
const state = { ticket: null, lastSeq: null, refresh: null, statsAt: 0 };
const STATS_EVERY = 30000;  // ms: the stats read every ticket of the period, the rest is cheap

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

class SignedOut extends Error {}

async function api(path, options = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    ...options,
    headers: { Accept: "application/json", ...(options.headers || {}) },
  });
  if (response.status === 401) {
    $("#signin").hidden = false;
    throw new SignedOut(path);
  }
  const body = await response.json();
  if (!response.ok) throw new Error(`${path}: ${body.detail || response.status}`);
  return body;
}

function when(iso) {
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

function chips(tags) {
  return el("span", {}, ...(tags || []).map((t) => el("span", { class: "chip" }, t)));
}

// --- the queue ---

async function loadQueue() {
  const form = new FormData($("#filters"));
  const query = new URLSearchParams({ limit: "200" });
  for (const name of ["status", "tag", "assignee"]) {
    const value = String(form.get(name) || "").trim();
    if (value) query.set(name, value);
  }
  const page = await api(`/tickets?${query}`);
  const rows = page.tickets.map((t) => {
    const row = el("tr", { "data-id": t.id, class: t.id === state.ticket ? "current" : "" },
      el("td", {}, t.number), el("td", {}, t.subject || "(no subject)"),
      el("td", {}, t.requester), el("td", { class: `status-${t.status}` }, t.status),
      el("td", {}, chips(t.tags)), el("td", {}, t.assignee || ""),
      el("td", { class: "muted" }, when(t.updated_at)));
    row.addEventListener("click", () => openTicket(t.id));
    return row;
  });
  $("#queue tbody").replaceChildren(...rows);
  $("#queue-empty").hidden = rows.length > 0;
}

// --- a ticket's timeline ---

const LABELS = {
  "ticket.opened": "Ticket opened",
  "message.threaded": "Mail joined",
  "message.held": "Mail held for an agent",
  "ticket.reopened": "Reopened",
  "followup.acknowledged": "Acknowledged (thank-you, stays solved)",
  "followup.recorded": "Machine mail recorded",
  "ticket.split": "Split into a new ticket",
  "decision.shadowed": "Shadow policy would decide",
  "reply.sent": "Agent replied",
  "ticket.solved": "Solved",
  "ticket.closed": "Closed",
  "ticket.merged": "Merged",
  "ticket.tagged": "Tagged",
  "ticket.untagged": "Tag removed",
  "ticket.assigned": "Assigned",
  "ticket.escalated": "Escalated",
  "agent.thanked": "Kudos",
};

function describe(data) {
  const bits = [];
  if (data.agent) bits.push(`agent ${data.agent}`);
  if (data.tag) bits.push(`tag ${data.tag}`);
  if (data.rule) bits.push(`rule ${data.rule}`);
  if (data.method) bits.push(`by ${data.method}`);
  if (data.policy) bits.push(`policy ${data.policy} ${data.version || ""}`.trim());
  if (data.verdict) bits.push(`would ${data.verdict} (active: ${data.active_verdict})`);
  if (data.credited_agent) bits.push(`credit to ${data.credited_agent}`);
  if (data.lead) bits.push(`to lead ${data.lead}`);
  if (data.by) bits.push(data.by);
  if (data.into) bits.push(`into ${data.into}`);
  if (data.new_ticket_id) bits.push(`new ticket ${data.new_ticket_id}`);
  if (data.reason) bits.push(data.reason);
  return bits.join(" · ");
}

function timelineItem(event, messages) {
  const kind = event.type.replace(/^tidydesk\./, "");
  const data = event.data || {};
  const decision = "confidence" in data && kind !== "message.threaded" ? " decision" : "";
  const item = el("li", { class: `ev-${kind.replace(/\./g, "-")}${decision}`, "data-type": kind },
    el("span", { class: "what" }, LABELS[kind] || kind),
    el("span", { class: "when" }, when(event.time)));
  const detail = describe(data);
  if (detail) item.append(el("div", {}, detail));
  if (typeof data.confidence === "number") {
    item.append(el("div", { class: "confidence" },
      `confidence ${(data.confidence * 100).toFixed(0)}%`));
  }
  const text = data.text || data.reply || (messages.get(data.message_id) || {}).reply;
  if (text && (kind === "message.threaded" || kind === "reply.sent" || kind === "message.held")) {
    item.append(el("div", { class: "text" }, text));
  }
  if (data.reasons && data.reasons.length) {
    item.append(el("ul", { class: "reasons" }, ...data.reasons.map((r) => el("li", {}, r))));
  }
  return item;
}

async function openTicket(id) {
  state.ticket = id;
  for (const row of document.querySelectorAll("#queue tbody tr")) {
    row.classList.toggle("current", row.dataset.id === id);
  }
  await showTicket(id);
}

async function showTicket(id) {
  const [ticket, events] = await Promise.all([
    api(`/tickets/${encodeURIComponent(id)}`),
    api(`/tickets/${encodeURIComponent(id)}/events`),
  ]);
  if (state.ticket !== id) return;  // another ticket was opened meanwhile
  const messages = new Map(ticket.messages.map((m) => [m.message_id, m]));
  $("#ticket-panel").hidden = false;
  $("#ticket-panel").dataset.id = id;
  $("#ticket-title").textContent = `#${ticket.number} ${ticket.subject || "(no subject)"}`;
  $("#ticket-meta").replaceChildren(`${ticket.status} · ${ticket.requester} → ${ticket.mailbox}`,
    ticket.assignee ? ` · assigned to ${ticket.assignee}` : "", " ", chips(ticket.tags));
  $("#timeline").replaceChildren(...events.events.map((e) => timelineItem(e, messages)));
  try {
    const c = await api(`/customers/${encodeURIComponent(ticket.requester)}`);
    $("#customer").textContent = `${c.address}: ${c.tickets.length} ticket(s)` +
      (c.last_contact ? `, last contact ${when(c.last_contact)}` : "") +
      (c.languages.length ? `, ${c.languages.join("/")}` : "") +
      (Object.keys(c.decisions).length ? ", decisions " + Object.entries(c.decisions)
        .map(([k, v]) => `${k} ${v}`).join(", ") : "");
  } catch (error) {
    $("#customer").textContent = "";
  }
}

async function addTag(event) {
  event.preventDefault();
  const input = $("#tag-form input[name=tag]");
  const tag = input.value.trim();
  if (!tag || !state.ticket) return;
  await api(`/tickets/${encodeURIComponent(state.ticket)}/tags`, {
    method: "POST", body: JSON.stringify({ tag }),
    headers: { "Content-Type": "application/json" },
  });
  input.value = "";
}

// --- stats as charts ---

function barsPerDay(days) {
  const width = 600, height = 150, pad = 18;
  const top = Math.max(1, ...days.map((d) => Math.max(d.opened, d.solved)));
  const step = (width - pad) / days.length;
  const bar = Math.max(1, step / 2 - 1);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height + pad}`, role: "img",
    "aria-label": "tickets opened and solved per day" });
  chart.append(svg("text", { x: 0, y: 10 }, String(top)));
  days.forEach((d, i) => {
    const x = pad + i * step;
    for (const [key, offset] of [["opened", 0], ["solved", bar]]) {
      const h = (d[key] / top) * (height - 12);
      const rect = svg("rect", { x: x + offset, y: height - h, width: bar, height: h,
        class: `bar-${key}` });
      rect.append(svg("title", {}, `${d.day}: ${d[key]} ${key}`));
      chart.append(rect);
    }
    if ((i % 7 === 0 && i < days.length - 4) || i === days.length - 1) {
      const end = i === days.length - 1 ? { "text-anchor": "end", x: width } : { x };
      chart.append(svg("text", { y: height + 12, ...end }, d.day.slice(5)));
    }
  });
  return chart;
}

function barsBy(groups) {
  const entries = Object.entries(groups).sort((a, b) => b[1].opened - a[1].opened).slice(0, 8);
  if (!entries.length) return el("p", { class: "muted" }, "none yet");
  const width = 300, row = 18;
  const top = Math.max(1, ...entries.map(([, c]) => c.opened));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${entries.length * row}`, role: "img" });
  entries.forEach(([name, counts], i) => {
    const w = (counts.opened / top) * (width - 170);
    chart.append(svg("text", { x: 0, y: i * row + 12 }, name.slice(0, 14)));
    chart.append(svg("rect", { x: 90, y: i * row + 3, width: Math.max(w, 1), height: row - 6,
      class: "bar-opened" }));
    chart.append(svg("text", { x: 94 + w, y: i * row + 12 },
      `${counts.opened} (${counts.solved} solved)`));
  });
  return chart;
}

async function loadStats() {
  const stats = await api("/stats");
  const t = stats.totals;
  const rate = stats.reopen_rate === null ? "–" : `${(stats.reopen_rate * 100).toFixed(0)}%`;
  $("#totals").replaceChildren(...[
    ["opened", t.opened], ["solved", t.solved], ["reopened", t.reopened],
    ["acknowledged", t.acknowledged], ["split", t.split], ["merged", t.merged],
    ["reopen rate", rate],
  ].map(([name, value]) => el("div", { class: "tile", "data-name": name },
    el("b", {}, value), name)));
  $("#per-day").replaceChildren(barsPerDay(stats.per_day));
  $("#by-tag").replaceChildren(barsBy(stats.by_tag));
  $("#by-language").replaceChildren(barsBy(stats.by_language));
  $("#times tbody").replaceChildren(...[
    ["first response", stats.first_response], ["resolution", stats.resolution],
  ].map(([name, times]) => el("tr", {}, el("th", {}, name),
    el("td", {}, duration(times.wall.p50)), el("td", {}, duration(times.wall.p90)),
    el("td", {}, duration(times.business && times.business.p50)),
    el("td", {}, duration(times.business && times.business.p90)),
    el("td", {}, times.wall.count))));
  const kudos = Object.entries(stats.kudos);
  $("#kudos").replaceChildren(...(kudos.length ? kudos.map(([agent, n]) =>
    el("li", {}, `${agent || "(no agent)"}: ${n}`)) : [el("li", { class: "muted" }, "none yet")]));
  $("#rising").replaceChildren(...(stats.rising.length ? stats.rising.map((r) =>
    el("li", {}, `${r.tag}: ${r.this_week} (last week ${r.last_week})`))
    : [el("li", { class: "muted" }, "nothing rising")]));
}

// --- the live tail ---

async function poll() {
  const query = state.lastSeq === null ? "limit=30" : `after=${state.lastSeq}&limit=200`;
  const feed = await api(`/events?${query}`);
  if (!feed.events.length) return;
  state.lastSeq = feed.events[feed.events.length - 1].seq;
  const items = feed.events.map((e) => el("li", { "data-seq": e.seq },
    el("span", { class: "when" }, when(e.time)), " ",
    el("b", {}, e.type.replace(/^tidydesk\./, "")), " ", e.subject));
  $("#tail").prepend(...items.reverse());
  while ($("#tail").children.length > 100) $("#tail").lastElementChild.remove();
  clearTimeout(state.refresh);  // a burst of events: one refresh after it
  state.refresh = setTimeout(refresh, 300);
}

async function refresh() {
  const stats = Date.now() - state.statsAt >= STATS_EVERY;
  if (stats) state.statsAt = Date.now();
  await Promise.all([loadQueue(), stats ? loadStats() : Promise.resolve(),
    state.ticket ? showTicket(state.ticket) : Promise.resolve()]);
}

async function loop() {
  try {
    await poll();
  } catch (error) {
    if (error instanceof SignedOut) return;  // nothing to tail until signed in
    console.error(error);
  }
  setTimeout(loop, 2000);
}

function start() {
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    loadQueue().catch(console.error);
  });
  $("#tag-form").addEventListener("submit", (event) => addTag(event).catch(console.error));
  refresh().then(() => { document.body.dataset.ready = "1"; }, (error) => {
    if (!(error instanceof SignedOut)) console.error(error);
    document.body.dataset.ready = "1";
  });
  loop();
}

start();
