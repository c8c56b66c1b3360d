// The built app in headless Chromium: drop real files, read the dataset cards.
// Needs dist/ (trunk build), $TESSERA_DATA and a zipped Space Ranger folder at
// $TESSERA_VISIUM_ZIP (tests/run.sh makes both). Screenshots go to artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { serve } from './serve.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const root = path.resolve(here, '../..');
const data = process.env.TESSERA_DATA || path.resolve(root, '../shared/data');
const zipPath = process.env.TESSERA_VISIUM_ZIP;
const artifacts = path.join(here, 'artifacts');
fs.mkdirSync(artifacts, { recursive: true });

// Data-dependent tests fail without the data in CI and say so loudly elsewhere.
const haveData = fs.existsSync(path.join(data, 'README.md'));
if (!haveData && process.env.TESSERA_REQUIRE_DATA === '1') throw new Error(`no test data at ${data}`);
const needsData = haveData ? {} : { skip: `DID NOT RUN: no test data at ${data} (set TESSERA_DATA)` };
if (!haveData) console.error(`\n*** ${needsData.skip} ***\n`);

let server, browser, page, base;
const consoleLines = [];

before(async () => {
  assert.ok(fs.existsSync(path.join(root, 'dist/index.html')), 'dist/ missing: run trunk build first');
  server = await serve(path.join(root, 'dist'));
  base = `http://127.0.0.1:${server.address().port}/`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless=new', '--no-sandbox', '--disable-gpu-sandbox', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--enable-unsafe-webgpu'],
    // playwright gives every launch a fresh temporary profile.
  });
  // Playwright's waitForFunction evaluates strings, which the page's policy
  // refuses; tests/e2e/safety.test.mjs runs the page under it.
  page = await browser.newPage({ viewport: { width: 1200, height: 1400 }, bypassCSP: true });
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  await page.goto(base);
  await page.getByTestId('file-input').waitFor({ state: 'attached', timeout: 60_000 });
});

after(async () => {
  fs.writeFileSync(path.join(artifacts, 'console.log'), consoleLines.join('\n'));
  await browser?.close();
  server?.close();
});

const card = (i) => page.getByTestId('dataset-card').nth(i);
const text = async (loc, id) => (await loc.getByTestId(id).textContent()).trim();

/// Non-background pixels of the first card's preview canvas.
async function paintedPixels(loc) {
  return loc.getByTestId('preview').evaluate((c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 3 * 0x11 + 10) n++;
    return n;
  });
}

test('an .h5ad picked with the file input gives a correct card', needsData, async () => {
  await page.getByTestId('file-input').setInputFiles(path.join(data, 'rctd_visium_hippocampus/derived/spatial.h5ad'));
  await page.getByTestId('dataset-card').first().waitFor({ timeout: 120_000 });
  const c = card(0);
  assert.equal(await text(c, 'n-obs'), '313');
  assert.equal(await text(c, 'n-vars'), '276');
  assert.equal(await text(c, 'spatial-extent'), 'x 2928 – 4963, y 2863 – 6303');
  assert.ok(await paintedPixels(c) > 200, 'the spot preview is drawn');
  await page.screenshot({ path: path.join(artifacts, '1-h5ad-card.png'), fullPage: true });
});

test('a zipped Space Ranger folder dropped on the page gives a correct card', needsData, async () => {
  assert.ok(zipPath && fs.existsSync(zipPath), 'TESSERA_VISIUM_ZIP must point at a zipped Space Ranger folder');
  const b64 = fs.readFileSync(zipPath).toString('base64');
  const dataTransfer = await page.evaluateHandle(({ b64, name }) => {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], name, { type: 'application/zip' }));
    return dt;
  }, { b64, name: path.basename(zipPath) });
  await page.dispatchEvent('section.drop', 'drop', { dataTransfer });
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=dataset-card]').length >= 2, null, { timeout: 120_000 });
  const c = card(0);
  assert.equal(await text(c, 'n-obs'), '100');
  assert.equal(await text(c, 'n-vars'), '100');
  assert.equal(await text(c, 'spatial-extent'), 'x 2787 – 11380, y 2885 – 11026');
  const images = await text(c, 'images');
  assert.match(images, /hires 2000×2000/);
  assert.match(images, /lowres 600×600/);
  await page.screenshot({ path: path.join(artifacts, '2-space-ranger-zip-card.png'), fullPage: true });
});

test('a bad file shows a named error and the page keeps working', async () => {
  await page.getByTestId('file-input').setInputFiles({ name: 'broken.h5ad', mimeType: 'application/octet-stream', buffer: Buffer.from('this is not an HDF5 file') });
  const err = page.getByTestId('error');
  await err.waitFor({ timeout: 60_000 });
  assert.match(await err.textContent(), /broken\.h5ad: not an HDF5 file/);
  await page.screenshot({ path: path.join(artifacts, '3-error.png'), fullPage: true });
  // Still usable: the demo tissue opens and the error clears.
  await page.getByTestId('demo-button').click();
  const earlier = haveData ? 2 : 0;
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=dataset-card]').length >= n + 2, earlier, { timeout: 120_000 });
  assert.equal(await page.getByTestId('error').count(), 0);
  assert.equal(await text(card(0), 'n-obs'), '900');
  assert.equal(await text(card(1), 'n-obs'), '360');
  await page.screenshot({ path: path.join(artifacts, '4-demo-cards.png'), fullPage: true });
});

test('the page never parsed on its own thread', () => {
  // Every card came from the worker: the page bundle does not contain the readers.
  const page_js = fs.readFileSync(path.join(root, 'dist/app_bg.wasm'));
  assert.equal(page_js.includes(Buffer.from('not an HDF5 file')), false, 'HDF5 reader linked into the page');
  const worker = fs.readFileSync(path.join(root, 'dist/worker_bg.wasm'));
  assert.equal(worker.includes(Buffer.from('not an HDF5 file')), true);
  assert.ok(!consoleLines.some((l) => l.startsWith('pageerror')), consoleLines.join('\n'));
});
