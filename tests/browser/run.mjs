// mtfu's browser test: `node tests/browser/run.mjs <mtfu base URL> <page origin>`.
//
// Serves index.html + page.js + tus-js-client's browser bundle on the page origin (an
// http://127.0.0.1:PORT that mtfu's [cors] allows) and on a second port mtfu does not allow,
// then drives Debian's chromium (never a browser Playwright downloads) through the steps in
// page.js. Prints one line per step; exits 0 when every check held, 1 otherwise.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [base, origin] = process.argv.slice(2);
if (!base || !origin) {
  console.error('usage: node run.mjs <mtfu base URL> <page origin http://127.0.0.1:PORT>');
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const files = {
  '/': ['index.html', 'text/html'],
  '/page.js': ['page.js', 'text/javascript'],
  '/tus.js': ['node_modules/tus-js-client/dist/tus.js', 'text/javascript'],
};

function serve(port) {
  const server = http.createServer((req, res) => {
    const f = files[new URL(req.url, 'http://x').pathname];
    if (!f) {
      res.writeHead(req.url === '/favicon.ico' ? 204 : 404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': f[1], 'Cache-Control': 'no-store' });
    res.end(fs.readFileSync(path.join(here, f[0])));
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

let failed = false;
function check(what, ok, detail) {
  console.log(`${ok ? 'ok' : 'FAILED'}: ${what}${detail === undefined ? '' : ` ${JSON.stringify(detail)}`}`);
  if (!ok) failed = true;
}

const MiB = 1024 * 1024;
const allowedServer = await serve(Number(new URL(origin).port));
const otherServer = await serve(0);
const other = `http://127.0.0.1:${otherServer.address().port}`;
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mtfu-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.MTFU_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  ignoreHTTPSErrors: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    // mtfu's test server has a self-signed certificate.
    '--ignore-certificate-errors',
  ],
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => console.log(`page: ${m.text()}`));
  page.on('pageerror', (e) => console.log(`page error: ${e}`));
  const at = `${origin}/?base=${encodeURIComponent(base)}`;
  await page.goto(at);

  const first = await page.evaluate(() => window.steps.loginUploadList());
  check('login, multipart upload, list', first.names.includes('form.bin'), first.names);
  check('multipart download has the same SHA-256', first.same);

  const big = await page.evaluate(() => window.steps.tus20MiB());
  check('tus: 20 MiB in 5 MiB chunks', JSON.stringify(big.offsets) === JSON.stringify([5, 10, 15, 20].map((n) => n * MiB)), big.offsets);
  check('tus download has the same SHA-256', big.same);

  const aborted = await page.evaluate(() => window.steps.startAndAbort());
  check('second upload aborted after its first chunk', aborted.offset === 5 * MiB, aborted);
  await page.reload();
  const resumed = await page.evaluate(() => window.steps.resume());
  check('resumed the same upload after a reload', resumed.url === aborted.url, resumed.url);
  check('resumed from 5 MiB, not from 0', JSON.stringify(resumed.offsets) === JSON.stringify([10 * MiB, 12 * MiB]), resumed.offsets);
  check('resumed download has the same SHA-256', resumed.same);
  check('fingerprint removed once finished', resumed.storedAfter === 0, resumed.storedAfter);

  await page.goto(`${other}/?base=${encodeURIComponent(base)}`);
  const refused = await page.evaluate(() => window.steps.refused());
  check(`a page on ${other} (not allowed) is refused`, refused === 'refused', refused);
} catch (e) {
  check('browser steps', false, String(e && e.stack ? e.stack : e));
} finally {
  await context.close();
  allowedServer.close();
  otherServer.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
