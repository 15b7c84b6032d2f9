// The virtualized log view: only the rows in (and near) the viewport exist in
// the DOM, however many lines the store holds. Log text goes in as text nodes;
// a structured line's fields as chips whose text is theirs, never markup.

import { parseAnsi, styleElement } from "./ansi.js";
import { LETTERS } from "./levels.js";
import { fieldText } from "./structured.js";

const OVERSCAN = 15; // rows rendered above and below the viewport
export const COLLAPSE = 2000; // characters shown of a long line until expanded
const CHIPS = 12; // a structured line's fields shown as chips (the rest: "+N")
const CHIP_TEXT = 80; // characters of a chip's value shown

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** "12:34:56.789" of a line's time, in local time or UTC. */
export function clock(line, utc) {
  if (!line.key || line.timed === false) return "";
  const date = new Date(Math.floor(line.key / 1000));
  const [h, m, s, ms] = utc
    ? [date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds(), date.getUTCMilliseconds()]
    : [date.getHours(), date.getMinutes(), date.getSeconds(), date.getMilliseconds()];
  return `${pad(h)}:${pad(m)}:${pad(s)}.${pad(ms, 3)}`;
}

/** A date and time for titles and downloads. */
export function fullTime(line, utc) {
  if (!line.key || line.timed === false) return "";
  const date = new Date(Math.floor(line.key / 1000));
  if (utc) return date.toISOString();
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  return `${day} ${clock(line, false)}`;
}

/** What a lifecycle record says, for people: [text, tone]. */
export function describeStatus(text) {
  const [state, ...rest] = text.split(" ");
  const fields = {};
  for (const part of rest) {
    const eq = part.indexOf("=");
    if (eq > 0) fields[part.slice(0, eq)] = part.slice(eq + 1);
  }
  const pid = fields.pid ? ` (pid ${fields.pid})` : "";
  switch (state) {
    case "STARTING": return ["starting", "neutral"];
    case "RUNNING": return [`started${pid}`, "good"];
    case "STOPPING": return [`stopping${pid}`, "neutral"];
    case "STOPPED": return [`stopped${pid}`, "neutral"];
    case "BACKOFF": return ["exited too quickly — will retry", "bad"];
    case "FATAL": return ["could not be started (FATAL)", "bad"];
    case "EXITED": {
      const code = fields.exitstatus !== undefined ? ` with code ${fields.exitstatus}` : "";
      const expected = fields.expected === "true";
      return [`exited${code}${pid}${expected ? " (expected)" : " (unexpected)"}`, expected ? "neutral" : "bad"];
    }
    case "dropped": return [`lost to a write error: ${rest.join(" ")}`, "bad"];
    default: return [text, "neutral"];
  }
}

// A stable colour slot per process name for its badge.
function hue(name) {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  return h % 8;
}

/** Fill `target` with `text`'s visible characters: ANSI styles and matches marked. */
export function fillText(target, parsed, matcher, length) {
  const plain = parsed.plain.slice(0, length);
  const marks = matcher ? matcher.ranges(plain) : [];
  if (parsed.runs.length === 0 && marks.length === 0) {
    target.textContent = plain;
    return marks.length;
  }
  const cuts = new Set([0, plain.length]);
  for (const run of parsed.runs) { cuts.add(Math.min(run.start, plain.length)); cuts.add(Math.min(run.end, plain.length)); }
  for (const [a, b] of marks) { cuts.add(a); cuts.add(b); }
  const points = [...cuts].sort((a, b) => a - b);
  let r = 0;
  let m = 0;
  const nodes = [];
  for (let i = 0; i + 1 < points.length; i++) {
    const [a, b] = [points[i], points[i + 1]];
    if (a === b) continue;
    while (r < parsed.runs.length && parsed.runs[r].end <= a) r++;
    while (m < marks.length && marks[m][1] <= a) m++;
    let node = document.createTextNode(plain.slice(a, b));
    const run = parsed.runs[r];
    if (run && run.start <= a) {
      const span = document.createElement("span");
      styleElement(span, run.style);
      span.append(node);
      node = span;
    }
    if (m < marks.length && marks[m][0] <= a) {
      const mark = document.createElement("mark");
      mark.append(node);
      node = mark;
    }
    nodes.push(node);
  }
  target.replaceChildren(...nodes);
  return marks.length;
}

export class LogView {
  constructor(scroller, store) {
    this.scroller = scroller;
    this.store = store;
    this.sizer = document.createElement("div");
    this.sizer.className = "sizer";
    this.rows = document.createElement("div");
    this.rows.className = "rows";
    this.rows.setAttribute("role", "list");
    this.empty = document.createElement("div");
    this.empty.className = "empty";
    scroller.replaceChildren(this.sizer, this.rows, this.empty);
    this.settings = { wrap: false, time: "local", merged: false, matcher: null };
    this.layout = 0; // bumped when row heights may have changed
    this.lineHeight = 18;
    this.charWidth = 7.5;
    this.textLeft = 0;
    this.perRow = 80;
    this.tops = new Float64Array(1024); // wrap mode: top of each shown line
    this.valid = 0; // tops[0..valid] are right
    this.version = -1;
    this.elements = new Map(); // line -> its row, for the rows in the DOM
    this.renderedKey = "";
    this.label = (name) => name; // a process's name for people (the controller's: the list's display name)
    this.measure();
  }

  /** Font metrics, from a probe row (call when fonts or sizes change). */
  measure() {
    const probe = document.createElement("div");
    probe.className = "row probe";
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = "x".repeat(100);
    probe.append(text);
    this.rows.append(probe);
    const box = text.getBoundingClientRect();
    if (box.width > 0) this.charWidth = box.width / 100;
    if (probe.getBoundingClientRect().height > 0) this.lineHeight = probe.getBoundingClientRect().height;
    probe.remove();
    this.relayout();
  }

  relayout() {
    this.layout++;
    this.valid = 0;
    this.renderedKey = "";
  }

  configure(settings) {
    Object.assign(this.settings, settings);
    this.scroller.classList.toggle("wrap", this.settings.wrap);
    this.scroller.classList.toggle("merged", this.settings.merged);
    this.scroller.classList.toggle("no-time", this.settings.time === "off");
    this.relayout();
  }

  // ---- geometry: fixed rows without wrap, measured/estimated rows with it

  // Characters per wrapped row (read once per pass: a layout read per line is slow).
  measureWidth() {
    const width = this.scroller.clientWidth - this.textLeft - 24;
    this.perRow = Math.max(20, Math.floor(width / this.charWidth));
  }

  heightOf(line) {
    if (line.height && line.layout === this.layout) return line.height;
    const length = line.expanded ? line.plain.length : Math.min(line.plain.length, COLLAPSE + 20);
    return this.lineHeight * Math.max(1, Math.ceil(length / this.perRow));
  }

  ensureTops() {
    const shown = this.store.shown;
    if (this.version !== this.store.version) {
      this.version = this.store.version;
      this.valid = 0;
    }
    if (!this.settings.wrap || this.valid >= shown.length) return;
    this.measureWidth();
    if (this.tops.length < shown.length + 1) {
      const grown = new Float64Array(Math.max(shown.length + 1, this.tops.length * 2));
      grown.set(this.tops.subarray(0, this.valid + 1));
      this.tops = grown;
    }
    for (let i = this.valid; i < shown.length; i++) this.tops[i + 1] = this.tops[i] + this.heightOf(shown[i]);
    this.valid = shown.length;
  }

  top(i) {
    return this.settings.wrap ? this.tops[i] : i * this.lineHeight;
  }

  get total() {
    return this.top(this.store.shown.length);
  }

  /** The index of the shown line at height y. */
  indexAt(y) {
    const n = this.store.shown.length;
    if (!this.settings.wrap) return Math.max(0, Math.min(n - 1, Math.floor(y / this.lineHeight)));
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.tops[mid + 1] <= y) lo = mid + 1; else hi = mid;
    }
    return Math.min(lo, Math.max(0, n - 1));
  }

  // ---- position

  atBottom(slack = 4) {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight <= slack;
  }

  /** The first line at least half in view, and how far the view is past its top. */
  anchor() {
    this.ensureTops();
    const shown = this.store.shown;
    if (shown.length === 0) return null;
    const i = this.indexAt(this.scroller.scrollTop);
    return { line: shown[i], delta: this.scroller.scrollTop - this.top(i) };
  }

  /** Scroll so an anchor's line is where it was (after lines were added above). */
  restore(anchor) {
    if (!anchor) return;
    this.ensureTops();
    const i = this.store.shown.indexOf(anchor.line);
    if (i >= 0) this.scrollTo(this.top(i) + anchor.delta);
  }

  /** Keep an anchor's line in view, or the nearest line shown after it. */
  scrollToNearest(anchor) {
    this.ensureTops();
    const shown = this.store.shown;
    let i = shown.indexOf(anchor.line);
    let delta = anchor.delta;
    if (i < 0) {
      i = shown.findIndex((line) => !this.store.before(line, anchor.line));
      if (i < 0) i = shown.length;
      delta = 0;
    }
    this.scrollTo(this.top(i) + delta);
  }

  scrollTo(y) {
    this.sizer.style.height = `${this.total}px`;
    this.scroller.scrollTop = y;
  }

  scrollToBottom() {
    this.ensureTops();
    this.scrollTo(this.total);
  }

  scrollToLine(line, block = "center") {
    this.ensureTops();
    const i = this.store.shown.indexOf(line);
    if (i < 0) return false;
    const y = block === "center" ? this.top(i) - this.scroller.clientHeight / 3 : this.top(i);
    this.scrollTo(Math.max(0, y));
    return true;
  }

  // ---- rendering

  /** Draw the rows in view. `changed`: lines whose text grew since last time. */
  render(changed = [], follow = false) {
    this.ensureTops();
    const shown = this.store.shown;
    const total = this.total;
    this.sizer.style.height = `${total}px`;
    if (follow) this.scroller.scrollTop = total;
    this.empty.hidden = shown.length > 0;
    if (shown.length === 0) {
      this.rows.replaceChildren();
      this.elements = new Map();
      this.renderedKey = "";
      return;
    }
    const top = this.scroller.scrollTop;
    const first = Math.max(0, this.indexAt(top) - OVERSCAN);
    const last = Math.min(shown.length, this.indexAt(top + this.scroller.clientHeight) + OVERSCAN + 1);
    const key = `${this.version}:${this.layout}:${first}:${last}:${shown[first].seq}:${shown[last - 1].seq}`;
    if (key === this.renderedKey && !changed.some((line) => this.elements.has(line))) return;
    // Rows already on screen are kept (while following, a new line moves the
    // window by a row or two: only those rows are made, or removed).
    const reuse = this.renderedKey.startsWith(`${this.version}:${this.layout}:`);
    this.renderedKey = key;
    const stale = new Set(changed);
    const elements = new Map();
    const rows = [];
    for (let i = first; i < last; i++) {
      const line = shown[i];
      const kept = reuse && !stale.has(line) ? this.elements.get(line) : undefined;
      const row = kept ?? this.row(line, i);
      elements.set(line, row);
      rows.push(row);
    }
    for (const [line, row] of this.elements) if (elements.get(line) !== row) row.remove();
    let next = this.rows.firstChild;
    for (const row of rows) {
      if (row === next) next = next.nextSibling;
      else this.rows.insertBefore(row, next);
    }
    this.elements = elements;
    this.rows.style.transform = `translateY(${this.top(first)}px)`;
    if (this.settings.wrap) {
      this.remeasure(first, rows);
      if (follow) this.scroller.scrollTop = this.total; // measured rows may be taller
    }
  }

  // Wrap mode: put the true heights of the rendered rows in place of
  // estimates, keeping the line being read where it is on screen.
  remeasure(first, rows) {
    const text = rows[0].querySelector(".text");
    if (text) this.textLeft = text.offsetLeft;
    const before = this.anchor();
    let lowest = -1;
    rows.forEach((row, k) => {
      const line = this.store.shown[first + k];
      const height = row.getBoundingClientRect().height;
      if (height <= 0) return;
      if (lowest < 0 && Math.abs(height - this.heightOf(line)) > 0.5) lowest = first + k;
      line.height = height;
      line.layout = this.layout;
    });
    if (lowest < 0) return;
    this.valid = Math.min(this.valid, lowest);
    this.renderedKey = "";
    this.ensureTops();
    this.rows.style.transform = `translateY(${this.top(first)}px)`;
    this.sizer.style.height = `${this.total}px`;
    if (before && lowest < this.store.shown.indexOf(before.line)) this.restore(before);
  }

  row(line, index) {
    const row = document.createElement("div");
    row.className = line.level === null ? `row ${line.stream}` : `row ${line.stream} l-${line.level}`;
    row.setAttribute("role", "listitem");
    row.dataset.index = String(index);
    if (this.settings.merged) {
      const badge = document.createElement("span");
      badge.className = `proc p${hue(line.process)}`;
      badge.textContent = this.label(line.process);
      badge.title = line.process;
      row.append(badge);
    }
    if (this.settings.time !== "off") {
      const time = document.createElement("time");
      time.className = "ts";
      time.textContent = clock(line, this.settings.time === "utc");
      time.title = fullTime(line, this.settings.time === "utc");
      row.append(time);
    }
    const tag = document.createElement("span");
    tag.className = "tag";
    const text = document.createElement("span");
    text.className = "text";
    // The level mark: a letter as well as a colour; blank when there is none.
    const mark = document.createElement("span");
    mark.className = "lvl";
    const letter = LETTERS[line.level];
    if (letter) {
      mark.textContent = letter;
      mark.title = line.level;
    }
    if (line.stream === "status" || line.stream === "note") {
      const [said, tone] = line.stream === "status" ? describeStatus(line.text) : [line.text, "bad"];
      row.classList.add("marker", tone);
      tag.textContent = line.stream === "status" ? "●" : "!";
      tag.setAttribute("aria-hidden", "true");
      text.textContent = said;
      row.append(mark, tag, text);
      return row;
    }
    tag.textContent = line.stream === "stderr" ? "err" : "out";
    const structured = line.structured;
    if (structured !== null) {
      const message = structured.message;
      const parsed = message.indexOf("\x1b") >= 0 ? parseAnsi(message) : { plain: message, runs: [] };
      fillText(text, parsed, this.settings.matcher, parsed.plain.length);
      row.classList.add("structured");
      row.append(mark, tag, text, this.chips(structured));
      return row;
    }
    const parsed = line.parsed;
    const long = parsed.plain.length > COLLAPSE;
    fillText(text, parsed, this.settings.matcher, long && !line.expanded ? COLLAPSE : parsed.plain.length);
    row.append(mark, tag, text);
    if (long) {
      const more = document.createElement("button");
      more.className = "more";
      more.dataset.action = "expand";
      more.textContent = line.expanded ? "collapse" : `… ${parsed.plain.length - COLLAPSE} more characters`;
      const copy = document.createElement("button");
      copy.className = "more";
      copy.dataset.action = "copy";
      copy.textContent = "copy";
      row.append(more, copy);
    }
    return row;
  }

  /**
   * A structured line's fields as key=value chips; a click shows them all as
   * JSON. Spans, not buttons: a row of them is made per line drawn, and
   * spans cost less to lay out and paint (the row's own text is as reachable).
   */
  chips(structured) {
    const box = document.createElement("span");
    box.className = "fields";
    const fields = structured.fields;
    const matcher = this.settings.matcher;
    const shown = Math.min(fields.length / 2, CHIPS);
    for (let i = 0; i < shown * 2; i += 2) {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.dataset.action = "fields";
      const value = fieldText(fields[i + 1]);
      chip.textContent = `${fields[i]}=${value.length > CHIP_TEXT ? `${value.slice(0, CHIP_TEXT)}…` : value}`;
      if (value.length > CHIP_TEXT) chip.title = value;
      if (matcher !== null && matcher.chip(fields[i], value)) chip.classList.add("hit");
      box.append(chip);
    }
    if (fields.length / 2 > shown) {
      const more = document.createElement("span");
      more.className = "chip more-fields";
      more.dataset.action = "fields";
      more.textContent = `+${fields.length / 2 - shown}`;
      more.title = "all fields";
      box.append(more);
    }
    return box;
  }

  /** The line a click inside a row was on. */
  lineOf(element) {
    const row = element.closest(".row");
    if (!row) return null;
    return this.store.shown[Number(row.dataset.index)] ?? null;
  }

  /** The first line in view (for the URL's position). */
  firstInView() {
    const a = this.anchor();
    return a ? a.line : null;
  }
}
