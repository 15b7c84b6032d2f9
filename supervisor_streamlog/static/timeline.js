// The volume timeline above the lines: records per time bucket for the
// processes in view, stdout and stderr stacked, error-level lines (the
// sidecar reads them by levels.js's rules) as a cap on the bar with a diamond
// above it, unexpected exits as a triangle and a rule, the window being read
// outlined. A click, or a drag let go, jumps there (the
// history loads around that time). Counts come from the sidecar's
// /api/log/NAME/histogram (docs/protocol.md); records that arrive live are
// counted into the newest bucket as they come -- one comparison and one
// integer increment per record, never DOM work -- and drawn a few times a
// second at most. The counts drawn are in the canvas's data-counts, the
// buckets given an error mark in its data-error-marks (tests). Error-level
// lines that arrive live are counted once the frame loop has read their level
// (levels(): two comparisons per new line).

import { api } from "./api.js";

const STEP = 250; // ms between two looks at what changed (draws happen only then)
const BAR = 4; // pixels per bucket, about
const HEADROOM = 0.05; // of the span, room on the right for what comes live
const REFRESH = 60_000; // ms: counts taken again from the sidecar (what live missed)
const STREAMS = ["stdout", "stderr", "status", "exits", "errors"];
const HELD = 5000; // live batches kept while an answer is on its way, at most

/** The URL of a process's histogram. */
export function histogramUrl(name, query) {
  return `/api/log/${encodeURIComponent(name)}/histogram?${new URLSearchParams(query)}`;
}

/** Sum the per-process answers (same since, until, buckets) into one set of columns. */
export function sumAnswers(answers, buckets) {
  const sums = {};
  for (const stream of STREAMS) sums[stream] = new Array(buckets).fill(0);
  const exits = [];
  for (const answer of answers) {
    for (const stream of STREAMS) {
      const column = answer[stream];
      for (let i = 0; i < buckets; i++) sums[stream][i] += column[i];
    }
    exits.push(...answer.exit_times);
  }
  exits.sort((a, b) => a - b);
  return { ...sums, exitTimes: exits };
}

export class Timeline {
  /**
   * `box`: the element to draw in (index.html's #timeline). `session`: the
   * processes in view. `view`, `store`: which lines are in view (the
   * outline). `untimed(sub)`: a process without times (no histogram);
   * `listed()`: whether the process list is known (which processes have times).
   * `jump(isoTime)`: load the history there.
   */
  constructor(box, { session, view, store, untimed, listed, jump }) {
    this.box = box;
    this.session = session;
    this.view = view;
    this.store = store;
    this.untimed = untimed;
    this.listed = listed;
    this.jump = jump;
    this.canvas = document.createElement("canvas");
    this.canvas.id = "timeline-canvas";
    this.canvas.setAttribute("role", "img");
    this.canvas.tabIndex = -1;
    this.legend = document.createElement("div");
    this.legend.className = "timeline-legend";
    this.keys = {};
    for (const [name, label] of [["stdout", "stdout"], ["stderr", "stderr"], ["error", "◆ error"], ["exit", "▲ exit"], ["window", "in view"]]) {
      const key = document.createElement("span");
      key.className = `tl-${name}`;
      key.textContent = label;
      this.keys[name] = key;
      this.legend.append(key);
    }
    box.replaceChildren(this.canvas, this.legend);
    this.data = null; // {since, until, buckets, width, stdout, stderr, status, exits, errors, exitTimes}
    this.counted = new Map(); // process -> offset from which live records are counted
    this.token = 0; // the open() an answer belongs to
    this.dirty = false; // counts changed since the last draw
    this.drawn = ""; // what the last draw showed (outline, size, theme): redraw when it changes
    this.drag = null; // the x a pointer is dragging at
    this.fetched = 0; // Date.now() of the last answer
    this.held = null; // while an answer is on its way: the live batches since it was asked
    this.errorsFrom = new Map(); // process -> offset from which live error-level lines are counted
    this.heldLines = null; // while an answer is on its way: the new lines the frame loop read
    this.bind();
    setInterval(() => this.tick(), STEP);
  }

  bind() {
    const canvas = this.canvas;
    const at = (event) => Math.max(0, Math.min(event.offsetX, canvas.clientWidth));
    canvas.addEventListener("pointerdown", (event) => {
      if (!this.data || event.button !== 0) return;
      canvas.setPointerCapture(event.pointerId);
      this.drag = at(event);
      this.draw();
    });
    canvas.addEventListener("pointermove", (event) => {
      if (this.drag === null) return;
      this.drag = at(event);
      this.draw();
    });
    canvas.addEventListener("pointerup", (event) => {
      if (this.drag === null) return;
      const x = at(event);
      this.drag = null;
      this.jumpAt(x);
    });
    canvas.addEventListener("pointercancel", () => { this.drag = null; this.draw(); });
    new ResizeObserver(() => {
      const wanted = this.bucketsWanted();
      if (this.data && Math.abs(wanted - this.data.buckets) > this.data.buckets / 4) this.load();
      else this.draw();
    }).observe(this.box);
  }

  /** The time at x pixels from the left, as the history's time jump takes it. */
  timeAt(x) {
    const { since, until } = this.data;
    const seconds = since + (x / Math.max(1, this.canvas.clientWidth)) * (until - since);
    return new Date(seconds * 1000).toISOString();
  }

  jumpAt(x) {
    if (!this.data) return;
    const time = this.timeAt(x);
    this.canvas.dataset.jumped = time;
    this.draw();
    this.jump(time);
  }

  bucketsWanted() {
    return Math.max(10, Math.min(2000, Math.floor((this.canvas.clientWidth || 600) / BAR)));
  }

  /** The processes in view changed: take their counts again. */
  open() {
    this.data = null;
    this.counted.clear();
    this.errorsFrom.clear();
    this.load();
  }

  timed() {
    return [...this.session.subs.values()].filter((sub) => !this.untimed(sub));
  }

  /** Ask the sidecar: each process's span first, then the counts over the whole of it. */
  async load() {
    const token = ++this.token;
    if (!this.listed()) {
      // The page opens before the process list comes: ask once it tells which have times.
      setTimeout(() => { if (token === this.token) this.load(); }, STEP);
      return;
    }
    let subs = this.timed();
    this.held = [];
    this.heldLines = [];
    this.box.hidden = subs.length === 0;
    if (subs.length === 0) { this.data = null; this.held = null; this.heldLines = null; return; }
    try {
      // A process the sidecar has no counts for (no timestamps: its kind may not
      // be known yet when the view opens) is left out, not the whole timeline.
      const asked = await Promise.all(subs.map((sub) => api(histogramUrl(sub.name, { buckets: 1 })).catch((error) => error)));
      if (token !== this.token) return;
      const spans = asked.filter((span) => !(span instanceof Error));
      subs = subs.filter((_, i) => !(asked[i] instanceof Error));
      if (subs.length === 0) {
        this.box.hidden = true; // shown again once an answer comes (tried at the next refresh)
        throw asked[0];
      }
      const now = Date.now() / 1000;
      const firsts = spans.map((s) => s.first).filter((t) => t !== null);
      const newest = Math.max(now, ...spans.map((s) => s.until));
      const oldest = firsts.length ? Math.min(...firsts) : newest - 60;
      const span = Math.max(newest - oldest, 10);
      const since = Math.floor(oldest);
      const until = Math.ceil(newest + Math.max(span * HEADROOM, 5));
      const buckets = this.bucketsWanted();
      const answers = await Promise.all(subs.map((sub) => api(histogramUrl(sub.name, { since, until, buckets }))));
      if (token !== this.token) return;
      this.counted = new Map(subs.map((sub, i) => [sub.name, answers[i].cursor]));
      this.errorsFrom = new Map(this.counted);
      this.data = { since, until, buckets, width: (until - since) / buckets, ...sumAnswers(answers, buckets) };
      this.fetched = Date.now();
      this.dirty = true;
      // What arrived while the answer was on its way, past its cursors: count it now.
      const held = this.held;
      this.held = null;
      for (const batch of held) this.count(batch);
      const heldLines = this.heldLines;
      this.heldLines = null;
      for (const [process, lines] of heldLines) this.levels(process, lines);
      delete this.box.dataset.error;
    } catch (error) {
      if (token !== this.token) return;
      this.held = null;
      this.heldLines = null;
      this.box.dataset.error = error.message; // tried again at the next refresh
      this.fetched = Date.now();
    }
  }

  /**
   * Live records of a process (a batch for the frame loop): those not yet
   * counted go into the bucket of now. One comparison and one increment each.
   */
  count(batch) {
    if (this.held !== null) {
      this.held.push(batch); // one push per batch, not per record
      if (this.held.length > HELD) this.held.shift();
    }
    const data = this.data;
    if (data === null) return;
    let from = this.counted.get(batch.process);
    if (from === undefined) return;
    const bucket = Math.floor((Date.now() / 1000 - data.since) / data.width);
    if (bucket < 0 || bucket >= data.buckets) return;
    for (const entry of batch.entries) {
      if (entry.offset < from) continue;
      from = entry.end;
      const column = data[entry.stream];
      if (column === undefined) continue;
      column[bucket]++;
      if (entry.stream === "status" && entry.text.startsWith("EXITED ") && / expected=false(?: |$)/.test(entry.text)) {
        data.exits[bucket]++;
        data.exitTimes.push(Date.now() / 1000);
      }
    }
    this.counted.set(batch.process, from);
    this.dirty = true;
  }

  /**
   * New live lines of a process, their levels read (the frame loop, once per
   * batch): the error-level ones not yet counted go into the bucket of now. A
   * line split into pieces counts by its first piece, as the sidecar counts it.
   */
  levels(process, lines) {
    if (this.heldLines !== null) {
      this.heldLines.push([process, lines]);
      if (this.heldLines.length > HELD) this.heldLines.shift();
    }
    const data = this.data;
    if (data === null) return;
    let from = this.errorsFrom.get(process);
    if (from === undefined) return;
    const bucket = Math.floor((Date.now() / 1000 - data.since) / data.width);
    if (bucket < 0 || bucket >= data.buckets) return;
    for (const line of lines) {
      if (line.level !== "error" && line.level !== "fatal") continue;
      if (line.offset === null || line.offset < from) continue;
      from = line.end;
      data.errors[bucket]++;
      this.dirty = true;
    }
    this.errorsFrom.set(process, from);
  }

  // A few times a second: follow time on, and draw if anything changed.
  tick() {
    const data = this.data;
    const failed = data === null && this.box.dataset.error !== undefined;
    if ((data !== null && Date.now() / 1000 >= data.until) || ((data !== null || failed) && Date.now() - this.fetched > REFRESH)) {
      this.fetched = Date.now(); // once, until the answer comes
      this.load();
    }
    if (this.dirty || this.state() !== this.drawn) this.draw();
  }

  // What the picture depends on besides the counts.
  state() {
    const window = this.window();
    const dark = matchMedia("(prefers-color-scheme: dark)").matches;
    return `${window ? window.join(",") : ""}|${this.canvas.clientWidth}|${document.documentElement.dataset.theme}|${dark}`;
  }

  /** The times (s) of the first and the last line in view, or null. */
  window() {
    const { view, store } = this;
    const shown = store.shown;
    if (shown.length === 0) return null;
    const s = view.scroller;
    view.ensureTops();
    const first = shown[view.indexAt(s.scrollTop)];
    const last = shown[view.indexAt(s.scrollTop + Math.max(0, s.clientHeight - 1))];
    if (!first || !last || !first.timed || !last.timed) return null;
    return [first.key / 1e6, last.key / 1e6];
  }

  draw() {
    this.dirty = false;
    this.drawn = this.state();
    const canvas = this.canvas;
    const data = this.data;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    if (data === null || width === 0) return;
    const colour = (name) => getComputedStyle(this.keys[name]).color;
    const { since, until, buckets } = data;
    const x = (t) => ((t - since) / (until - since)) * width;
    let top = 1;
    for (let i = 0; i < buckets; i++) top = Math.max(top, data.stdout[i] + data.stderr[i]);
    const scale = (height - 7) / top; // room for the exit marks above
    const bar = width / buckets;
    const stacks = [["stdout", 0], ["stderr", 1]];
    for (const [stream] of stacks) {
      g.fillStyle = colour(stream);
      for (let i = 0; i < buckets; i++) {
        const below = stream === "stderr" ? data.stdout[i] : 0;
        const n = data[stream][i];
        if (n === 0) continue;
        const h = Math.max(1, n * scale);
        const y = height - below * scale - h;
        g.fillRect(i * bar, y, Math.max(1, bar - (bar > 3 ? 1 : 0)), h);
      }
    }
    // Error-level lines: a cap on the bar, as tall as their share of it, and a
    // diamond above the bar (a shape as well as a colour).
    const marks = [];
    g.fillStyle = colour("error");
    for (let i = 0; i < buckets; i++) {
      const n = data.errors[i];
      if (n === 0) continue;
      marks.push(i);
      const total = data.stdout[i] + data.stderr[i];
      const top = height - Math.max(1, total * scale);
      const cap = Math.min(height - top, Math.max(2, Math.min(n, total) * scale));
      const w = Math.max(1, bar - (bar > 3 ? 1 : 0));
      g.fillRect(i * bar, top, w, cap);
      const cx = i * bar + w / 2;
      const cy = Math.max(3, top - 4);
      g.beginPath();
      g.moveTo(cx, cy - 3);
      g.lineTo(cx + 3, cy);
      g.lineTo(cx, cy + 3);
      g.lineTo(cx - 3, cy);
      g.fill();
    }
    this.canvas.dataset.errorMarks = JSON.stringify(marks);
    g.fillStyle = colour("exit");
    for (let i = 0; i < buckets; i++) {
      if (data.exits[i] === 0) continue;
      const cx = (i + 0.5) * bar;
      g.beginPath();
      g.moveTo(cx - 4, 7);
      g.lineTo(cx + 4, 7);
      g.lineTo(cx, 0);
      g.fill();
      g.fillRect(cx - 0.5, 7, 1, height - 7);
    }
    const shown = this.window();
    g.strokeStyle = colour("window");
    g.lineWidth = 1.5;
    if (shown) {
      const left = Math.max(0, x(shown[0]));
      const right = Math.min(width, x(shown[1]));
      if (right >= 0 && left <= width) g.strokeRect(left, 0.75, Math.max(2, right - left), height - 1.5);
    }
    if (this.drag !== null) {
      g.fillStyle = colour("window");
      g.fillRect(this.drag - 0.5, 0, 1.5, height);
    }
    this.describe(data, shown);
  }

  // The counts drawn, for tests and for screen readers (a short summary).
  describe(data, shown) {
    const canvas = this.canvas;
    canvas.dataset.since = String(data.since);
    canvas.dataset.until = String(data.until);
    canvas.dataset.buckets = String(data.buckets);
    canvas.dataset.counts = JSON.stringify({
      stdout: data.stdout, stderr: data.stderr, status: data.status, exits: data.exits, errors: data.errors,
      exitTimes: data.exitTimes,
    });
    canvas.dataset.window = shown ? shown.join(",") : "";
    let total = 0;
    for (let i = 0; i < data.buckets; i++) total += data.stdout[i] + data.stderr[i];
    const exits = data.exits.reduce((a, b) => a + b, 0);
    const errors = data.errors.reduce((a, b) => a + b, 0);
    const from = new Date(data.since * 1000).toISOString();
    canvas.setAttribute("aria-label", `${total} lines since ${from}, ${errors} at error level, ${exits} unexpected exits; click to jump to a time`);
  }
}
