// Log levels: which kind of line this is (fatal, error, warn, info, debug,
// trace), read from the line's text once, when its record arrives -- never per
// frame. Pure functions, no DOM; tests/test_browser.py runs a table of
// real-world lines through them. The JSON and logfmt fields themselves are
// read by structured.js, which asks levelOf() about a field's value.

/** The levels, most severe first, and the letter each is marked with. */
export const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace"];
export const LETTERS = { fatal: "F", error: "E", warn: "W", info: "I", debug: "D", trace: "T" };

// Level words as written by logging libraries, lower-cased.
const WORDS = new Map([
  ["fatal", "fatal"], ["critical", "fatal"], ["crit", "fatal"], ["emerg", "fatal"],
  ["emergency", "fatal"], ["alert", "fatal"], ["panic", "fatal"], ["dpanic", "fatal"],
  ["error", "error"], ["err", "error"], ["severe", "error"], ["eror", "error"],
  ["warn", "warn"], ["warning", "warn"], ["wrn", "warn"],
  ["info", "info"], ["information", "info"], ["informational", "info"], ["notice", "info"], ["inf", "info"],
  ["debug", "debug"], ["dbg", "debug"], ["fine", "debug"], ["config", "debug"],
  ["trace", "trace"], ["finer", "trace"], ["finest", "trace"], ["verbose", "trace"], ["trc", "trace"],
]);

// syslog severities 0-7 (RFC 5424): emerg, alert, crit, err, warning, notice, info, debug.
const SYSLOG = ["fatal", "fatal", "fatal", "error", "warn", "info", "info", "debug"];

/**
 * The level a field's value names, or null: a word ("WARN", "warning",
 * "Error"), a bunyan/pino number (10 trace ... 60 fatal), or a syslog
 * severity (0-7, as GELF writes it). Anything else (true, null): null.
 */
export function levelOf(value) {
  if (typeof value === "string") {
    if (value.length > 13) return null;
    const word = WORDS.get(value.toLowerCase());
    if (word) return word;
    const number = value.length <= 2 && /^\d+$/.test(value) ? Number(value) : NaN;
    return Number.isNaN(number) ? null : levelOf(number);
  }
  if (typeof value !== "number" || !Number.isFinite(value)) return null;
  if (value >= 0 && value <= 7 && Number.isInteger(value)) return SYSLOG[value];
  if (value >= 60) return "fatal";
  if (value >= 50) return "error";
  if (value >= 40) return "warn";
  if (value >= 30) return "info";
  if (value >= 20) return "debug";
  if (value >= 10) return "trace";
  return null;
}

// How far into a plain line a level is looked for (it is a prefix, in practice).
const HEAD = 160;
// An upper-case level word standing alone: "ERROR:", " WARNING ", "[INFO]",
// ": WARNING/MainProcess]", "| DEBUG |". Not inside a word or a path.
const UPPER = /(?:^|[\s[(|:<,-])(FATAL|CRITICAL|CRIT|EMERG|EMERGENCY|ALERT|PANIC|SEVERE|ERROR|ERR|WARNING|WARN|NOTICE|INFO|DEBUG|TRACE|FINEST|FINER|FINE|VERBOSE)(?=$|[\s\]):|/,>!-])/;
// A level word in any case, bracketed (nginx "[error]", "[Warning]").
const BRACKETED = /\[(fatal|critical|crit|emerg|alert|panic|error|err|warn|warning|notice|info|debug|trace)\]/i;
// A capitalised word that opens the line ("Error: ...", "Warning: ...").
const OPENING = /^(Fatal error|Fatal|Panic|Error|Warning|Warn|Notice|Info|Debug|Trace):\s/;
// logfmt's level field inside a line that is not all logfmt ("12:00 level=warn ...").
const FIELD = /(?:^|\s)(?:level|lvl|severity)=("?)([A-Za-z]{3,13}|\d{1,2})\1(?=\s|$)/;
// glog/klog: "E1203 07:00:00.123456   42 file.go:12] ...".
const GLOG = /^([IWEF])\d{4} \d\d:\d\d:\d\d/;
const GLOG_LEVELS = { I: "info", W: "warn", E: "error", F: "fatal" };

/**
 * The level of a plain (not JSON) line, or null. Cheap first: the first
 * character decides which prefix checks run, then one search of the line's
 * head for a level word; the bracketed and field searches run only when the
 * head holds a "[" or a "=".
 */
export function levelOfText(text) {
  const head = text.length > HEAD ? text.slice(0, HEAD) : text;
  const first = head.charCodeAt(0);
  if (first === 60) { // "<": a syslog priority, "<11>..."
    const close = head.indexOf(">");
    if (close > 1 && close <= 4) {
      const priority = Number(head.slice(1, close));
      if (Number.isInteger(priority) && priority >= 0 && priority <= 191) return SYSLOG[priority & 7];
    }
  }
  if (first >= 65 && first <= 90) { // an upper-case letter opens it
    if (head.startsWith("Traceback (most recent call last)")) return "error";
    if (head.startsWith("panic: ")) return "fatal";
    const glog = first <= 87 && GLOG.exec(head);
    if (glog) return GLOG_LEVELS[glog[1]];
    const opening = OPENING.exec(head);
    if (opening) return WORDS.get(opening[1].toLowerCase().replace("fatal error", "fatal"));
  } else if (first === 112 && head.startsWith("panic: ")) {
    return "fatal";
  }
  const upper = UPPER.exec(head);
  if (upper) return WORDS.get(upper[1].toLowerCase());
  if (head.indexOf("[") >= 0) {
    const bracketed = BRACKETED.exec(head);
    if (bracketed) return WORDS.get(bracketed[1].toLowerCase());
  }
  if (head.indexOf("=") >= 0) {
    const field = FIELD.exec(head);
    if (field) return levelOf(field[2]);
  }
  return null;
}

// A JSON line too long to parse (collapsed on the page): its level field, read
// from the head, as text.
const JSON_FIELD = /"(?:level|severity|lvl|levelname|log\.level)"\s*:\s*("?)([A-Za-z]{3,13}|\d{1,2})\1\s*[,}]/;

/** The level a long JSON line's head names, or null (not parsed: read as text). */
export function levelOfJsonHead(text) {
  const found = JSON_FIELD.exec(text.length > HEAD * 4 ? text.slice(0, HEAD * 4) : text);
  return found ? levelOf(found[2].length <= 2 && /^\d+$/.test(found[2]) ? Number(found[2]) : found[2]) : null;
}
