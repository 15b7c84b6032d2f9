// The streamlog tail page: wires the process list, the live connection, the
// line store and the virtualized view together. Protocol: docs/protocol.md.
// Log text is hostile input: it only ever reaches the DOM as text nodes.

import { LineStore, makeMatcher, timeKey } from "./lines.js";
import { LogView, fullTime } from "./view.js";

const $ = (id) => document.getElementById(id);
const TAIL = 1000; // records asked for when a process is opened
const PAGE = 500; // records per history page
const NEAR = 600; // pixels from an edge at which more history is loaded
const params = new URLSearchParams(location.search);
const numberFormat = new Intl.NumberFormat(); // one formatter: toLocaleString makes one per call

const prefs = loadPrefs();
const store = new LineStore(Number(params.get("retain")) || 250000);
const view = new LogView($("log"), store);

const state = {
  processes: new Map(), // name -> info from /api/processes and state messages
  subs: new Map(), // open process name -> Sub
  follow: true,
  pausedBy: null, // "you" (button/key), "scroll", "selection", "jump"
  unseen: 0, // lines that arrived while not following
  filter: { q: params.get("q") || "", regex: params.get("re") === "1", case: params.get("case") === "1" },
  socket: null,
  connected: false,
  retry: 500,
  inbox: [], // batches of records received, added to the store once per frame
  scheduled: false,
  fallback: 0, // the timer that flushes when no animation frame comes (hidden tab)
  generation: 0, // bumped when the view changes: late answers for the old one are dropped
  loading: null, // the history read in progress
  changed: [], // lines whose text grew since the last frame (joined pieces)
  anchorNeeded: false, // keep the line being read in place at the next frame
  search: null, // the history search being shown
};

// ---------------------------------------------------------------- preferences

function loadPrefs() {
  const defaults = { time: "local", wrap: false, theme: "auto", stdout: true, stderr: true };
  try {
    return { ...defaults, ...JSON.parse(localStorage.getItem("streamlog") || "{}") };
  } catch {
    return defaults;
  }
}

function savePrefs() {
  try { localStorage.setItem("streamlog", JSON.stringify(prefs)); } catch { /* private mode */ }
}

function press(id, on) {
  $(id).setAttribute("aria-pressed", String(Boolean(on)));
}

function applyPrefs() {
  document.documentElement.dataset.theme = prefs.theme;
  $("theme").textContent = `theme: ${prefs.theme}`;
  $("time").textContent = `time: ${prefs.time}`;
  press("wrap", prefs.wrap);
  press("stdout", prefs.stdout);
  press("stderr", prefs.stderr);
  press("regex", state.filter.regex);
  press("case", state.filter.case);
  view.configure({ wrap: prefs.wrap, time: prefs.time, merged: state.subs.size > 1 });
}

// ---------------------------------------------------------------- status line

function setConnection(text, kind) {
  const element = $("connection");
  element.textContent = text;
  element.dataset.state = kind;
}

function notice(text) {
  $("notice").textContent = text || "";
  $("notice").hidden = !text;
}

function updateCounts() {
  const held = store.lines.length;
  const shown = store.shown.length;
  let text = `${numberFormat.format(held)} lines`;
  if (shown !== held) text += ` · ${numberFormat.format(shown)} shown`;
  if (!state.follow) text += " · paused";
  $("counts").textContent = text;
  const detached = [...state.subs.values()].some((sub) => !sub.attached);
  const button = $("new-lines");
  button.hidden = state.follow || (!detached && state.unseen === 0);
  button.textContent = detached
    ? "newer lines below — jump to live ↓"
    : `${numberFormat.format(state.unseen)} new line${state.unseen === 1 ? "" : "s"} ↓`;
  press("pause", !state.follow);
  $("pause").textContent = state.follow ? "pause" : "resume";
}

// ---------------------------------------------------------------- processes

async function api(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (response.status === 401) {
    setConnection("not authorised — reload the page to sign in", "auth");
    throw new Error("not authorised");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

async function loadProcesses() {
  const { processes } = await api("/api/processes");
  state.processes = new Map(processes.map((p) => [p.name, p]));
  renderProcesses();
}

function uptime(info) {
  if (info.state !== "RUNNING" || !info.start) return "";
  let s = Math.max(0, Math.floor(Date.now() / 1000 - info.start));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const clock = `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  return d ? `${d}d ${clock}` : clock;
}

function describe(info) {
  const parts = [];
  if (info.pid) parts.push(`pid ${info.pid}`);
  const up = uptime(info);
  if (up) parts.push(`up ${up}`);
  if (info.state === "EXITED" || info.state === "BACKOFF" || info.state === "FATAL") {
    parts.push(`exit ${info.exitstatus}`);
  }
  if (!info.captured) parts.push("not captured");
  return parts.join(" · ");
}

function renderProcesses() {
  // Rebuilt on every state change: keep the keyboard focus where it was.
  const focused = document.activeElement;
  const inList = focused && $("processes").contains(focused);
  const refocus = inList ? [focused.closest("li").dataset.process, focused.className] : null;
  const needle = $("process-filter").value.trim().toLowerCase();
  const items = [];
  for (const info of state.processes.values()) {
    if (needle && !info.name.toLowerCase().includes(needle) && !info.state.toLowerCase().includes(needle)) continue;
    const li = document.createElement("li");
    li.dataset.process = info.name;
    li.className = info.captured ? "" : "uncaptured";
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open";
    open.setAttribute("aria-pressed", String(state.subs.has(info.name)));
    open.title = `Open ${info.name}`;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = info.name;
    const badge = document.createElement("span");
    badge.className = `state s-${info.state.toLowerCase()}`;
    badge.textContent = info.state;
    const detail = document.createElement("span");
    detail.className = "detail";
    detail.textContent = describe(info);
    open.append(name, badge, detail);
    open.addEventListener("click", (event) => {
      if (event.ctrlKey || event.metaKey || event.shiftKey) toggleProcess(info.name);
      else openProcesses([info.name]);
    });
    const add = document.createElement("button");
    add.type = "button";
    add.className = "add";
    add.textContent = state.subs.has(info.name) ? "−" : "+";
    add.setAttribute("aria-label", `${state.subs.has(info.name) ? "Remove" : "Add"} ${info.name} ${state.subs.has(info.name) ? "from" : "to"} the view`);
    add.addEventListener("click", () => toggleProcess(info.name));
    li.append(open, add);
    items.push(li);
  }
  $("processes").replaceChildren(...items);
  if (refocus) {
    const li = [...$("processes").children].find((item) => item.dataset.process === refocus[0]);
    const button = li && li.querySelector(`button.${refocus[1]}`);
    if (button) button.focus();
  }
}

function tickUptimes() {
  for (const li of $("processes").children) {
    const info = state.processes.get(li.dataset.process);
    const detail = li.querySelector(".detail");
    if (info && detail && info.state === "RUNNING") detail.textContent = describe(info);
  }
}

// ---------------------------------------------------------------- opening

class Sub {
  constructor(name) {
    this.name = name;
    this.cursor = null; // live position: everything before it was received
    this.attached = false; // receiving live records
    this.first = null; // offset of the oldest record held (older: history)
    this.hasBefore = true;
    this.last = null; // end of the newest record held while detached
    this.hasAfter = false;
    this.uncaptured = false; // shown from supervisord's own files (no times)
    this.waiting = false; // subscribed, answer not yet seen: frames before it are old
    this.answered = false; // a subscription of it was answered at least once
    this.epoch = 0; // bumped at each reset: offsets start again
  }
}

/** Whether a process is shown from supervisord's own files (no times to seek by). */
function untimed(sub) {
  const info = state.processes.get(sub.name);
  return sub.uncaptured || Boolean(info && info.uncaptured);
}

function openProcesses(names, options = {}) {
  for (const sub of state.subs.values()) unsubscribe(sub);
  state.generation++;
  state.loading = null;
  state.subs = new Map(names.map((name) => [name, new Sub(name)]));
  store.clear();
  state.unseen = 0;
  setFollow(true, null);
  closeResults();
  notice("");
  $("title").textContent = names.length ? names.join(" + ") : "choose a process";
  document.title = names.length ? `${names.join(" + ")} · streamlog` : "streamlog";
  applyPrefs();
  renderProcesses();
  renderDownloads();
  if (options.at) jumpTo({ time: options.at });
  else for (const sub of state.subs.values()) subscribe(sub, { tail: TAIL });
  saveUrl();
  schedule();
}

function toggleProcess(name) {
  const names = [...state.subs.keys()];
  const next = names.includes(name) ? names.filter((n) => n !== name) : [...names, name];
  const anchor = state.follow ? null : view.firstInView();
  openProcesses(next, anchor && anchor.time ? { at: anchor.time } : {});
}

function subscribe(sub, how) {
  sub.attached = true;
  sub.waiting = true;
  sub.hasAfter = false;
  send({ type: "subscribe", process: sub.name, ...how });
}

function unsubscribe(sub) {
  if (sub.attached) send({ type: "unsubscribe", process: sub.name });
  sub.attached = false;
}

function send(message) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify(message));
}

/** The name supervisord knows a process by: "app" is "app:app" when that exists. */
function canonical(name) {
  if (state.processes.has(name) || name.includes(":")) return name;
  return state.processes.has(`${name}:${name}`) ? `${name}:${name}` : name;
}

// ---------------------------------------------------------------- live connection

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws`);
  state.socket = socket;
  let opened = false;
  setConnection(state.connected ? "reconnecting…" : "connecting…", "connecting");
  socket.addEventListener("open", () => {
    opened = true;
    state.connected = true;
    state.retry = 500;
    setConnection("live", "live");
    for (const sub of state.subs.values()) {
      if (!sub.attached) continue;
      // Resume exactly where this page stands: no gap, no duplicate.
      subscribe(sub, sub.cursor === null ? { tail: TAIL } : { cursor: sub.cursor });
    }
    loadProcesses().catch(() => {});
  });
  socket.addEventListener("message", (event) => {
    // Positions are taken in at once (a reconnect resumes from them); the
    // records themselves wait for the next frame.
    const batch = receive(JSON.parse(event.data));
    if (batch) {
      state.inbox.push(batch);
      schedule();
    }
  });
  socket.addEventListener("close", () => {
    if (state.socket !== socket) return;
    state.socket = null;
    const wait = state.retry;
    state.retry = Math.min(state.retry * 2, 10000);
    setTimeout(connect, wait);
    diagnose(opened, wait);
  });
}

// Why the connection failed, for the status indicator.
async function diagnose(opened, wait) {
  const seconds = Math.round(wait / 100) / 10;
  try {
    const response = await fetch("/api/processes", { credentials: "same-origin" });
    if (response.status === 401) {
      setConnection("not authorised — reload the page to sign in", "auth");
      return;
    }
    setConnection(opened ? `connection lost — reconnecting in ${seconds} s` : `live updates refused (${response.ok ? "websocket" : response.status}) — retrying in ${seconds} s`, "down");
  } catch {
    setConnection(`sidecar unreachable — retrying in ${seconds} s`, "down");
  }
}

function schedule() {
  if (state.scheduled) return;
  state.scheduled = true;
  // Batched per animation frame; a hidden tab gets no frames, so a timer too
  // (cleared by the flush: one flush per batch, never two).
  requestAnimationFrame(flushScheduled);
  state.fallback = setTimeout(flushScheduled, 250);
}

function flushScheduled() {
  if (state.scheduled) flush();
}

function batch(sub, entries, close = false) {
  return { process: sub.name, entries, epoch: sub.epoch, generation: state.generation, close };
}

// A notice in the timeline; it also ends the process's unfinished lines.
function note(sub, text) {
  return batch(sub, [{ stream: "note", text, time: new Date().toISOString() }], true);
}

function receive(message) {
  const sub = message.process ? state.subs.get(message.process) : null;
  switch (message.type) {
    case "subscribed":
      if (!sub) return null;
      sub.waiting = false;
      if (sub.first === null || (sub.answered && sub.uncaptured !== Boolean(message.uncaptured))) {
        // Nothing held yet, or streamlog took over from supervisord's own
        // files: offsets are the new log's from here on.
        sub.first = message.cursor;
        sub.hasBefore = true;
      }
      sub.answered = true;
      sub.uncaptured = Boolean(message.uncaptured);
      sub.cursor = message.cursor;
      return null;
    case "lines":
      if (!sub || !sub.attached || sub.waiting) return null;
      sub.cursor = message.cursor;
      return batch(sub, message.entries);
    case "skipped":
      if (!sub || !sub.attached || sub.waiting) return null;
      sub.cursor = message.to;
      return note(sub, message.reason === "deleted"
        ? `records ${message.from}–${message.to} were deleted by retention before they could be shown`
        : `this page fell behind: records ${message.from}–${message.to} were skipped (they are in the history and the download)`);
    case "reset":
      if (!sub || !sub.attached || sub.waiting) return null;
      // Offsets start again: what was before is not reachable by them any more.
      sub.cursor = message.cursor;
      sub.first = message.cursor;
      sub.hasBefore = false;
      sub.epoch++;
      return note(sub, sub.uncaptured
        ? "supervisord rotated or truncated this log file: what follows is the new file"
        : "the log file was truncated or replaced: what follows starts again");
    case "unsubscribed":
      // Unasked (ours are answered while the next subscription waits): the
      // server ended it -- supervisord no longer has an uncaptured process.
      if (!sub || !sub.attached || sub.waiting) return null;
      sub.attached = false;
      return note(sub, "supervisord no longer runs this process: no more live lines");
    case "state": {
      const info = state.processes.get(message.process);
      if (message.state === "REMOVED") state.processes.delete(message.process);
      else if (info) Object.assign(info, message);
      else loadProcesses().catch(() => {});
      renderProcesses();
      return null;
    }
    case "error":
      notice(`The sidecar refused a request: ${message.error}`);
      return null;
    default:
      return null;
  }
}

function flush() {
  state.scheduled = false;
  clearTimeout(state.fallback);
  const inbox = state.inbox;
  state.inbox = [];
  let added = 0;
  let shown = 0;
  for (const item of inbox) {
    if (item.generation !== state.generation) continue; // for a view since left
    if (item.close) store.closeProcess(item.process);
    const result = store.add(item.process, item.entries, store.pending, item.epoch);
    added += result.added;
    shown += result.shown;
    for (const line of result.changed) state.changed.push(line);
  }
  trim();
  if (!state.follow) state.unseen += shown;
  draw();
  if (added) updateCounts();
}

function draw() {
  const anchor = !state.follow && state.anchorNeeded ? view.anchor() : null;
  view.render(state.changed, state.follow);
  state.changed = [];
  if (anchor) view.restore(anchor);
  state.anchorNeeded = false;
}

// Past the retention limit (or the tallest page a browser scrolls, with long
// wrapped lines): drop the lines farthest from what is being read.
const MAX_HEIGHT = 30_000_000;

function trim() {
  const overflow = store.overflow;
  const tall = view.total > MAX_HEIGHT;
  if (overflow === 0 && !tall) return;
  let count = overflow + Math.floor(store.limit / 20); // in steps, not per line
  if (tall) count = Math.max(count, Math.ceil(store.lines.length / 10));
  const anchor = view.anchor();
  const middle = store.shown.length / 2;
  const reading = anchor ? store.shown.indexOf(anchor.line) : store.shown.length;
  if (state.follow || reading >= middle) {
    for (const line of store.drop(count, false)) {
      const sub = state.subs.get(line.process);
      if (sub && line.end !== null && line.epoch === sub.epoch) {
        sub.first = line.end;
        sub.hasBefore = true;
      }
    }
    if (!state.follow) view.restore(anchor);
  } else {
    // Reading old lines while new ones pour in: let the newest go, and stop
    // receiving them; they are a scroll (or "jump to live") away.
    const dropped = store.drop(count, true);
    for (const sub of state.subs.values()) {
      if (!sub.attached) continue;
      unsubscribe(sub);
      sub.hasAfter = true;
      sub.last = sub.cursor;
      // Records received but not yet added go too (trim may run between frames).
      state.inbox = state.inbox.filter((item) => item.process !== sub.name);
    }
    for (const line of dropped) {
      const sub = state.subs.get(line.process);
      if (sub && line.offset !== null && line.epoch === sub.epoch
          && (sub.last === null || line.offset < sub.last)) sub.last = line.offset;
    }
  }
}

// ---------------------------------------------------------------- history

function logUrl(name, query) {
  return `/api/log/${encodeURIComponent(name)}?${new URLSearchParams(query)}`;
}

/**
 * Pages of several processes, merged so the timeline has no hole: only records
 * up to the nearest page edge of a process that has more are kept.
 */
function mergePages(pages, backward) {
  let cut = null;
  const timed = (page) => page.entries.length > 0 && page.entries.every((e) => e.time);
  for (const { page } of pages) {
    const more = backward ? page.has_before : page.has_after;
    if (!more || !timed(page)) continue;
    const edge = timeKey((backward ? page.entries[0] : page.entries[page.entries.length - 1]).time);
    if (cut === null || (backward ? edge > cut : edge < cut)) cut = edge;
  }
  return pages.map(({ sub, page }) => {
    const kept = cut === null || state.subs.size === 1 || !timed(page) ? page.entries
      : page.entries.filter((e) => (backward ? timeKey(e.time) >= cut : timeKey(e.time) <= cut));
    const all = kept.length === page.entries.length;
    return { sub, page, kept, all };
  });
}

// One history read at a time; an answer for a view since left is dropped.
async function reading(what, work) {
  const token = { generation: state.generation };
  state.loading = token;
  try {
    const result = await work();
    if (state.loading === token) return result;
  } catch (error) {
    if (state.loading === token) notice(`Could not ${what}: ${error.message}`);
  } finally {
    if (state.loading === token) state.loading = null;
  }
  return null;
}

function page(sub, query) {
  return api(logUrl(sub.name, { limit: PAGE, ...query }));
}

async function loadOlder() {
  const subs = [...state.subs.values()].filter((sub) => sub.hasBefore && sub.first !== null);
  if (state.loading || subs.length === 0) return;
  const pages = await reading("load older lines", () => Promise.all(subs.map(async (sub) => ({
    sub, page: await page(sub, { cursor: sub.first, direction: "backward" }),
  }))));
  if (!pages) return;
  const anchor = view.anchor();
  const pending = new Map(); // the pages' own unfinished lines: they go on in what is held
  for (const { sub, page: found, kept, all } of mergePages(pages, true)) {
    sub.first = all ? found.start : kept.length ? kept[0].offset : sub.first;
    sub.hasBefore = found.has_before || !all;
    if (kept.length) store.add(sub.name, keyUntimed(sub.name, kept), pending, sub.epoch);
  }
  store.joinEdge(pending);
  trim();
  view.render([], false);
  view.restore(anchor);
  updateCounts();
}

// Records without a time (uncaptured processes) read from history go just
// before the oldest line held of their process, in their order.
function keyUntimed(process, entries) {
  if (entries.every((e) => e.time)) return entries;
  const oldest = store.lines.find((line) => line.process === process);
  const base = oldest ? oldest.key : store.newest + entries.length + 1;
  return entries.map((e, i) => (e.time ? e : { ...e, key: base - (entries.length - i) }));
}

async function loadNewer() {
  const subs = [...state.subs.values()].filter((sub) => !sub.attached && sub.hasAfter);
  if (state.loading || subs.length === 0) return;
  const pages = await reading("load newer lines", () => Promise.all(subs.map(async (sub) => ({
    sub, page: await page(sub, { cursor: sub.last, direction: "forward" }),
  }))));
  if (!pages) return;
  for (const { sub, page: found, kept, all } of mergePages(pages, false)) {
    sub.last = all ? found.end : kept.length ? kept[kept.length - 1].end : sub.last;
    sub.hasAfter = found.has_after || !all;
    if (kept.length) store.add(sub.name, kept, store.pending, sub.epoch);
  }
  for (const sub of subs) {
    if (!sub.hasAfter) {
      sub.cursor = sub.last;
      subscribe(sub, { cursor: sub.last }); // caught up: live from here
    }
  }
  state.anchorNeeded = true;
  trim();
  draw();
  updateCounts();
}

// The pages before and after a target in one process's log: at the target's
// offset in its own process, at its time in the others; a process without
// times (or a target without one) shows its newest lines, live.
async function around(sub, target) {
  let after;
  if (sub.name === target.process) {
    after = await page(sub, { cursor: target.offset, direction: "forward" });
  } else if (target.time && !untimed(sub)) {
    after = await page(sub, { time: target.time, direction: "forward" });
  } else {
    const tail = await page(sub, { direction: "backward" });
    return { sub, before: tail, after: { entries: [], start: tail.end, end: tail.end, has_after: false } };
  }
  const before = await page(sub, { cursor: after.start, direction: "backward" });
  return { sub, before, after };
}

/**
 * Show the records around a target -- {time} or {process, offset, time} --
 * paused there.
 */
async function jumpTo(target) {
  const subs = [...state.subs.values()];
  if (subs.length === 0) return;
  setFollow(false, "jump");
  const pages = await reading("jump there", () => Promise.all(subs.map((sub) => around(sub, target))));
  if (!pages) return;
  for (const sub of subs) unsubscribe(sub);
  state.generation++; // records queued until now belong to the view left
  store.clear();
  state.unseen = 0;
  const older = mergePages(pages.map(({ sub, before }) => ({ sub, page: before })), true);
  const newer = mergePages(pages.map(({ sub, after }) => ({ sub, page: after })), false);
  for (const { sub, page: found, kept, all } of newer) {
    sub.last = all ? found.end : kept.length ? kept[kept.length - 1].end : found.start;
    sub.hasAfter = found.has_after || !all;
    store.add(sub.name, kept, store.pending, sub.epoch);
    if (!sub.hasAfter) {
      sub.cursor = sub.last;
      subscribe(sub, { cursor: sub.last });
    }
  }
  const pending = new Map(); // the older pages' unfinished lines go on in the newer ones
  for (const { sub, page: found, kept, all } of older) {
    sub.first = all ? found.start : kept.length ? kept[0].offset : found.end;
    sub.hasBefore = found.has_before || !all;
    store.add(sub.name, keyUntimed(sub.name, kept), pending, sub.epoch);
  }
  store.joinEdge(pending);
  view.render([], false);
  const key = target.time ? timeKey(target.time) : null;
  const line = store.shown.find((l) => (target.process !== undefined
    ? l.process === target.process && l.offset !== null && l.end > target.offset
    : l.timed && l.key >= key));
  if (line) {
    view.scrollToLine(line);
    flash(line);
  }
  draw();
  updateCounts();
  saveUrl();
}

function flash(line) {
  setTimeout(() => {
    const row = [...$("log").querySelectorAll(".row")].find((r) => store.shown[Number(r.dataset.index)] === line);
    if (row) row.classList.add("flash");
  }, 50);
}

// ---------------------------------------------------------------- following

function setFollow(on, reason) {
  state.follow = on;
  state.pausedBy = on ? null : reason;
  if (on) state.unseen = 0;
  updateCounts();
}

function goLive() {
  const detached = [...state.subs.values()].some((sub) => !sub.attached);
  if (detached) { openProcesses([...state.subs.keys()]); return; }
  setFollow(true, null);
  view.scrollToBottom();
  draw();
  saveUrl();
}

function togglePause() {
  if (state.follow) setFollow(false, "you");
  else goLive();
  saveUrl();
}

function onScroll() {
  const s = $("log");
  if (state.follow && !view.atBottom(view.lineHeight)) {
    setFollow(false, "scroll"); // the scrollbar, a key, a touch: anything that moved up
  } else if (!state.follow && state.pausedBy === "scroll" && view.atBottom(2)
             && [...state.subs.values()].every((sub) => sub.attached)) {
    setFollow(true, null); // scrolled back down to the newest line
  }
  if (s.scrollTop < NEAR) loadOlder();
  if (s.scrollHeight - s.scrollTop - s.clientHeight < NEAR) loadNewer();
  draw();
  saveUrlSoon();
}

// ---------------------------------------------------------------- filter

function applyFilter() {
  let matcher = null;
  try {
    matcher = makeMatcher(state.filter);
    $("filter").setCustomValidity("");
    $("filter").removeAttribute("aria-invalid");
  } catch (error) {
    $("filter").setCustomValidity(error.message);
    $("filter").setAttribute("aria-invalid", "true");
    $("filter").title = error.message;
    return;
  }
  $("filter").title = "";
  const anchor = state.follow ? null : view.anchor();
  store.setFilter(matcher, { stdout: prefs.stdout, stderr: prefs.stderr });
  view.configure({ matcher });
  if (state.follow) view.scrollToBottom();
  else if (anchor) view.scrollToNearest(anchor); // stay where the reader was
  draw();
  updateCounts();
  saveUrlSoon();
}

// ---------------------------------------------------------------- search across history

function closeResults() {
  $("results").hidden = true;
  state.search = null;
}

async function searchHistory(more = false) {
  const q = state.filter.q;
  if (!q || state.subs.size === 0) { $("filter").focus(); return; }
  if (!more) {
    state.search = { q, subs: [...state.subs.keys()].map((name) => ({ name, next: undefined, done: false })) };
    $("results-list").replaceChildren();
  }
  const search = state.search;
  $("results").hidden = false;
  $("results-title").textContent = `searching “${q}”…`;
  try {
    for (const item of search.subs) {
      if (item.done) continue;
      const query = { q, limit: 100, regex: state.filter.regex ? 1 : 0, case: state.filter.case ? 1 : 0 };
      if (item.next !== undefined) query.cursor = item.next;
      const found = await api(logUrl(item.name, query));
      if (state.search !== search) return;
      item.next = found.next;
      item.done = found.next === null || found.next === undefined;
      for (const entry of found.entries.slice().reverse()) $("results-list").append(result(item.name, entry));
    }
  } catch (error) {
    $("results-title").textContent = `search failed: ${error.message}`;
    return;
  }
  const count = $("results-list").childElementCount;
  $("results-title").textContent = `${count} match${count === 1 ? "" : "es"} for “${q}”`;
  $("results-more").hidden = search.subs.every((item) => item.done);
}

function result(process, entry) {
  const li = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  const where = document.createElement("span");
  where.className = "where";
  const line = { key: timeKey(entry.time) };
  where.textContent = `${state.subs.size > 1 ? `${process} · ` : ""}${fullTime(line, prefs.time === "utc")}`;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = entry.text.length > 300 ? `${entry.text.slice(0, 300)}…` : entry.text;
  button.append(where, text);
  button.addEventListener("click", () => jumpTo({ process, offset: entry.offset, time: entry.time }));
  li.append(button);
  return li;
}

// ---------------------------------------------------------------- download

function renderDownloads() {
  const links = [...state.subs.keys()].map((name) => {
    const a = document.createElement("a");
    a.href = `/api/log/${encodeURIComponent(name)}/download`;
    a.textContent = `whole log of ${name}`;
    a.setAttribute("download", "");
    return a;
  });
  $("download-links").replaceChildren(...links);
}

function downloadShown() {
  const utc = prefs.time === "utc";
  const merged = state.subs.size > 1;
  const text = store.shown.map((line) => `${fullTime(line, utc)} ${merged ? `${line.process} ` : ""}${line.stream} ${line.plain}`).join("\n");
  const blob = new Blob([text, "\n"], { type: "text/plain;charset=utf-8" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `${[...state.subs.keys()].join("+").replace(/[^\w.+-]+/g, "_") || "streamlog"}.log`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  $("download").open = false;
}

// ---------------------------------------------------------------- URL

function saveUrl() {
  const query = new URLSearchParams();
  for (const name of state.subs.keys()) query.append("process", name);
  if (state.filter.q) query.set("q", state.filter.q);
  if (state.filter.regex) query.set("re", "1");
  if (state.filter.case) query.set("case", "1");
  if (!state.follow) {
    const line = view.firstInView();
    if (line && line.time) query.set("at", line.time);
  }
  const search = query.toString();
  history.replaceState(null, "", search ? `?${search}` : location.pathname);
}

let urlTimer = 0;
function saveUrlSoon() {
  clearTimeout(urlTimer);
  urlTimer = setTimeout(saveUrl, 300);
}

// ---------------------------------------------------------------- controls

function bind() {
  $("log").addEventListener("scroll", onScroll, { passive: true });
  $("log").addEventListener("wheel", (event) => { if (event.deltaY < 0 && state.follow) setFollow(false, "scroll"); }, { passive: true });
  $("log").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const line = view.lineOf(button);
    if (!line) return;
    if (button.dataset.action === "expand") {
      line.expanded = !line.expanded;
      line.height = 0;
      view.relayout();
      draw();
    } else if (button.dataset.action === "copy") {
      navigator.clipboard.writeText(line.plain).then(
        () => { button.textContent = "copied"; },
        () => { button.textContent = "copy failed"; },
      );
    }
  });
  document.addEventListener("selectionchange", () => {
    const selection = document.getSelection();
    if (state.follow && selection && !selection.isCollapsed && $("log").contains(selection.anchorNode)) {
      setFollow(false, "selection");
    }
  });
  $("pause").addEventListener("click", togglePause);
  $("new-lines").addEventListener("click", goLive);
  $("filter").value = state.filter.q;
  $("filter").addEventListener("input", () => { state.filter.q = $("filter").value; applyFilterSoon(); });
  $("filter").addEventListener("keydown", (event) => {
    if (event.key === "Enter") searchHistory();
  });
  $("regex").addEventListener("click", () => { state.filter.regex = !state.filter.regex; press("regex", state.filter.regex); applyFilter(); });
  $("case").addEventListener("click", () => { state.filter.case = !state.filter.case; press("case", state.filter.case); applyFilter(); });
  $("search").addEventListener("click", () => searchHistory());
  $("results-more").addEventListener("click", () => searchHistory(true));
  $("results-close").addEventListener("click", closeResults);
  for (const stream of ["stdout", "stderr"]) {
    $(stream).addEventListener("click", () => toggleStream(stream));
  }
  $("time").addEventListener("click", cycleTime);
  $("wrap").addEventListener("click", toggleWrap);
  $("theme").addEventListener("click", () => {
    prefs.theme = { auto: "light", light: "dark", dark: "auto" }[prefs.theme] || "auto";
    savePrefs();
    applyPrefs();
    draw();
  });
  $("jump").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("jump-time").value;
    if (!value) return;
    const moment = prefs.time === "utc" ? new Date(`${value}Z`) : new Date(value);
    if (Number.isNaN(moment.getTime())) return;
    jumpTo({ time: moment.toISOString() });
  });
  $("download-shown").addEventListener("click", downloadShown);
  $("process-filter").addEventListener("input", renderProcesses);
  $("help-button").addEventListener("click", () => $("help").showModal());
  $("help-close").addEventListener("click", () => $("help").close());
  document.addEventListener("keydown", onKey);
  window.addEventListener("resize", () => { view.relayout(); if (state.follow) view.scrollToBottom(); draw(); });
}

let filterTimer = 0;
function applyFilterSoon() {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(applyFilter, 120);
}

function toggleStream(stream) {
  prefs[stream] = !prefs[stream];
  savePrefs();
  press(stream, prefs[stream]);
  applyFilter();
}

function cycleTime() {
  prefs.time = { local: "utc", utc: "off", off: "local" }[prefs.time] || "local";
  savePrefs();
  applyPrefs();
  draw();
}

function toggleWrap() {
  const anchor = view.anchor();
  prefs.wrap = !prefs.wrap;
  savePrefs();
  applyPrefs();
  view.render([], false);
  if (state.follow) view.scrollToBottom(); else view.restore(anchor);
  draw();
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const typing = event.target.closest && event.target.closest("input, textarea, select");
  if (event.key === "Escape") {
    if (typing && event.target.id === "filter") { $("filter").value = ""; state.filter.q = ""; applyFilter(); }
    if (typing) event.target.blur();
    closeResults();
    $("download").open = false;
    return;
  }
  if (typing || $("help").open) return;
  const actions = {
    "/": () => $("filter").focus(),
    p: togglePause,
    End: goLive,
    G: goLive,
    Home: () => { setFollow(false, "scroll"); view.scrollTo(0); draw(); },
    g: () => { setFollow(false, "scroll"); view.scrollTo(0); draw(); },
    s: () => searchHistory(),
    j: () => $("jump-time").focus(),
    o: () => toggleStream("stdout"),
    e: () => toggleStream("stderr"),
    t: cycleTime,
    w: toggleWrap,
    d: downloadShown,
    l: () => $("process-filter").focus(),
    "?": () => $("help").showModal(),
  };
  const action = actions[event.key];
  if (!action) return;
  event.preventDefault();
  action();
}

// ---------------------------------------------------------------- start

async function start() {
  bind();
  applyPrefs();
  store.setFilter(makeMatcher(state.filter), { stdout: prefs.stdout, stderr: prefs.stderr });
  view.configure({ matcher: store.matcher });
  try {
    await loadProcesses();
  } catch (error) {
    notice(`Could not list processes: ${error.message}`);
  }
  const asked = params.getAll("process").filter(Boolean).map(canonical);
  if (asked.length) openProcesses(asked, params.get("at") ? { at: params.get("at") } : {});
  else updateCounts();
  connect();
  setInterval(tickUptimes, 1000);
}

// Read by tests and benchmarks: how much is held, and what is in the DOM.
window.streamlog = { store, view, state };
start();
