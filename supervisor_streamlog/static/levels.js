// Log levels: which kind of line this is (fatal, error, warn, info, debug,
// trace), read from the line's text once, when its record arrives -- never per
// frame. Pure functions, no DOM; tests/test_browser.py runs a table of
// real-world lines through them. The JSON and logfmt fields themselves are
// read by structured.js, which asks levelOf() about a field's value.
// The rules are data, in levels.json: the sidecar's histogram reads the same
// file (logread/levels.py) and builds the same expressions from it. The sidecar
// puts the file's contents into the page (<script type="application/json"
// id="level-rules">), so they are there as this module loads: no request, and
// nothing for the page's first lines to wait on.

/** The rules (levels.json): words, fields, numbers, the plain-text patterns' parts. */
export const RULES = JSON.parse(document.getElementById("level-rules").textContent);

/** The levels, most severe first, and the letter each is marked with. */
export const LEVELS = RULES.levels;
export const LETTERS = RULES.letters;

// Level words as written by logging libraries, lower-cased.
const WORDS = new Map();
for (const [level, words] of Object.entries(RULES.words)) for (const word of words) WORDS.set(word, level);
const LENGTHS = [...WORDS.keys()].map((word) => word.length);
const WORD_LIMIT = Math.max(...LENGTHS); // a longer value names no level
const WORD = `[A-Za-z]{${Math.min(...LENGTHS)},${WORD_LIMIT}}`;

// syslog severities 0-7 (RFC 5424): emerg, alert, crit, err, warning, notice, info, debug.
const SYSLOG = RULES.syslog;
// bunyan/pino: [least, level], highest first.
const NUMBERS = RULES.numbers;

// Literal strings as an alternation, characters as a class's body.
const oneOf = (items) => items.map((item) => item.replace(/[\\^$.*+?()[\]{}|\/-]/g, "\\$&")).join("|");
const classOf = (chars) => chars.replace(/[\\\]^[-]/g, "\\$&");

/**
 * The level a field's value names, or null: a word ("WARN", "warning",
 * "Error"), a bunyan/pino number (10 trace ... 60 fatal), or a syslog
 * severity (0-7, as GELF writes it). Anything else (true, null): null.
 */
export function levelOf(value) {
  if (typeof value === "string") {
    if (value.length > WORD_LIMIT) return null;
    const word = WORDS.get(value.toLowerCase());
    if (word) return word;
    const number = value.length <= 2 && /^\d+$/.test(value) ? Number(value) : NaN;
    return Number.isNaN(number) ? null : levelOf(number);
  }
  if (typeof value !== "number" || !Number.isFinite(value)) return null;
  if (value >= 0 && value < SYSLOG.length && Number.isInteger(value)) return SYSLOG[value];
  for (const [least, level] of NUMBERS) if (value >= least) return level;
  return null;
}

const TEXT = RULES.text;
// How far into a plain line a level is looked for (it is a prefix, in practice).
const HEAD = TEXT.head;
// Prefixes that name a level ("Traceback (most recent call last)", "panic: ").
const PREFIXES = TEXT.prefixes;
// An upper-case level word standing alone: "ERROR:", " WARNING ", "[INFO]",
// ": WARNING/MainProcess]", "| DEBUG |". Not inside a word or a path.
const UPPER = new RegExp(
  `(?:^|[\\s${classOf(TEXT.upperBefore)}])(${oneOf(TEXT.upper)})(?=$|[\\s${classOf(TEXT.upperAfter)}])`,
);
// A level word in any case, bracketed (nginx "[error]", "[Warning]").
const BRACKETED = new RegExp(`\\[(${oneOf(TEXT.bracketed)})\\]`, "i");
// A capitalised word that opens the line ("Error: ...", "Warning: ...").
const OPENING_LEVELS = new Map(TEXT.opening);
const OPENING = new RegExp(`^(${oneOf([...OPENING_LEVELS.keys()])}):\\s`);
// logfmt's level field inside a line that is not all logfmt ("12:00 level=warn ...").
const FIELD = new RegExp(`(?:^|\\s)(?:${oneOf(RULES.fields.inText)})=("?)(${WORD}|\\d{1,2})\\1(?=\\s|$)`);
// glog/klog: "E1203 07:00:00.123456   42 file.go:12] ...".
const GLOG_LEVELS = TEXT.glog;
const GLOG = new RegExp(`^([${classOf(Object.keys(GLOG_LEVELS).join(""))}])\\d{4} \\d\\d:\\d\\d:\\d\\d`);

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
  for (const [prefix, level] of PREFIXES) if (head.startsWith(prefix)) return level;
  if (first >= 65 && first <= 90) { // an upper-case letter opens it
    const glog = GLOG_LEVELS[head[0]] !== undefined && GLOG.exec(head);
    if (glog) return GLOG_LEVELS[glog[1]];
    const opening = OPENING.exec(head);
    if (opening) return OPENING_LEVELS.get(opening[1]);
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
const JSON_FIELD = new RegExp(`"(?:${oneOf(RULES.fields.inJsonHead)})"\\s*:\\s*("?)(${WORD}|\\d{1,2})\\1\\s*[,}]`);

/** The level a long JSON line's head names, or null (not parsed: read as text). */
export function levelOfJsonHead(text) {
  const found = JSON_FIELD.exec(text.length > HEAD * 4 ? text.slice(0, HEAD * 4) : text);
  return found ? levelOf(found[2].length <= 2 && /^\d+$/.test(found[2]) ? Number(found[2]) : found[2]) : null;
}
