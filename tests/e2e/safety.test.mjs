// A share link carries no code and no data: hostile links in headless
// Chromium, under the Content-Security-Policy www/serve.sh sends. Nothing
// in a decoded link may run as script, load from anywhere but this origin
// and the https:// sources the user sees, or reach a file name unchecked.
// Needs dist/ (trunk build).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';
import { serve, policy } from './serve.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const root = path.resolve(here, '../..');
let server, browser, base;

before(async () => {
  assert.ok(fs.existsSync(path.join(root, 'dist/index.html')), 'dist/ missing: run trunk build first');
  server = await serve(path.join(root, 'dist'), {}, { headers: { 'content-security-policy': policy(root) } });
  base = `http://127.0.0.1:${server.address().port}/`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless=new', '--no-sandbox', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic'],
  });
});

after(async () => {
  await browser?.close();
  server?.close();
});

/// A link payload as Link::encode writes it: deflated JSON in base64url.
const encode = (link) => zlib.deflateRawSync(Buffer.from(JSON.stringify(link))).toString('base64url');

const XSS = (n) => `<img src=x onerror="window.__pwned=${n}"><script>window.__pwned=${n}</script>`;

/// Opens a link in a fresh context; returns the page, every URL requested
/// (page, worker and service worker) and every policy violation.
async function openLink(link) {
  const ctx = await browser.newContext();
  const requests = [];
  const violations = [];
  ctx.on('request', (r) => requests.push(r.url()));
  const page = await ctx.newPage();
  page.on('console', (m) => { if (/Content Security Policy|Refused to/.test(m.text())) violations.push(m.text()); });
  await page.goto(`${base}#link=${encode(link)}`);
  await page.getByTestId('run-button').waitFor({ state: 'attached', timeout: 60_000 });
  return { ctx, page, requests, violations };
}

async function assertInert(page) {
  // Give a planted handler every chance to fire.
  await page.waitForTimeout(1500);
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'a link field ran as script');
  const planted = await page.evaluate(() => document.querySelectorAll('img[src="x"], iframe, object, embed, body script').length);
  assert.equal(planted, 0, 'a link field became markup');
}

test('the page and its worker run under a strict Content-Security-Policy', async () => {
  const resp = await fetch(base);
  const header = resp.headers.get('content-security-policy');
  const meta = (await resp.text()).match(/http-equiv="Content-Security-Policy" content="([^"]*)"/)[1];
  for (const p of [header, meta]) {
    assert.match(p, /script-src 'self' 'wasm-unsafe-eval';/);
    assert.doesNotMatch(p, /'unsafe-eval'|script-src[^;]*unsafe-inline|script-src[^;]*\*/);
    assert.match(p, /object-src 'none'/);
    assert.match(p, /base-uri 'none'/);
  }
  assert.equal(header.replace(/; frame-ancestors 'none'$/, ''), meta, 'Trunk.toml and index.html send one policy');
  assert.match(header, /frame-ancestors 'none'/);
  // The demo runs end to end under it: worker, wasm, WebGPU or CPU.
  const ctx = await browser.newContext();
  const violations = [];
  const page = await ctx.newPage();
  page.on('console', (m) => { if (/Content Security Policy|Refused to/.test(m.text())) violations.push(m.text()); });
  await page.goto(base);
  await page.getByTestId('demo-button').click();
  await page.getByTestId('dataset-card').nth(1).waitFor({ timeout: 120_000 });
  // Tangram's clusters mode on the demo, to a result, on the worker.
  await page.getByTestId('epochs-input').fill('5');
  await page.getByTestId('epochs-input').dispatchEvent('change');
  await page.getByTestId('mode-select').selectOption('clusters');
  await page.getByTestId('label-select').selectOption('cell_type');
  await page.getByTestId('device-select').selectOption('cpu');
  await page.locator('[data-testid=run-button]:not([disabled])').waitFor({ timeout: 30_000 });
  await page.getByTestId('run-button').click();
  await page.getByTestId('result-summary').filter({ hasText: /900 points/ }).waitFor({ timeout: 120_000 });
  // Inline script the page did not ship is refused.
  assert.equal(await page.evaluate(() => {
    const s = document.createElement('script');
    s.textContent = 'window.__inline = 1';
    document.body.appendChild(s);
    return window.__inline;
  }), undefined, 'an inline script ran');
  assert.deepEqual(violations.filter((v) => !/__inline|inline script/i.test(v)), []);
  await ctx.close();
});

test('a link with markup in every field runs nothing and fetches only its https source', async () => {
  const source = 'https://data.invalid/sp%3Cscript%3E.h5ad';
  const link = {
    v: 1,
    run: {
      params: { analysis: 'nhood', cluster_key: XSS(1) },
      inputs: { sc: null, sp: { kind: 'url', url: source } },
      device: 'cpu',
    },
    view: { color: XSS(2), vmax_pct: 99.2, zoom: 1, center: null, overlay: [XSS(3)], layer: XSS(4) },
  };
  const { ctx, page, requests, violations } = await openLink(link);
  // The source cannot be reached; the page says so, as text.
  await page.getByText(/data\.invalid/).first().waitFor({ timeout: 60_000 });
  await assertInert(page);
  const origin = new URL(base).origin;
  const foreign = requests.filter((u) => !u.startsWith(origin) && u !== source);
  assert.deepEqual(foreign, [], 'requests beyond this origin and the link\'s source');
  assert.deepEqual(violations, []);
  await ctx.close();
});

test('a link naming local files shows the names as text and loads nothing', async () => {
  const link = {
    v: 1,
    run: {
      params: { analysis: 'nhood', cluster_key: 'cell_type' },
      inputs: { sc: null, sp: { kind: 'local', files: ['../../.ssh/id_rsa', `${XSS(5)}.h5ad`] } },
      device: 'cpu',
    },
    view: { color: null, vmax_pct: 99.2, zoom: 1, center: null },
  };
  const { ctx, page, requests } = await openLink(link);
  await page.getByText(/id_rsa/).first().waitFor({ timeout: 60_000 });
  assert.match(await page.evaluate(() => document.body.innerText), /<img src=x onerror=/, 'the name is shown as typed');
  await assertInert(page);
  const origin = new URL(base).origin;
  assert.deepEqual(requests.filter((u) => !u.startsWith(origin)), []);
  await ctx.close();
});

test('links that are not https, too long or from a future version are refused with their reason', async () => {
  const good = {
    v: 1,
    run: { params: { analysis: 'nhood', cluster_key: 'cell_type' }, inputs: { sc: null, sp: { kind: 'demo' } }, device: 'cpu' },
    view: { color: null, vmax_pct: 99.2, zoom: 1, center: null },
  };
  const cases = [
    [{ ...good, run: { ...good.run, inputs: { sc: null, sp: { kind: 'url', url: 'http://example.org/a.h5ad' } } } }, /https:\/\/ address/],
    [{ ...good, run: { ...good.run, inputs: { sc: null, sp: { kind: 'url', url: 'javascript:window.__pwned=6' } } } }, /https:\/\/ address/],
    [{ ...good, v: 2 }, /link version 2/],
  ];
  for (const [link, reason] of cases) {
    const { ctx, page, requests } = await openLink(link);
    await page.getByText(/could not be opened/).first().waitFor({ timeout: 30_000 });
    assert.match(await page.evaluate(() => document.body.innerText), reason);
    await assertInert(page);
    assert.deepEqual(requests.filter((u) => !u.startsWith(new URL(base).origin)), []);
    await ctx.close();
  }
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(`${base}#link=${'A'.repeat(16_385)}`);
  await page.getByText(/longer than 16384/).first().waitFor({ timeout: 60_000 });
  await ctx.close();
});

test('no page code writes markup or evaluates strings', () => {
  // Leptos renders text as text nodes; these are the ways around that.
  const banned = /inner_html|set_inner_html|outer_html|insert_adjacent_html|document_write|\beval\b|Function::new_with_args|new_no_args/;
  const files = fs.readdirSync(path.join(root, 'app/src'), { recursive: true }).filter((f) => f.endsWith('.rs'));
  assert.ok(files.length > 10);
  for (const f of files) {
    const text = fs.readFileSync(path.join(root, 'app/src', f), 'utf8');
    assert.doesNotMatch(text, banned, `app/src/${f}`);
  }
  for (const f of ['boot.js', 'sw.js']) assert.doesNotMatch(fs.readFileSync(path.join(root, 'www', f), 'utf8'), /innerHTML|eval\(|new Function/);
});
