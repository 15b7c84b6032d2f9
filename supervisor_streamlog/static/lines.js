// The lines the page holds: records from one or more processes in one
// timeline, pieces of a split line joined, the oldest dropped past a limit.
// Pure data, no DOM: the view renders what `shown` lists.

import { parseAnsi } from "./ansi.js";

// "2026-11-27T01:23:45.678901+00:00" -> microseconds since the epoch (a number
// keeps order exactly: 2^53 µs is about 285 years).
export function timeKey(time) {
  if (!time) return 0;
  const dot = time.indexOf(".", 19);
  let micros = 0;
  let rest = time;
  if (dot > 0) {
    let end = dot + 1;
    while (end < time.length && time.charCodeAt(end) >= 48 && time.charCodeAt(end) <= 57) end++;
    micros = Number((time.slice(dot + 1, end) + "000000").slice(0, 6));
    rest = time.slice(0, dot) + time.slice(end);
  }
  const ms = Date.parse(rest);
  return Number.isNaN(ms) ? 0 : ms * 1000 + micros;
}

let sequence = 0;

export class Line {
  /** `key`: where it goes in the timeline when the record has no time. */
  constructor(process, entry, key = 0, epoch = 0) {
    this.process = process;
    this.stream = entry.stream;
    this.time = entry.time || "";
    this.timed = Boolean(entry.time);
    this.key = entry.key ?? (this.timed ? timeKey(entry.time) : key);
    this.epoch = epoch; // a process's offsets start again after a reset
    this.seq = sequence++;
    this.offset = entry.offset ?? null;
    this.end = entry.end ?? null;
    this.text = entry.text ?? "";
    this.open = Boolean(entry.partial);
    this.expanded = false;
    this.visible = true; // passed the filter when last checked
    this.height = 0; // measured height (wrap mode), 0 when not known
    this.layout = -1; // the layout the height was measured in
    this._parsed = null;
  }

  /** Visible text and styled runs (ANSI SGR), parsed once. */
  get parsed() {
    if (this._parsed === null || this._parsed.source !== this.text) {
      let text = this.text;
      if (text.endsWith("\r")) text = text.slice(0, -1); // a CRLF line's CR
      this._parsed = { source: this.text, ...parseAnsi(text) };
    }
    return this._parsed;
  }

  get plain() {
    return this.parsed.plain;
  }

  extend(entry) {
    this.text += entry.text ?? "";
    this.end = entry.end ?? this.end;
    this.open = Boolean(entry.partial);
    this.height = 0;
  }
}

// Timeline order. Within one process, the log's own order: by offset (after a
// reset, by epoch first) -- a clock stepped back cannot reorder a process's
// lines. Across processes, by time; untimed records (supervisord's own files,
// whose two streams have unrelated offsets) by the key they were given.
function before(a, b) {
  if (a.process === b.process && a.timed && b.timed && a.offset !== null && b.offset !== null) {
    if (a.epoch !== b.epoch) return a.epoch < b.epoch;
    if (a.offset !== b.offset) return a.offset < b.offset;
    return a.seq < b.seq;
  }
  if (a.key !== b.key) return a.key < b.key;
  if (a.process !== b.process) return a.process < b.process;
  return a.seq < b.seq;
}

/** The matcher of a filter, or null for none; throws SyntaxError on a bad regex. */
export function makeMatcher(filter) {
  if (!filter || !filter.q) return null;
  const flags = filter.case ? "g" : "gi";
  const source = filter.regex ? filter.q : filter.q.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const pattern = new RegExp(source, flags);
  return {
    test(text) {
      pattern.lastIndex = 0;
      return pattern.test(text);
    },
    // Match ranges [start, end) in text, at most `limit` of them.
    ranges(text, limit = 200) {
      const found = [];
      pattern.lastIndex = 0;
      for (let m; found.length < limit && (m = pattern.exec(text)); ) {
        if (m[0] === "") { pattern.lastIndex++; continue; }
        found.push([m.index, m.index + m[0].length]);
      }
      return found;
    },
  };
}

export class LineStore {
  constructor(limit = 250000) {
    this.limit = limit;
    this.lines = [];
    this.shown = [];
    this.pending = new Map(); // "process\0stream" -> the open Line
    this.streams = { stdout: true, stderr: true };
    this.matcher = null;
    this.version = 0; // bumped when `shown` is rebuilt rather than appended to
    this.newest = 0; // the newest key placed: untimed live records go after it
  }

  /** Whether the filter and stream toggles let a line through (remembered on it). */
  visible(line) {
    let shown = true;
    if (line.stream === "stdout" || line.stream === "stderr") shown = this.streams[line.stream];
    if (shown && this.matcher !== null) shown = this.matcher.test(line.plain);
    line.visible = shown;
    return shown;
  }

  setFilter(matcher, streams) {
    this.matcher = matcher;
    this.streams = { ...streams };
    this.rebuild();
  }

  rebuild() {
    this.shown = this.lines.filter((line) => this.visible(line));
    this.version++;
  }

  clear() {
    this.newest = 0;
    this.lines = [];
    this.shown = [];
    this.pending.clear();
    this.version++;
  }

  /**
   * Add records of `process` (oldest first). Pieces marked partial are joined
   * with the next record of their stream (history pages pass their own
   * `pending`: their pieces never join live lines). Returns {added, appended, changed}:
   * `appended` true when every new line went to the end (the common, cheap
   * case), `changed` the open lines that grew.
   */
  add(process, entries, pending = this.pending, epoch = 0) {
    const fresh = [];
    const changed = [];
    for (const entry of entries) {
      const slot = `${process}\0${entry.stream}`;
      if (entry.stream === "status") this.closeProcess(process, pending);
      const open = pending.get(slot);
      if (open) {
        open.extend(entry);
        if (!changed.includes(open)) changed.push(open);
        if (!open.open) pending.delete(slot);
        continue;
      }
      const line = new Line(process, entry, this.newest + 1, epoch);
      this.newest = Math.max(this.newest, line.key);
      if (line.open) pending.set(slot, line);
      fresh.push(line);
    }
    let appended = this.insert(fresh);
    // A line that grew may pass the filter now: then place it.
    if (changed.some((line) => !line.visible && this.visible(line))) {
      this.rebuild();
      appended = false;
    }
    const shown = fresh.reduce((n, line) => n + (line.visible ? 1 : 0), 0);
    return { added: fresh.length, shown, appended, changed };
  }

  /**
   * After older records were added with their own `pending` (a history page):
   * a line left unfinished at the page's end goes on in the first line of its
   * process and stream held after it -- join the two.
   */
  joinEdge(pending) {
    let joined = false;
    for (const line of pending.values()) {
      const at = this.lines.indexOf(line);
      let next = null;
      for (let i = at + 1; i < this.lines.length && next === null; i++) {
        const other = this.lines[i];
        if (other.process === line.process && other.stream === line.stream) next = other;
      }
      if (next === null) continue;
      line.extend(next);
      line.open = next.open;
      this.lines.splice(this.lines.indexOf(next), 1);
      for (const [slot, open] of this.pending) if (open === next) this.pending.set(slot, line);
      joined = true;
    }
    pending.clear();
    if (joined) this.rebuild();
  }

  /** End every unfinished line of a process (it exited, or a gap follows). */
  closeProcess(process, pending = this.pending) {
    for (const [slot, line] of pending) {
      if (line.process === process) {
        line.open = false;
        pending.delete(slot);
      }
    }
  }

  insert(fresh) {
    if (fresh.length === 0) return true;
    const lines = this.lines;
    let sorted = true;
    for (let i = 1; i < fresh.length; i++) if (before(fresh[i], fresh[i - 1])) { sorted = false; break; }
    if (!sorted) fresh.sort((a, b) => (before(a, b) ? -1 : 1));
    if (lines.length === 0 || !before(fresh[0], lines[lines.length - 1])) {
      for (const line of fresh) {
        lines.push(line);
        if (this.visible(line)) this.shown.push(line);
      }
      return true;
    }
    // Out of order (another process's older records, or history): merge.
    let lo = 0;
    let hi = lines.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (before(lines[mid], fresh[0])) lo = mid + 1; else hi = mid;
    }
    const tail = lines.splice(lo);
    const merged = [];
    let i = 0;
    let j = 0;
    while (i < tail.length || j < fresh.length) {
      if (j >= fresh.length || (i < tail.length && before(tail[i], fresh[j]))) merged.push(tail[i++]);
      else merged.push(fresh[j++]);
    }
    for (const line of merged) lines.push(line);
    this.rebuild();
    return false;
  }

  /**
   * Drop `count` lines from the start or the end. Returns the dropped lines.
   */
  drop(count, fromEnd = false) {
    if (count <= 0) return [];
    const gone = fromEnd ? this.lines.splice(this.lines.length - count) : this.lines.splice(0, count);
    if (fromEnd) {
      const first = gone[0];
      let cut = this.shown.length;
      while (cut > 0 && !before(this.shown[cut - 1], first)) cut--;
      this.shown.length = cut;
      for (const line of gone) if (line.open) this.closeProcess(line.process);
    } else {
      const last = gone[gone.length - 1];
      let cut = 0;
      while (cut < this.shown.length && !before(last, this.shown[cut])) cut++;
      this.shown.splice(0, cut);
    }
    this.version++;
    return gone;
  }

  /** Whether line a comes before line b in the timeline. */
  before(a, b) {
    return before(a, b);
  }

  get overflow() {
    return Math.max(0, this.lines.length - this.limit);
  }
}
