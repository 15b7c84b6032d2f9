// ANSI escape sequences in log text: SGR colours and styles become styled
// spans, every other escape sequence is dropped. Nothing here builds HTML: the
// caller turns the spans into text nodes, so log text can never become markup.

// CSI (ESC [ ... final byte), OSC (ESC ] ... BEL or ST), and two-byte escapes.
const ESCAPES = /\x1b\[([0-9;:?]*)[ -\/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -\/]*[0-~]?/g;

const BASE = {
  fg: null, bg: null, bold: false, dim: false, italic: false, underline: false,
  inverse: false, strike: false,
};

// The 256-colour palette beyond the 16 themed ones, as CSS colours.
function extended(n) {
  if (n < 16) return n;
  if (n < 232) {
    const v = n - 16;
    const level = (c) => (c === 0 ? 0 : 55 + c * 40);
    return `rgb(${level(Math.floor(v / 36))},${level(Math.floor(v / 6) % 6)},${level(v % 6)})`;
  }
  const grey = 8 + (n - 232) * 10;
  return `rgb(${grey},${grey},${grey})`;
}

// A colour after 38/48: "5;n" or "2;r;g;b". Returns [colour, parameters used].
function colour(params, i) {
  const mode = params[i + 1];
  if (mode === 5 && params.length > i + 2) {
    const n = params[i + 2];
    return [n >= 0 && n < 256 ? extended(n) : null, 3];
  }
  if (mode === 2 && params.length > i + 4) {
    const [r, g, b] = params.slice(i + 2, i + 5).map((c) => Math.max(0, Math.min(255, c)));
    return [`rgb(${r},${g},${b})`, 5];
  }
  return [null, 1];
}

function apply(style, params) {
  const next = { ...style };
  if (params.length === 0) params = [0];
  for (let i = 0; i < params.length; i++) {
    const p = params[i];
    if (p === 0) Object.assign(next, BASE);
    else if (p === 1) next.bold = true;
    else if (p === 2) next.dim = true;
    else if (p === 3) next.italic = true;
    else if (p === 4) next.underline = true;
    else if (p === 7) next.inverse = true;
    else if (p === 9) next.strike = true;
    else if (p === 22) next.bold = next.dim = false;
    else if (p === 23) next.italic = false;
    else if (p === 24) next.underline = false;
    else if (p === 27) next.inverse = false;
    else if (p === 29) next.strike = false;
    else if (p >= 30 && p <= 37) next.fg = p - 30;
    else if (p >= 90 && p <= 97) next.fg = p - 90 + 8;
    else if (p === 39) next.fg = null;
    else if (p >= 40 && p <= 47) next.bg = p - 40;
    else if (p >= 100 && p <= 107) next.bg = p - 100 + 8;
    else if (p === 49) next.bg = null;
    else if (p === 38 || p === 48) {
      const [value, used] = colour(params, i);
      if (p === 38) next.fg = value; else next.bg = value;
      i += used - 1;
    }
  }
  return next;
}

function plainStyle(style) {
  for (const key of Object.keys(BASE)) if (style[key] !== BASE[key]) return false;
  return true;
}

/**
 * Split text with escape sequences into its visible text and styled runs.
 * Returns {plain, runs}: runs is a list of {start, end, style} over plain,
 * covering only the styled parts (empty when the text has no SGR styling).
 */
export function parseAnsi(text) {
  if (text.indexOf("\x1b") < 0) return { plain: text, runs: [] };
  let plain = "";
  const runs = [];
  let style = BASE;
  let last = 0;
  const push = (chunk) => {
    if (!chunk) return;
    if (!plainStyle(style)) runs.push({ start: plain.length, end: plain.length + chunk.length, style });
    plain += chunk;
  };
  ESCAPES.lastIndex = 0;
  for (let match; (match = ESCAPES.exec(text)); ) {
    push(text.slice(last, match.index));
    last = ESCAPES.lastIndex;
    if (match[2] === "m" && match[1] !== undefined && !match[1].includes("?")) {
      const params = match[1] === "" ? [] : match[1].split(/[;:]/).map((n) => (n === "" ? 0 : Number(n)));
      style = apply(style, params);
    }
  }
  push(text.slice(last));
  return { plain, runs };
}

/** Give an element the look of a style (classes and CSSOM only: CSP-safe). */
export function styleElement(element, style) {
  let fg = style.fg;
  let bg = style.bg;
  if (style.inverse) {
    [fg, bg] = [bg === null ? "inv-fg" : bg, fg === null ? "inv-bg" : fg];
  }
  const classes = [];
  if (typeof fg === "number") classes.push(`fg${fg}`);
  else if (fg === "inv-fg") classes.push("fg-inverse");
  else if (fg) element.style.color = fg;
  if (typeof bg === "number") classes.push(`bg${bg}`);
  else if (bg === "inv-bg") classes.push("bg-inverse");
  else if (bg) element.style.backgroundColor = bg;
  if (style.bold) classes.push("sgr-bold");
  if (style.dim) classes.push("sgr-dim");
  if (style.italic) classes.push("sgr-italic");
  if (style.underline) classes.push("sgr-underline");
  if (style.strike) classes.push("sgr-strike");
  if (classes.length) element.className = classes.join(" ");
}
