// The reader's preferences, kept in localStorage across visits: how times are
// shown, wrapping, the theme, and which streams are shown.

const KEY = "streamlog";
const DEFAULTS = { time: "local", wrap: false, theme: "auto", stdout: true, stderr: true };

/** The saved preferences over the defaults (the defaults when none can be read). */
export function loadPrefs() {
  try {
    return { ...DEFAULTS, ...JSON.parse(localStorage.getItem(KEY) || "{}") };
  } catch {
    return { ...DEFAULTS };
  }
}

export function savePrefs(prefs) {
  try { localStorage.setItem(KEY, JSON.stringify(prefs)); } catch { /* private mode */ }
}

/** The theme after `theme` in the button's cycle. */
export function nextTheme(theme) {
  return { auto: "light", light: "dark", dark: "auto" }[theme] || "auto";
}

/** The time display after `time` in the button's cycle. */
export function nextTime(time) {
  return { local: "utc", utc: "off", off: "local" }[time] || "local";
}
