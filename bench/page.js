// Instruments for bench/page.py, installed with add_init_script before the page's
// own scripts: window.__bench (see bench/page.py's docstring for what each measures).

(() => {
  const now = () => performance.timeOrigin + performance.now();
  const B = {
    record: true,
    seen: new Set(), seq: [], stamp: [], dom: [], paint: [],
    arrivals: [], // [time, first seq, last seq] per WebSocket frame with lines
    longtasks: [], // [start, duration]
    frames: null,
  };
  window.__bench = B;
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) B.longtasks.push([performance.timeOrigin + e.startTime, e.duration]);
    }).observe({ type: "longtask", buffered: true });
  } catch (error) {
    B.longtaskError = String(error);
  }

  // After the rendering step of the frame that inserted the rows.
  const channel = new MessageChannel();
  let unpainted = [];
  channel.port1.onmessage = () => {
    const t = now();
    for (const i of unpainted) B.paint[i] = t;
    unpainted = [];
  };
  // At the start of a row's text, or inside it (a JSON line shown whole, by a page without chips).
  const LINE = /seq (\d+) t (\d+\.\d+)/;
  new MutationObserver((mutations) => {
    if (!B.record) return;
    const t = now();
    const before = unpainted.length;
    for (const m of mutations) {
      for (const node of m.addedNodes) {
        if (node.nodeType !== 1 || !node.classList.contains("row")) continue;
        const text = node.querySelector(".text");
        const match = text && LINE.exec(text.textContent);
        if (!match) continue;
        const seq = Number(match[1]);
        if (B.seen.has(seq)) continue;
        B.seen.add(seq);
        unpainted.push(B.seq.length);
        B.seq.push(seq);
        B.stamp.push(Number(match[2]) * 1000);
        B.dom.push(t);
        B.paint.push(0);
      }
    }
    if (unpainted.length > before) channel.port2.postMessage(0);
  }).observe(document, { childList: true, subtree: true });

  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => {
        if (!B.record || typeof event.data !== "string") return;
        const t = now();
        const data = event.data;
        const first = data.indexOf("seq ");
        if (first < 0) return;
        const last = data.lastIndexOf("seq ");
        B.arrivals.push([t, Number(data.slice(first + 4, first + 13)), Number(data.slice(last + 4, last + 13))]);
      });
    }
  };

  B.startFrames = () => {
    const f = { times: [], on: true, nodes: 0, began: now() };
    B.frames = f;
    const tick = (ts) => {
      if (!f.on) return;
      f.times.push(performance.timeOrigin + ts);
      if (f.times.length % 10 === 0) f.nodes = Math.max(f.nodes, document.getElementsByTagName("*").length);
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    return f.began;
  };
  B.stopFrames = () => {
    const f = B.frames;
    f.on = false;
    return { times: f.times, began: f.began, ended: now(), nodes: f.nodes };
  };
  // Scroll up by `step` px every frame for `ms`, recording the frames.
  B.scroll = (ms, step) => new Promise((resolve) => {
    const log = document.getElementById("log");
    const times = [];
    let nodes = 0;
    const began = now();
    const from = log.scrollTop;
    const tick = (ts) => {
      times.push(performance.timeOrigin + ts);
      if (times.length % 10 === 0) nodes = Math.max(nodes, document.getElementsByTagName("*").length);
      if (now() - began >= ms) {
        resolve({ times, began, ended: now(), nodes, from, to: log.scrollTop, follow: window.streamlog.session.follow });
        return;
      }
      log.scrollTop = Math.max(0, log.scrollTop - step);
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  B.take = () => {
    const out = { seq: B.seq, stamp: B.stamp, dom: B.dom, paint: B.paint, arrivals: B.arrivals };
    B.seen = new Set(); B.seq = []; B.stamp = []; B.dom = []; B.paint = []; B.arrivals = [];
    return out;
  };
  // Where a line's "seq N" is: at its start, or in a JSON line's message (-1: none).
  const seqAt = (text) => {
    const at = text.indexOf("seq ");
    return at >= 0 && at < 120 ? at : -1;
  };
  // The newest `seq` number the page holds for a process (-1: none).
  B.newest = (process) => {
    const lines = window.streamlog.store.lines;
    for (let i = lines.length - 1; i >= 0 && i >= lines.length - 20; i--) {
      const line = lines[i];
      const at = line.process === process ? seqAt(line.text) : -1;
      if (at >= 0) return Number(line.text.slice(at + 4, at + 13));
    }
    return -1;
  };
  B.held = (process) => {
    let n = 0;
    for (const line of window.streamlog.store.lines) if (line.process === process && seqAt(line.text) >= 0) n++;
    return n;
  };
  B.nodes = () => document.getElementsByTagName("*").length;
})();
