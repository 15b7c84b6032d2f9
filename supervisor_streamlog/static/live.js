// The live connection: one WebSocket to the sidecar, reconnected with backoff,
// the subscriptions of the open processes over it, and what its messages mean
// for each process's position. Records come out as batches for the frame loop.
// Protocol: docs/protocol.md.

import { setConnection } from "./status.js";

export const TAIL = 1000; // records asked for when a process is opened

export class Connection {
  /**
   * `session`: the open processes (their Subs are updated here) and the
   * generation a batch belongs to. Handlers: `batch(b)` records to add at the
   * next frame; `opened()` after each (re)connection; `state(message)` a
   * process changed state; `refused(text)` the sidecar refused a request.
   */
  constructor(session, { batch, opened, state, refused }) {
    this.session = session;
    this.handlers = { batch, opened, state, refused };
    this.socket = null; // the current WebSocket (null between a close and the retry)
    this.connected = false; // connected at least once: a new attempt is a reconnection
    this.retry = 500; // ms before the next attempt; doubles up to 10 s, reset when open
  }

  connect() {
    const session = this.session;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws`);
    this.socket = socket;
    let opened = false;
    setConnection(this.connected ? "reconnecting…" : "connecting…", "connecting");
    socket.addEventListener("open", () => {
      opened = true;
      this.connected = true;
      this.retry = 500;
      setConnection("live", "live");
      for (const sub of session.subs.values()) {
        if (!sub.attached) continue;
        // Resume exactly where this page stands: no gap, no duplicate.
        this.subscribe(sub, sub.cursor === null ? { tail: TAIL } : { cursor: sub.cursor });
      }
      this.handlers.opened();
    });
    socket.addEventListener("message", (event) => {
      // Positions are taken in at once (a reconnect resumes from them); the
      // records themselves wait for the next frame.
      const batch = this.receive(JSON.parse(event.data));
      if (batch) this.handlers.batch(batch);
    });
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.socket = null;
      const wait = this.retry;
      this.retry = Math.min(this.retry * 2, 10000);
      setTimeout(() => this.connect(), wait);
      diagnose(opened, wait);
    });
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  /** Receive a process's live records; `how`: {tail: N} or {cursor: position}. */
  subscribe(sub, how) {
    sub.attached = true;
    sub.waiting = true;
    sub.hasAfter = false;
    this.send({ type: "subscribe", process: sub.name, ...how });
  }

  unsubscribe(sub) {
    if (sub.attached) this.send({ type: "unsubscribe", process: sub.name });
    sub.attached = false;
  }

  batch(sub, entries, close = false) {
    return { process: sub.name, entries, epoch: sub.epoch, generation: this.session.generation, close };
  }

  // A notice in the timeline; it also ends the process's unfinished lines.
  note(sub, text) {
    return this.batch(sub, [{ stream: "note", text, time: new Date().toISOString() }], true);
  }

  /** Take in one message; the records it brings, as a batch, or null. */
  receive(message) {
    const sub = message.process ? this.session.subs.get(message.process) : null;
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
        return this.batch(sub, message.entries);
      case "skipped":
        if (!sub || !sub.attached || sub.waiting) return null;
        sub.cursor = message.to;
        return this.note(sub, message.reason === "deleted"
          ? `records ${message.from}–${message.to} were deleted by retention before they could be shown`
          : `this page fell behind: records ${message.from}–${message.to} were skipped (they are in the history and the download)`);
      case "reset":
        if (!sub || !sub.attached || sub.waiting) return null;
        // Offsets start again: what was before is not reachable by them any more.
        sub.cursor = message.cursor;
        sub.first = message.cursor;
        sub.hasBefore = false;
        sub.epoch++;
        return this.note(sub, sub.uncaptured
          ? "supervisord rotated or truncated this log file: what follows is the new file"
          : "the log file was truncated or replaced: what follows starts again");
      case "unsubscribed":
        // Unasked (ours are answered while the next subscription waits): the
        // server ended it -- supervisord no longer has an uncaptured process.
        if (!sub || !sub.attached || sub.waiting) return null;
        sub.attached = false;
        return this.note(sub, "supervisord no longer runs this process: no more live lines");
      case "state":
        this.handlers.state(message);
        return null;
      case "error":
        this.handlers.refused(message.error);
        return null;
      default:
        return null;
    }
  }
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
