// Shared by the browser tests: reads a child's output line by line. next(pred, ms, what)
// resolves with the first matching line (waiting up to ms); every line also goes to `recent`
// (the last 40, printed on failure) and, with VERBOSE set, to the console.
import { createInterface } from 'node:readline';

export function lineReader(stream, tag, recent) {
  const buf = [];
  const waiters = [];
  createInterface({ input: stream }).on('line', (line) => {
    if (process.env.VERBOSE) console.log(`[${tag}] ${line}`);
    recent.push(`[${tag}] ${line}`);
    if (recent.length > 40) recent.shift();
    const w = waiters.findIndex((x) => x.pred(line));
    if (w >= 0) waiters.splice(w, 1)[0].resolve(line); else buf.push(line);
  });
  return {
    next(pred, ms, what) {
      const i = buf.findIndex(pred);
      if (i >= 0) return Promise.resolve(buf.splice(i, 1)[0]);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve };
        waiters.push(w);
        setTimeout(() => { const k = waiters.indexOf(w); if (k >= 0) { waiters.splice(k, 1); reject(new Error(`timeout waiting for ${what}`)); } }, ms);
      });
    },
    all: buf,
  };
}
