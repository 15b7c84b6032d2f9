// The lines the page holds: records from one or more processes in one
// timeline, pieces of a split line joined, the oldest dropped past a limit,
// each line's level and fields read once as it arrives, and how many lines of
// each level are held. Pure data, no DOM: the view renders what `shown` lists.

import { parseAnsi } from "./ansi.js";
import { fieldText, fieldValue, levelAndKind, structure } from "./structured.js";

/** The level classes counted and filtered: levels.js's LEVELS, then "stderr" and "none". */
export const LEVEL_CLASSES = ["fatal", "error", "warn", "info", "debug", "trace", "stderr", "none"];

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
    this.level = null; // structured.js's levelAndKind: a level, "stderr", "none"; null for status/note
    this.kind = null; // "json" or "logfmt" when the line has fields, else null
    this._structured = null; // its {kind, message, fields}: read when first asked for
    this.classify();
  }

  /** Read the level from the text (on arrival, and when the text grew). */
  classify() {
    const { level, kind } = levelAndKind(this.visibleText, this.stream);
    this.level = level;
    this.kind = kind;
    this._structured = kind === null ? null : undefined;
  }

  // Colour escapes are not part of what a line says: the visible text.
  get visibleText() {
    return this.text.indexOf("\x1b") >= 0 ? this.plain : this.text;
  }

  /**
   * A JSON or logfmt line's {kind, message, fields}, else null. Read from the
   * text when first asked for -- to draw the line or to filter by a field --
   * not on arrival, so lines nobody looks at hold no parsed fields.
   */
  get structured() {
    if (this._structured === undefined) this._structured = structure(this.visibleText, this.kind);
    return this._structured;
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
    this.classify();
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

const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const FIELD_TERM = /^([A-Za-z_@][\w.@/-]*)=(\S*)$/;

/**
 * A filter's field terms: `status=500 user.id=42` (not a regex) is a list of
 * [key, value]; anything else is null (a plain substring or regex filter).
 */
export function fieldTerms(filter) {
  if (filter.regex) return null;
  const words = filter.q.trim().split(/\s+/);
  const terms = [];
  for (const word of words) {
    const found = FIELD_TERM.exec(word);
    if (!found) return null;
    terms.push([found[1], filter.case ? found[2] : found[2].toLowerCase()]);
  }
  return terms.length ? terms : null;
}

/**
 * The matcher of a filter, or null for none; throws SyntaxError on a bad regex.
 * A filter of field terms (`status=500`) also lets through a structured line
 * whose fields have those values (each term: that field, or the term as text),
 * on top of the lines holding the text as typed.
 */
export function makeMatcher(filter) {
  if (!filter || !filter.q) return null;
  const flags = filter.case ? "g" : "gi";
  const source = filter.regex ? filter.q : escape(filter.q);
  const pattern = new RegExp(source, flags);
  const terms = fieldTerms(filter);
  const words = terms ? terms.map(([key, value]) => new RegExp(escape(`${key}=${value}`), flags.slice(1))) : [];
  const same = (value, wanted) => {
    const text = fieldText(value);
    return (filter.case ? text : text.toLowerCase()) === wanted;
  };
  // Whether a field term holds: the line's field, or the term in its text.
  const holds = (line, text, k) => {
    const [key, wanted] = terms[k];
    const value = line.structured !== null ? fieldValue(line.structured, key) : undefined;
    return (value !== undefined && same(value, wanted)) || words[k].test(text);
  };
  return {
    fields: terms, // [[key, value]] or null
    /** Whether the line (its visible text `text`) passes. */
    test(text, line = null) {
      pattern.lastIndex = 0;
      if (pattern.test(text)) return true;
      if (terms === null || line === null || line.structured === null) return false;
      for (let k = 0; k < terms.length; k++) if (!holds(line, text, k)) return false;
      return true;
    },
    /** Whether a chip key=value is one the filter asks for (marked). */
    chip(key, value) {
      return terms !== null && terms.some(([k, wanted]) => k === key && same(value, wanted));
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
    this.levels = zeroCounts(); // lines held of each LEVEL_CLASSES class
    this.hidden = new Set(); // level classes the level filter hides
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
    if (shown && line.level !== null && this.hidden.has(line.level)) shown = false;
    if (shown && this.matcher !== null) shown = this.matcher.test(line.plain, line);
    line.visible = shown;
    return shown;
  }

  /** The filter, the stream toggles and the level classes hidden (a Set). */
  setFilter(matcher, streams, hidden = this.hidden) {
    this.matcher = matcher;
    this.streams = { ...streams };
    this.hidden = new Set(hidden);
    this.rebuild();
  }

  // Count a line in (1) or out (-1) of the level counts.
  count(line, sign) {
    if (line.level !== null) this.levels[line.level] += sign;
  }

  rebuild() {
    this.shown = this.lines.filter((line) => this.visible(line));
    this.version++;
  }

  clear() {
    this.newest = 0;
    this.levels = zeroCounts();
    this.lines = [];
    this.shown = [];
    this.pending.clear();
    this.version++;
  }

  /**
   * Add records of `process` (oldest first). Pieces marked partial are joined
   * with the next record of their stream (history pages pass their own
   * `pending`: their pieces never join live lines). Returns {added, appended, changed, fresh}:
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
        this.count(open, -1);
        open.extend(entry);
        this.count(open, 1);
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
    return { added: fresh.length, shown, appended, changed, fresh };
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
      this.count(line, -1);
      this.count(next, -1);
      line.extend(next);
      line.open = next.open;
      this.count(line, 1);
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
    for (const line of fresh) this.count(line, 1);
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
    for (const line of gone) this.count(line, -1);
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

function zeroCounts() {
  const counts = {};
  for (const level of LEVEL_CLASSES) counts[level] = 0;
  return counts;
}
