// The streamlog tail page (minimal): processes, one live log, follow, reconnect.
// Log text is only ever inserted with textContent: log lines are hostile input.

const $ = (id) => document.getElementById(id);
const MAX_LINES = 5000;

let socket = null;
let current = new URLSearchParams(location.search).get("process");
let cursor = null;
let retry = 500;
let fresh = false;

function setConnection(text, down) {
  $("connection").textContent = text;
  $("connection").classList.toggle("down", Boolean(down));
}

async function loadProcesses() {
  const response = await fetch("/api/processes", { credentials: "same-origin" });
  if (response.status === 401) { setConnection("not authorised", true); return; }
  const { processes } = await response.json();
  const list = $("processes");
  list.replaceChildren();
  for (const item of processes) {
    const li = document.createElement("li");
    li.setAttribute("role", "option");
    li.dataset.process = item.name;
    li.setAttribute("aria-selected", String(item.name === current));
    const name = document.createElement("span");
    name.textContent = item.name;
    const state = document.createElement("span");
    state.className = "state";
    state.textContent = item.captured ? item.state : `${item.state} (not captured)`;
    li.append(name, state);
    li.addEventListener("click", () => open(item.name));
    list.append(li);
  }
}

function open(name) {
  current = name;
  cursor = null;
  history.replaceState(null, "", `?process=${encodeURIComponent(name)}`);
  $("title").textContent = name;
  $("log").replaceChildren();
  open_rows = {};
  for (const li of $("processes").children) {
    li.setAttribute("aria-selected", String(li.dataset.process === name));
  }
  subscribe();
}

function subscribe() {
  if (!socket || socket.readyState !== WebSocket.OPEN || !current) return;
  const message = { type: "subscribe", process: current };
  if (cursor !== null) message.cursor = cursor; else message.tail = 500;
  fresh = cursor === null; // a fresh view replaces what is shown when confirmed
  socket.send(JSON.stringify(message));
}

// The row still waiting for the rest of its line, per stream: a record marked
// partial (no newline followed it) is continued by the next one of its stream.
let open_rows = {};

function addLines(entries) {
  const log = $("log");
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
  const fragment = document.createDocumentFragment();
  for (const entry of entries) {
    if (entry.stream === "status") open_rows = {}; // an exit ends unfinished lines
    const pending = open_rows[entry.stream];
    if (pending) {
      pending.textContent += entry.text;
    } else {
      const row = document.createElement("div");
      row.className = `line ${entry.stream}`;
      const time = document.createElement("span");
      time.className = "time";
      time.textContent = entry.time.slice(11, 23);
      const text = document.createElement("span");
      text.className = "text";
      text.textContent = entry.text;
      row.append(time, text);
      fragment.append(row);
      open_rows[entry.stream] = text;
    }
    if (!entry.partial) delete open_rows[entry.stream];
  }
  log.append(fragment);
  while (log.childElementCount > MAX_LINES) log.firstElementChild.remove();
  if ($("follow").checked && atBottom) log.scrollTop = log.scrollHeight;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws`);
  setConnection("connecting…");
  socket.addEventListener("open", () => { retry = 500; setConnection("live"); subscribe(); });
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "subscribed") {
      current = message.process; // the canonical group:name of what was asked
      if (fresh) { $("log").replaceChildren(); open_rows = {}; }
      fresh = false;
      for (const li of $("processes").children) {
        li.setAttribute("aria-selected", String(li.dataset.process === current));
      }
    } else if (message.type === "lines" && message.process === current) {
      addLines(message.entries);
      cursor = message.cursor;
    } else if (message.type === "skipped" && message.process === current) {
      addLines([{ time: "", stream: "status",
                  text: `… skipped bytes ${message.from}–${message.to} (too slow to keep up)` }]);
      cursor = message.to;
    } else if (message.type === "state") {
      loadProcesses();
    }
  });
  socket.addEventListener("close", () => {
    setConnection("disconnected — retrying", true);
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  });
}

if (current) open(current);
loadProcesses();
connect();
