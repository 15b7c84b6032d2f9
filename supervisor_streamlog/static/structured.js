// Structured lines: a JSON object or a logfmt line read into its message and
// its other fields, and every line's level (levels.js). Pure functions, no
// DOM. The level is read once, when a record arrives (levelAndKind); the
// fields only when the page draws the line or filters by a field
// (structure), so 200 000 held JSON lines do not each keep their fields.
// Only lines that can be structured are parsed: a JSON object starts with "{"
// (after blanks), a logfmt line with a letter and holds a "="; lines longer
// than the page shows collapsed are not parsed (their level is read from
// their head). Text that only looks like JSON (it does not parse, or is not
// an object) stays plain.

import { RULES, levelOf, levelOfJsonHead, levelOfText } from "./levels.js";

// Longer lines are collapsed on the page (view.js's COLLAPSE): not parsed.
export const PARSE_LIMIT = RULES.parseLimit;
// The fields that hold a line's message and its level (levels.json).
const MESSAGE_KEYS = RULES.fields.message;
const LEVEL_KEYS = RULES.fields.keys;
const MAX_FIELDS = RULES.maxFields; // fields kept of one line (a chip each, at most)
const MAX_DEPTH = 4; // nested objects flattened to dotted keys this deep

/**
 * A line's level and structure: {level, structured}. `level` is one of
 * levels.js's LEVELS, "stderr" (stderr with no level found: its own class,
 * not "error"), "none" (stdout with none), or null for the page's own
 * records (status, note). `structured` is null or {kind: "json"|"logfmt",
 * message, fields: [key, value, key, value, ...]} with nested JSON objects
 * flattened to dotted keys ("user.id"). Values are kept as parsed (strings,
 * numbers, true/false/null: no copy as text per line), arrays and empty
 * objects as their JSON text; fieldText() gives any of them as text.
 */
export function classify(text, stream) {
  const { level, kind } = levelAndKind(text, stream);
  return { level, structured: kind === null ? null : structure(text, kind) };
}

/**
 * What a line needs on arrival: {level, kind}, `kind` "json" or "logfmt"
 * when structure(text, kind) gives its fields, else null. The fields
 * themselves are not kept here: a page holding 200 000 JSON lines asks for
 * them only for the lines it draws or filters by field (lines.js).
 */
export function levelAndKind(text, stream) {
  if (stream !== "stdout" && stream !== "stderr") return { level: null, kind: null };
  if (text.endsWith("\r")) text = text.slice(0, -1);
  let start = 0;
  while (start < text.length && (text.charCodeAt(start) === 32 || text.charCodeAt(start) === 9)) start++;
  const first = text.charCodeAt(start);
  let kind = null;
  let level = null;
  if (first === 123) { // "{"
    if (text.length <= PARSE_LIMIT) {
      const object = parseObject(text);
      if (object !== null) {
        kind = "json";
        level = levelOfObject(object);
      }
    } else {
      level = levelOfJsonHead(text);
    }
  } else if (isKeyStart(first) && text.length <= PARSE_LIMIT && text.indexOf("=") > 0) {
    const logfmt = parseLogfmt(text, start);
    if (logfmt !== null) {
      kind = "logfmt";
      level = levelOfFields(logfmt.fields);
    }
  }
  if (kind === null && level === null) level = levelOfText(text);
  if (level === null) level = stream === "stderr" ? "stderr" : "none";
  return { level, kind };
}

/** A line's {kind, message, fields} (see classify), given the kind levelAndKind() found. */
export function structure(text, kind) {
  if (text.endsWith("\r")) text = text.slice(0, -1);
  if (kind === "json") return parseJson(text);
  let start = 0;
  while (start < text.length && (text.charCodeAt(start) === 32 || text.charCodeAt(start) === 9)) start++;
  return parseLogfmt(text, start);
}

function isKeyStart(c) {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 64; // a-z A-Z _ @
}

function isKeyChar(c) {
  return isKeyStart(c) || (c >= 48 && c <= 57) || c === 46 || c === 45 || c === 47; // 0-9 . - /
}

/** The level named by the first level field (level, severity, lvl, log.level, ...), or null. */
export function levelOfFields(fields) {
  for (const key of LEVEL_KEYS) {
    for (let i = 0; i < fields.length; i += 2) {
      if (fields[i] === key) {
        const level = levelOf(fields[i + 1]);
        if (level !== null) return level;
      }
    }
  }
  return null;
}

// A JSON object line as an object, or null when it is not one.
function parseObject(text) {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) <= 32) end--;
  if (text.charCodeAt(end - 1) !== 125) return null; // "}"
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
  return value;
}

// The level a parsed JSON object names (levelOfFields' rule, without
// flattening the object: a dotted level key is looked up along its path).
function levelOfObject(object) {
  for (const key of LEVEL_KEYS) {
    let value = object[key];
    if (value === undefined && key.indexOf(".") > 0) {
      const [outer, inner] = key.split(".");
      const nested = object[outer];
      if (nested !== null && typeof nested === "object" && !Array.isArray(nested)) value = nested[inner];
    }
    if (value === undefined || (value !== null && typeof value === "object")) continue;
    const level = levelOf(value);
    if (level !== null) return level;
  }
  return null;
}

/** A JSON object line's message and fields, or null when it is not a JSON object. */
export function parseJson(text) {
  const value = parseObject(text);
  if (value === null) return null;
  let message = "";
  const fields = [];
  let found = false;
  for (const key of Object.keys(value)) {
    const item = value[key];
    if (!found && typeof item === "string" && MESSAGE_KEYS.includes(key)) {
      message = item;
      found = true;
    } else {
      flatten(key, item, fields, 1);
    }
  }
  return { kind: "json", message, fields };
}

// Dotted keys, made once and shared by every line that has them (200 000
// JSON lines from one program repeat a handful of keys).
const dotted = new Map();

function join(prefix, key) {
  const whole = `${prefix}.${key}`;
  const known = dotted.get(whole);
  if (known !== undefined) return known;
  if (dotted.size >= 10000) dotted.clear();
  dotted.set(whole, whole);
  return whole;
}

// A JSON value as fields: objects as dotted keys, primitives as they are,
// arrays (and objects too deep or empty) as their JSON text.
function flatten(key, value, fields, depth) {
  if (fields.length >= MAX_FIELDS * 2) return;
  if (value !== null && typeof value === "object") {
    if (!Array.isArray(value) && depth < MAX_DEPTH) {
      const keys = Object.keys(value);
      if (keys.length) {
        for (const inner of keys) flatten(join(key, inner), value[inner], fields, depth + 1);
        return;
      }
    }
    value = JSON.stringify(value);
  }
  fields.push(key, value);
}

/** A field's value as text: strings as they are, other JSON values as JSON. */
export function fieldText(value) {
  return typeof value === "string" ? value : String(value);
}

/**
 * A logfmt line's message and fields, or null when it is not logfmt: every
 * word must be key=value (value bare or "quoted"), and there must be two
 * pairs or one naming a level or a message.
 */
export function parseLogfmt(text, start = 0) {
  const fields = [];
  let message = "";
  let found = false;
  const n = text.length;
  let i = start;
  while (i < n) {
    while (i < n && text.charCodeAt(i) === 32) i++;
    if (i >= n) break;
    const keyStart = i;
    if (!isKeyStart(text.charCodeAt(i))) return null;
    while (i < n && isKeyChar(text.charCodeAt(i))) i++;
    if (i >= n || text.charCodeAt(i) !== 61) return null; // a word that is not key=value
    const key = text.slice(keyStart, i);
    i++;
    let value;
    if (text.charCodeAt(i) === 34) { // a quoted value, with backslash escapes
      const open = i;
      i++;
      while (i < n && text.charCodeAt(i) !== 34) i += text.charCodeAt(i) === 92 ? 2 : 1;
      if (i >= n) return null;
      i++;
      value = unquote(text.slice(open, i));
      if (i < n && text.charCodeAt(i) !== 32) return null;
    } else {
      const valueStart = i;
      while (i < n && text.charCodeAt(i) !== 32) i++;
      value = text.slice(valueStart, i);
    }
    if (!found && MESSAGE_KEYS.includes(key)) {
      message = value;
      found = true;
    } else if (fields.length < MAX_FIELDS * 2) {
      fields.push(key, value);
    }
  }
  const pairs = fields.length / 2 + (found ? 1 : 0);
  if (pairs === 0) return null;
  if (pairs === 1 && !found && !LEVEL_KEYS.includes(fields[0])) return null;
  return { kind: "logfmt", message, fields };
}

function unquote(quoted) {
  try {
    return JSON.parse(quoted);
  } catch {
    return quoted.slice(1, -1); // a Go %q escape JSON lacks: shown as written
  }
}

/** The value of field `key` (a dotted path for nested JSON; see classify), or undefined. */
export function fieldValue(structured, key) {
  const fields = structured.fields;
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === key) return fields[i + 1];
  return undefined;
}

/** A structured line's fields as one object, for showing as pretty JSON (message first). */
export function fieldsObject(structured) {
  const out = {};
  if (structured.message !== "") out.message = structured.message;
  for (let i = 0; i < structured.fields.length; i += 2) out[structured.fields[i]] = structured.fields[i + 1];
  return out;
}
