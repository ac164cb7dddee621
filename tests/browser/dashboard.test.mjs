// Browser test of the dashboard: testbed (embedded broker + fake execute) -> immunizer-dashboard
// -> Debian's chromium driven by playwright-core. Asserts that an alarm produced to Kafka
// appears live with its top feature, that "False positive" produces a Feedback message and
// that "Block" reaches execute's Operations API. Authentication is on, as by default: the page
// sends the browser to the login form, which signs in with a generated credentials file (as
// `immunizer up` writes it); feedback records that user.
//   node dashboard.test.mjs <immunizer-dashboard> <dashboard-testbed> [artifact dir]
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { lineReader } from './lib.mjs';

const [dashboardBin, testbedBin, artifactsArg] = process.argv.slice(2);
const artifacts = artifactsArg || process.env.IMMUNIZER_BROWSER_ARTIFACTS || '/tmp';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function skip(why) {
  console.log(`SKIPPED: ${why}`);
  process.exit(0);
}
if (!dashboardBin || !testbedBin) {
  console.error('usage: node dashboard.test.mjs <immunizer-dashboard> <dashboard-testbed> [artifact dir]');
  process.exit(2);
}
if (!existsSync(CHROMIUM)) skip(`${CHROMIUM} not found (apt-get install chromium)`);
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  skip(`playwright-core not installed (run tests/browser/install.sh): ${e.message}`);
}

const children = [];
let browser = null;
async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
}
const recent = [];  // the children's last output lines, printed on failure
function fail(msg) {
  console.error(`FAIL: ${msg}`);
  if (recent.length) console.error(`last output of the test bed and the dashboard:\n${recent.join('\n')}`);
  return cleanup().then(() => process.exit(1));
}
const timer = setTimeout(() => fail('test timed out after 120 s'), 120_000);

const lines = (stream, tag) => lineReader(stream, tag, recent);

try {
  // 1. Test bed.
  const prefix = 'bt.';
  const bed = spawn(testbedBin, [prefix], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(bed);
  const bedOut = lines(bed.stdout, 'testbed');
  const bootstrap = (await bedOut.next((l) => l.startsWith('BOOTSTRAP '), 20_000, 'testbed bootstrap')).split(' ')[1];
  const execute = (await bedOut.next((l) => l.startsWith('EXECUTE '), 20_000, 'testbed execute')).split(' ')[1];
  await bedOut.next((l) => l === 'READY', 20_000, 'testbed ready');
  const send = async (cmd, expect, ms = 20_000) => {
    bed.stdin.write(cmd + '\n');
    return bedOut.next((l) => l.startsWith(expect) || l.startsWith('TIMEOUT') || l.startsWith('ERROR'), ms, cmd);
  };

  // 2. Dashboard against it, with generated credentials (one line user:password, mode 0600).
  const credDir = mkdtempSync(path.join(os.tmpdir(), 'immunizer-browser-'));
  const credFile = path.join(credDir, 'dashboard.credentials');
  const password = randomBytes(18).toString('base64url');
  writeFileSync(credFile, `operator:${password}\n`, { mode: 0o600 });
  const dash = spawn(dashboardBin, [
    '--set', `dashboard.credentials_file=${credFile}`,
    '--set', `kafka.bootstrap=${bootstrap}`, '--set', `kafka.topic_prefix=${prefix}`,
    '--set', 'http.listen=127.0.0.1', '--set', 'http.port=0',
    '--set', `dashboard.execute_address=${execute}`, '--set', 'dashboard.group=browser-test',
    '--set', 'dashboard.execute_tls=none',  // the testbed's fake execute is plaintext
    '--set', 'dashboard.stats_interval_ms=300',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(dash);
  const dashErr = lines(dash.stderr, 'dashboard');
  lines(dash.stdout, 'dashboard');
  const portLine = await dashErr.next((l) => /http port \d+/.test(l), 30_000, 'dashboard http port');
  const port = Number(portLine.match(/http port (\d+)/)[1]);
  const url = `http://127.0.0.1:${port}/`;
  console.log(`dashboard on ${url}, broker ${bootstrap}, execute ${execute}`);

  // History before the page opens: loaded through /api/*.
  if (!(await send('alarm hist-1 medium', 'OK')).startsWith('OK')) throw new Error('cannot produce');
  await send('scores 300', 'OK');

  // 3. Browser.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  page.on('dialog', (d) => d.accept());
  // Not signed in: the page sends the browser to the login form; a wrong password is refused.
  await page.goto(url);
  await page.waitForURL(/\/login\.html$/, { timeout: 10_000 });
  await page.fill('#user', 'operator');
  await page.fill('#password', 'not-the-password');
  await page.click('#sign-in');
  await page.locator('#error', { hasText: 'wrong user or password' }).waitFor({ timeout: 10_000 });
  await page.fill('#password', password);
  await page.click('#sign-in');
  await page.waitForURL(url, { timeout: 10_000 });
  await page.locator('#who', { hasText: 'operator (operator)' }).waitFor({ timeout: 10_000 });
  const cookie = (await page.context().cookies()).find((c) => c.name === 'immunizer_session');
  if (!cookie || !cookie.httpOnly || cookie.sameSite !== 'Strict') throw new Error(`session cookie flags: ${JSON.stringify(cookie)}`);
  await page.locator('#conn', { hasText: 'live' }).waitFor({ timeout: 20_000 });
  await page.locator('tr[data-id="hist-1"]').waitFor({ timeout: 20_000 });

  // 4. An alarm produced while the page is open arrives through SSE, with its explanation.
  await send('alarm live-1 critical', 'OK');
  const row = page.locator('tr[data-id="live-1"]');
  await row.waitFor({ timeout: 20_000 });
  const text = await row.innerText();
  for (const want of ['arg.cantidad.rare_ngram', '7.5', 'sess-live-1', 'critical', '3.4', '/tienda1/publico/anadir.jsp']) {
    if (!text.toLowerCase().includes(want.toLowerCase())) throw new Error(`alarm row lacks "${want}": ${text}`);
  }
  await send('action act-1 live-1 dispatched', 'OK');
  await send('action act-1 live-1 applied', 'OK');
  await row.locator('.tag', { hasText: 'applied' }).waitFor({ timeout: 20_000 });
  await page.locator('#action-rows tr').first().waitFor({ timeout: 20_000 });
  await page.locator('#c-blocks', { hasText: '1' }).waitFor({ timeout: 20_000 });
  await page.locator('#active-rows tr', { hasText: 'sess-live-1' }).waitFor({ timeout: 20_000 });
  mkdirSync(artifacts, { recursive: true });
  const shot = path.join(artifacts, 'immunizer-dashboard.png');
  await page.screenshot({ path: shot });
  console.log(`screenshot: ${shot}`);

  // 5. "False positive" -> a Feedback message on <prefix>feedback.
  await row.locator('button.fp').click();
  const fbLine = await send('wait-feedback 20', 'FEEDBACK', 30_000);
  if (!fbLine.startsWith('FEEDBACK ')) throw new Error(`no feedback message: ${fbLine}`);
  const fb = JSON.parse(fbLine.slice('FEEDBACK '.length));
  if (fb.alarm_id !== 'live-1' || fb.verdict !== 'false_positive' || fb.session !== 'sess-live-1' ||
      fb.analyst !== 'operator' ||
      fb.key !== 'shop|http GET /tienda1/publico/anadir.jsp|') {
    throw new Error(`unexpected feedback ${fbLine}`);
  }
  await page.locator('tr[data-id="live-1"] .tag', { hasText: 'false positive' }).waitFor({ timeout: 20_000 });

  // 6. "Block" -> execute's Operations.Block.
  await page.locator('tr[data-id="live-1"] button.block').click();
  const blockLine = await send('wait-block 20', 'BLOCK', 30_000);
  if (!blockLine.startsWith('BLOCK ')) throw new Error(`no block request: ${blockLine}`);
  const blk = JSON.parse(blockLine.slice('BLOCK '.length));
  if (blk.field !== 'session' || blk.value !== 'sess-live-1') throw new Error(`unexpected block ${blockLine}`);
  await page.locator('#toast', { hasText: 'Block sent' }).waitFor({ timeout: 10_000 });
  await page.screenshot({ path: path.join(artifacts, 'immunizer-dashboard-after.png') });

  // The wrong password above logs a 401 in the console; anything else is an error.
  const unexpected = consoleErrors.filter((e) => !/401 \(Unauthorized\)/.test(e));
  if (unexpected.length) throw new Error(`browser console errors: ${unexpected.join(' | ')}`);
  bed.stdin.write('quit\n');
  clearTimeout(timer);
  await cleanup();
  console.log('PASS: login with the generated credentials; alarm shown live with its top feature; false positive -> Feedback; block -> execute');
  process.exit(0);
} catch (e) {
  clearTimeout(timer);
  await fail(e.stack || String(e));
}
