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

// Runs axe-core (node_modules/axe-core) in the page against WCAG 2.0/2.1 A and AA and throws
// with every violation found (rule, impact, the first offending elements). The script goes in
// through the DevTools protocol, so the page's CSP (script-src 'self') does not stop it.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
let axeSource = null;
export async function checkAccessibility(page, what) {
  if (!axeSource) axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ') + ((n.any[0] && n.any[0].message) ? ` [${n.any[0].message}]` : '')) }));
  });
  if (result.length) {
    throw new Error(`axe-core: ${result.length} accessibility violation(s) on ${what}:\n` +
      result.map((v) => `  ${v.id} (${v.impact}): ${v.help} at ${v.nodes.join(', ')}`).join('\n'));
  }
  console.log(`axe-core: no WCAG 2.1 A/AA violations on ${what}`);
}
