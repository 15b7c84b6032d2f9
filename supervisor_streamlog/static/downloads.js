// Downloads: the whole log of each open process (a link to the sidecar), and
// the lines shown, as filtered, made into a file in the page.

import { $ } from "./dom.js";
import { fullTime } from "./view.js";

/** One "whole log" link per open process; `label(name)`: the name people know it by. */
export function renderDownloads(names, label = (name) => name) {
  const links = names.map((name) => {
    const a = document.createElement("a");
    a.href = `/api/log/${encodeURIComponent(name)}/download`;
    a.textContent = `whole log of ${label(name)}`;
    a.setAttribute("download", "");
    return a;
  });
  $("download-links").replaceChildren(...links);
}

/** Save the lines `store` shows as a text file; `names`: the open processes. */
export function downloadShown(store, names, utc) {
  const merged = names.length > 1;
  const text = store.shown.map((line) => `${fullTime(line, utc)} ${merged ? `${line.process} ` : ""}${line.stream} ${line.plain}`).join("\n");
  const blob = new Blob([text, "\n"], { type: "text/plain;charset=utf-8" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `${names.join("+").replace(/[^\w.+-]+/g, "_") || "streamlog"}.log`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  $("more").open = false;
}
