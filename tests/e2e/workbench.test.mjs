// The workbench in headless Chromium (WebGPU on SwiftShader): run Tangram in
// the page on a real pair and on the demo pair, compare the downloaded table
// with the native CLI, reopen a results bundle and a share link, stop a run,
// and feed a malformed link and a corrupt bundle. Needs dist/ (trunk build),
// $TESSERA_DATA and the native CLI at $TESSERA_BIN (default
// target/debug/tessera). Screenshots go to artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';
import { PNG } from 'playwright-core/lib/utilsBundle';
import { serve, policy, selfSigned } from './serve.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const root = path.resolve(here, '../..');
const data = process.env.TESSERA_DATA || path.resolve(root, '../shared/data');
const bin = process.env.TESSERA_BIN || path.join(root, 'target/debug/tessera');
const artifacts = path.join(here, 'artifacts');
fs.mkdirSync(artifacts, { recursive: true });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-e2e-'));

const haveData = fs.existsSync(path.join(data, 'README.md'));
if (!haveData && process.env.TESSERA_REQUIRE_DATA === '1') throw new Error(`no test data at ${data}`);
const needsData = haveData ? {} : { skip: `DID NOT RUN: no test data at ${data} (set TESSERA_DATA)` };
if (!haveData) console.error(`\n*** ${needsData.skip} ***\n`);

const pair = 'rctd_visium_hippocampus/derived';
const RUN_TIMEOUT = 300_000;
// WebGPU on SwiftShader costs ~0.3-0.6 s per epoch, so the page runs are
// short; the command line runs the same number for the comparison.
const EPOCHS = 30;
let server, dataServer, browser, contextOptions, base, dataBase;
const consoleLines = [];

before(async () => {
  assert.ok(fs.existsSync(path.join(root, 'dist/index.html')), 'dist/ missing: run trunk build first');
  assert.ok(fs.existsSync(bin), `the native CLI is missing at ${bin} (cargo build --features cli)`);
  // The page under the policy www/serve.sh sends; public datasets from an
  // https host of their own, as a link's sources must be.
  server = await serve(path.join(root, 'dist'), {}, { headers: { 'content-security-policy': policy(root) } });
  base = `http://127.0.0.1:${server.address().port}/`;
  dataServer = await serve(tmp, haveData ? { '/data/': data } : {},
    { tls: selfSigned(tmp), headers: { 'access-control-allow-origin': '*' } });
  dataBase = `https://127.0.0.1:${dataServer.address().port}/data/`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // The data host's certificate is self-signed: the service worker's
    // fetches too must accept it (ignoreHTTPSErrors covers the page only).
    args: ['--headless=new', '--no-sandbox', '--disable-gpu-sandbox', '--disable-quic', '--no-first-run', '--ignore-certificate-errors',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--enable-unsafe-webgpu',
      // Without these, headless Chromium on SwiftShader composites no canvas
      // at all once the page holds a WebGPU canvas context.
      '--use-angle=swiftshader', '--enable-features=Vulkan', '--use-vulkan=swiftshader'],
  });
  // Playwright's waitForFunction evaluates strings, which the page's policy
  // refuses; tests/e2e/safety.test.mjs runs the page under it.
  contextOptions = { viewport: { width: 1200, height: 1600 }, acceptDownloads: true, ignoreHTTPSErrors: true, bypassCSP: true };
});

after(async () => {
  fs.writeFileSync(path.join(artifacts, 'workbench-console.log'), consoleLines.join('\n'));
  await browser?.close();
  server?.close();
  dataServer?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function open(url = base) {
  // A context of its own: a result an earlier test's page kept across
  // reloads (Cache Storage) must not reopen here.
  const ctx = await browser.newContext(contextOptions);
  const page = await ctx.newPage();
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  await page.goto(url);
  await page.getByTestId('run-button').waitFor({ state: 'attached', timeout: 60_000 });
  return page;
}

const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `workbench-${name}.png`), fullPage: true });

/// Lit pixels of the result canvas, from a screenshot (a WebGPU canvas
/// cannot be read back from script once presented).
async function litPixels(page) {
  const png = PNG.sync.read(await page.getByTestId('result-canvas').screenshot());
  let lit = 0;
  for (let i = 0; i < png.data.length; i += 4) {
    if (png.data[i] + png.data[i + 1] + png.data[i + 2] > 3 * 0x11 + 30) lit++;
  }
  return { lit, png };
}

/// Lit pixels once at least `min` are lit, or the last count after `timeout`:
/// the renderer is made asynchronously and may draw a frame after the result
/// shows, and a screenshot may catch the canvas before that frame.
async function drawnPixels(page, min, timeout = 15_000) {
  await page.waitForFunction(() => document.querySelector('[data-testid=renderer]')?.textContent.length > 0, null, { timeout });
  const until = Date.now() + timeout;
  for (;;) {
    const got = await litPixels(page);
    if (got.lit >= min || Date.now() > until) return got;
    await page.waitForTimeout(250);
  }
}

async function waitResult(page, timeout = RUN_TIMEOUT) {
  await page.waitForFunction(() => {
    const s = document.querySelector('[data-testid=result-summary]');
    const busy = document.querySelector('[data-testid=progress]');
    return s && s.textContent.length > 0 && !busy;
  }, null, { timeout });
}

async function download(page, testid, name) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.getByTestId(testid).click()]);
  const file = path.join(tmp, name);
  await dl.saveAs(file);
  return file;
}

function parseCsv(text) {
  const lines = text.trim().split('\n');
  const head = lines[0].split(',').slice(1);
  const rows = new Map(lines.slice(1).map((l) => { const f = l.split(','); return [f[0], f.slice(1).map(Number)]; }));
  return { head, rows };
}

function assertCsvClose(gotFile, wantFile, tol) {
  const got = parseCsv(fs.readFileSync(gotFile, 'utf8'));
  const want = parseCsv(fs.readFileSync(wantFile, 'utf8'));
  assert.deepEqual(got.head, want.head, 'same cell types in the same order');
  assert.equal(got.rows.size, want.rows.size, 'same spots');
  let worst = 0;
  for (const [spot, w] of want.rows) {
    const g = got.rows.get(spot);
    assert.ok(g, `spot ${spot} missing from the page's table`);
    w.forEach((v, j) => { worst = Math.max(worst, Math.abs(v - g[j])); });
  }
  assert.ok(worst <= tol, `largest difference ${worst} > ${tol}`);
  return worst;
}

function cli(sc, sp, out) {
  const t0 = Date.now();
  execFileSync(bin, ['tangram', '--sc', sc, '--sp', sp, '--mode', 'clusters', '--cluster-label', 'cell_type',
    '--seed', '42', '--epochs', String(EPOCHS), '--device', 'cpu', '--out', out], { stdio: 'pipe' });
  console.log(`command line (${path.basename(bin)}, CPU): ${((Date.now() - t0) / 1e3).toFixed(1)} s including reading`);
  return path.join(out, 'tangram_ct_pred.csv');
}

async function setEpochs(page, n) {
  await page.getByTestId('epochs-input').fill(String(n));
  await page.getByTestId('epochs-input').dispatchEvent('change');
}

async function runClusters(page, epochs = EPOCHS) {
  await setEpochs(page, epochs);
  await page.getByTestId('mode-select').selectOption('clusters');
  await page.getByTestId('label-select').selectOption('cell_type');
  await page.getByTestId('seed-input').fill('42');
  await page.getByTestId('seed-input').dispatchEvent('change');
  await page.waitForFunction(() => !document.querySelector('[data-testid=run-button]').disabled, null, { timeout: 30_000 });
  await page.getByTestId('run-button').click();
}

let realPage, realCsv;

test('Tangram on a real pair in the page matches the command line', needsData, async () => {
  const page = realPage = await open();
  await page.getByTestId('file-input').setInputFiles([path.join(data, pair, 'reference.h5ad'), path.join(data, pair, 'spatial.h5ad')]);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=dataset-card]').length >= 2, null, { timeout: 120_000 });
  await runClusters(page);
  await page.getByTestId('progress').waitFor({ timeout: 60_000 });
  await page.waitForFunction(() => /epoch \d+ of 30/.test(document.querySelector('[data-testid=progress-text]')?.textContent || ''), null, { timeout: 120_000 });
  await shot(page, '1-running');
  await waitResult(page);
  await shot(page, '2-result');
  console.log(`page: ${await page.getByTestId('result-summary').textContent()}`);
  assert.equal(await page.getByTestId('error').count(), 0);
  const { lit } = await drawnPixels(page, 2001);
  assert.ok(lit > 2000, `the spatial plot is drawn (${lit} lit pixels)`);
  assert.match(await page.getByTestId('renderer').textContent(), /WebGPU/);
  assert.match(await page.getByTestId('result-summary').textContent(), /313 points/);
  // Tangram's plot_training_scores: the histogram and three scatter panels,
  // a dot per training gene.
  const scores = page.getByTestId('training-scores');
  assert.equal(await scores.locator('svg').count(), 4);
  const genes = (await page.getByTestId('training-scores').locator('figcaption').textContent()).match(/(\d+) genes/)[1];
  assert.equal(await scores.locator('svg').nth(1).locator('circle').count(), Number(genes));

  realCsv = await download(page, 'download-csv', 'page_ct_pred.csv');
  const want = cli(path.join(data, pair, 'reference.h5ad'), path.join(data, pair, 'spatial.h5ad'), path.join(tmp, 'cli_real'));
  const worst = assertCsvClose(realCsv, want, 1e-3);
  console.log(`real pair: page vs CLI tangram_ct_pred max |diff| ${worst.toExponential(2)}`);
  const h5ad = fs.readFileSync(await download(page, 'download-h5ad', 'sp_mapped.h5ad'));
  assert.equal(h5ad.subarray(0, 8).toString('latin1'), '\x89HDF\r\n\x1a\n', 'sp_mapped.h5ad is an HDF5 file');
});

test('the results bundle reopens to the same view after a reload', needsData, async () => {
  const page = realPage;
  // A view of its own: one cell type, another vmax, zoomed in.
  const types = await page.getByTestId('color-select').locator('option').allTextContents();
  const type = types[2];
  await page.getByTestId('color-select').selectOption(type);
  await page.getByTestId('vmax-input').fill('95');
  await page.getByTestId('result-canvas').hover({ position: { x: 320, y: 320 } });
  await page.mouse.wheel(0, -300);
  await page.waitForTimeout(500);
  // Move off the canvas so nothing but the view is in the picture.
  await page.mouse.move(5, 5);
  await page.waitForTimeout(300);
  const legend = await page.getByTestId('legend').textContent();
  assert.match(legend, new RegExp(`${type}: 0 \\(dark\\) to .* p95`));
  const before = (await litPixels(page)).png;
  const link = await page.getByTestId('share-link').inputValue();
  await shot(page, '3-own-view');
  // The bundle link's target is restamped with the view once it rests; its
  // bytes are read from that link (the download mechanics of such links are
  // exercised by the table and AnnData links above).
  await page.waitForTimeout(400);
  const b64 = await page.evaluate(async () => {
    const a = document.querySelector('[data-testid=download-bundle]');
    if (!a.href.startsWith('blob:')) throw new Error(`bundle link not ready: ${a.href}`);
    const bytes = new Uint8Array(await (await fetch(a.href)).arrayBuffer());
    let bin = '';
    for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(bin);
  });
  assert.equal(await page.getByTestId('download-bundle').getAttribute('download'), 'tessera_results.zip');
  const bundle = path.join(tmp, 'tessera_results.zip');
  fs.writeFileSync(bundle, Buffer.from(b64, 'base64'));

  await page.reload();
  // The result was kept across the reload, until discarded.
  await page.getByText(/kept from before the reload/).waitFor({ timeout: 60_000 });
  await waitResult(page, 60_000);
  assert.match(await page.getByTestId('result-summary').textContent(), /opened from a results bundle/);
  // The downloaded bundle, with its own view, opens over it.
  await page.getByTestId('file-input').setInputFiles(bundle);
  await page.waitForFunction((l) => document.querySelector('[data-testid=legend]')?.textContent === l, legend, { timeout: 60_000 });
  assert.equal(await page.getByTestId('legend').textContent(), legend);
  assert.equal(await page.getByTestId('color-select').inputValue(), type);
  assert.equal(await page.getByTestId('share-link').inputValue(), link);
  assert.match(await page.getByTestId('result-summary').textContent(), /opened from a results bundle/);
  await page.waitForFunction(() => document.querySelector('[data-testid=renderer]')?.textContent.length > 0);
  await page.waitForTimeout(500);
  const after = (await litPixels(page)).png;
  fs.writeFileSync(path.join(artifacts, 'workbench-3-canvas-before.png'), PNG.sync.write(before));
  fs.writeFileSync(path.join(artifacts, 'workbench-4-canvas-after.png'), PNG.sync.write(after));
  assert.equal(after.width, before.width);
  // The page around the canvas moved (no cards now), which can shift the
  // element screenshot by a pixel: compare under the best one-pixel shift.
  const { width: w, height: h } = after;
  let differ = Infinity;
  for (const [dx, dy] of [[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [-1, -1], [1, -1], [-1, 1]]) {
    let n = 0;
    for (let y = 1; y < h - 1; y++) {
      for (let x = 1; x < w - 1; x++) {
        const i = (y * w + x) * 4, j = ((y + dy) * w + x + dx) * 4;
        if ([0, 1, 2].some((c) => Math.abs(after.data[i + c] - before.data[j + c]) > 48)) n++;
      }
    }
    differ = Math.min(differ, n);
  }
  assert.ok(differ / (w * h) < 0.01, `the reopened plot differs in ${differ} pixels`);
  const csv = await download(page, 'download-csv', 'bundle_ct_pred.csv');
  assert.equal(fs.readFileSync(csv, 'utf8'), fs.readFileSync(realCsv, 'utf8'), 'the bundle carries the same table');
  await shot(page, '4-bundle-reopened');
  // Discard forgets it: the next load starts empty.
  await page.getByTestId('discard-result').click();
  await page.getByTestId('result-summary').waitFor({ state: 'detached', timeout: 10_000 });
  await page.reload();
  await page.getByTestId('run-button').waitFor({ state: 'attached', timeout: 60_000 });
  await page.waitForTimeout(2000);
  assert.equal(await page.getByTestId('result-summary').count(), 0, 'a discarded result came back');
  assert.equal(await page.getByText(/kept from before the reload/).count(), 0);
});

test('a run on public URLs reopens from its share link in a new page', needsData, async () => {
  const page = await open();
  for (const f of ['reference.h5ad', 'spatial.h5ad']) {
    await page.getByTestId('url-input').fill(`${dataBase}${pair}/${f}`);
    await page.getByTestId('url-button').click();
    await page.waitForFunction(() => !document.querySelector('[data-testid=busy]'), null, { timeout: 60_000 });
  }
  assert.equal(await page.getByTestId('dataset-card').count(), 2);
  await runClusters(page);
  await waitResult(page);
  // Two cell types overlaid in one panel, as cell2location's plot_spatial.
  const types = await page.getByTestId('color-select').locator('option').allTextContents();
  await page.getByTestId('overlay-select').selectOption([types[1], types[3]]);
  const legend = await page.getByTestId('legend').textContent();
  assert.match(legend, new RegExp(`overlay of ${types[1]}, ${types[3]}`));
  assert.equal(await page.getByTestId('overlay-swatches').locator('li').count(), 2);
  await shot(page, '5-overlay');
  const link = await page.getByTestId('share-link').inputValue();
  assert.match(link, /#link=[A-Za-z0-9_-]+$/);
  const csv = await download(page, 'download-csv', 'url_ct_pred.csv');
  assert.equal(fs.readFileSync(csv, 'utf8'), fs.readFileSync(realCsv, 'utf8'), 'URL inputs give the dropped files\' result');

  const other = await open(link);
  await waitResult(other);
  assert.equal(await other.getByTestId('legend').textContent(), legend);
  assert.equal(await other.getByTestId('share-link').inputValue(), link);
  const again = await download(other, 'download-csv', 'link_ct_pred.csv');
  assert.equal(fs.readFileSync(again, 'utf8'), fs.readFileSync(csv, 'utf8'), 'the link re-runs with the same seed');
  await shot(other, '5-share-link-reopened');
  await other.close();
  await page.close();
});

test('the demo pair runs in the page and matches the command line; its link replays it', async () => {
  const page = await open();
  await page.getByTestId('demo-button').click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=dataset-card]').length >= 2, null, { timeout: 120_000 });
  await runClusters(page);
  await waitResult(page);
  const { lit } = await drawnPixels(page, 2001);
  assert.ok(lit > 2000, `the demo plot is drawn (${lit} lit pixels)`);
  await shot(page, '6-demo-result');
  const csv = await download(page, 'download-csv', 'demo_ct_pred.csv');
  const demo = path.join(tmp, 'demo');
  execFileSync(bin, ['demo', '--out', demo], { stdio: 'pipe' });
  const want = cli(path.join(demo, 'demo_reference.h5ad'), path.join(demo, 'demo_spatial.h5ad'), path.join(tmp, 'cli_demo'));
  const worst = assertCsvClose(csv, want, 1e-3);
  console.log(`demo pair: page vs CLI tangram_ct_pred max |diff| ${worst.toExponential(2)}`);

  const link = await page.getByTestId('share-link').inputValue();
  const other = await open(link);
  await waitResult(other);
  assert.equal(await other.getByTestId('legend').textContent(), await page.getByTestId('legend').textContent());
  await other.close();
  await page.close();
});

test('neighbourhood enrichment in the page gives squidpy\'s z-scores, with a heatmap', needsData, async () => {
  const page = await open();
  await page.getByTestId('file-input').setInputFiles(path.join(data, 'seqfish_cortex_tasic/derived/seqfish_spatial.h5ad'));
  await page.getByTestId('dataset-card').first().waitFor({ timeout: 120_000 });
  await page.getByTestId('analysis-select').selectOption('nhood');
  await page.getByTestId('cluster-key-select').selectOption('cell_type');
  await page.getByTestId('graph-select').selectOption('radius');
  await page.getByTestId('radius-input').fill('100');
  await page.getByTestId('radius-input').dispatchEvent('change');
  await page.waitForFunction(() => !document.querySelector('[data-testid=run-button]').disabled, null, { timeout: 30_000 });
  await page.getByTestId('run-button').click();
  await waitResult(page, 120_000);
  assert.equal(await page.getByTestId('heatmap').count(), 2);
  assert.ok((await drawnPixels(page, 2001)).lit > 2000, 'cells are drawn');
  await shot(page, '10-nhood');
  const got = parseCsv(fs.readFileSync(await download(page, 'download-csv', 'nhood_zscore.csv'), 'utf8'));
  const want = parseCsv(fs.readFileSync(path.join(data, 'ref/squidpy/seqfish_cortex/radius100_nhood_enrichment_zscore.csv'), 'utf8'));
  assert.deepEqual(got.head, want.head);
  let worst = 0;
  for (const [k, w] of want.rows) w.forEach((v, j) => { worst = Math.max(worst, Math.abs(v - got.rows.get(k)[j])); });
  assert.ok(worst < 1e-9, `z-scores differ from squidpy's by ${worst}`);
  console.log(`nhood in the page vs squidpy 1.8.2: max |z diff| ${worst.toExponential(2)}`);
  const h5ad = fs.readFileSync(await download(page, 'download-h5ad', 'sp_nhood.h5ad'));
  assert.equal(h5ad.subarray(0, 8).toString('latin1'), '\x89HDF\r\n\x1a\n');
  await page.close();
});

/// A float64 little-endian .npy's values (numpy's v1 header).
function npyValues(file) {
  const b = fs.readFileSync(file);
  const header = b.readUInt16LE(8);
  const body = b.subarray(10 + header);
  return Array.from({ length: body.length / 8 }, (_, i) => body.readDoubleLE(i * 8));
}

async function runWhenReady(page, timeout = 120_000) {
  await page.waitForFunction(() => !document.querySelector('[data-testid=run-button]').disabled, null, { timeout: 30_000 });
  await page.getByTestId('run-button').click();
  await waitResult(page, timeout);
}

async function fill(page, testid, value) {
  await page.getByTestId(testid).fill(value);
  await page.getByTestId(testid).dispatchEvent('change');
}

test('co-occurrence, Moran\'s I and niches in the page match squidpy and the command line', needsData, async () => {
  const h5ad = path.join(data, 'seqfish_cortex_tasic/derived/seqfish_spatial.h5ad');
  const page = await open();
  await page.getByTestId('file-input').setInputFiles(h5ad);
  await page.getByTestId('dataset-card').first().waitFor({ timeout: 120_000 });

  // Co-occurrence: squidpy's ratios, one line panel per type.
  await page.getByTestId('analysis-select').selectOption('cooccurrence');
  await page.getByTestId('cluster-key-select').selectOption('cell_type');
  await runWhenReady(page);
  assert.equal(await page.getByTestId('line-plot').count(), 1);
  const panels = await page.getByTestId('lines-select').locator('option').count();
  await page.getByTestId('lines-select').selectOption({ index: 2 });
  assert.ok(panels > 2 && await page.getByTestId('line-plot').locator('path').count() === panels, 'a line per type');
  await shot(page, '11-cooccurrence');
  const long = fs.readFileSync(await download(page, 'download-csv', 'co_occurrence.csv'), 'utf8').trim().split('\n').slice(1);
  const want = npyValues(path.join(data, 'ref/squidpy/seqfish_cortex/co_occurrence_occ.npy'));
  assert.equal(long.length, want.length);
  let worst = 0;
  long.forEach((l, i) => { worst = Math.max(worst, Math.abs(Number(l.split(',').at(-1)) - want[i])); });
  assert.ok(worst < 1e-4, `co-occurrence differs from squidpy's by ${worst}`);
  console.log(`co-occurrence in the page vs squidpy 1.8.2: max |diff| ${worst.toExponential(2)}`);

  // Moran's I on five genes: squidpy's order and values, a bar table, the top gene shown.
  await page.getByTestId('analysis-select').selectOption('autocorr');
  await fill(page, 'genes-input', 'abca9, acta2, abca15, adcy4, aldh3b2');
  await runWhenReady(page);
  const first = page.getByTestId('bars').locator('tbody tr').first();
  assert.match(await first.textContent(), /^acta2\s*0\.3254/);
  assert.match(await page.getByTestId('legend').textContent(), /^acta2: 0 \(dark\)/);
  await shot(page, '12-moran');
  const moran = fs.readFileSync(await download(page, 'download-csv', 'moranI.csv'), 'utf8').split('\n');
  assert.ok(Math.abs(Number(moran[1].split(',')[1]) - 0.32543184150119775) < 1e-6, moran[1]);
  assert.deepEqual(moran.slice(1, 6).map((l) => l.split(',')[0]), ['acta2', 'abca15', 'aldh3b2', 'adcy4', 'abca9']);

  // Niches at radius 100: the command line's table, a dot plot and a heatmap, two layers.
  await page.getByTestId('analysis-select').selectOption('niche');
  await page.getByTestId('cluster-key-select').selectOption('cell_type');
  await fill(page, 'radius-input', '100');
  await runWhenReady(page);
  assert.equal(await page.getByTestId('dotplot').count(), 1);
  assert.equal(await page.getByTestId('heatmap').count(), 1);
  assert.match(await page.getByTestId('legend').textContent(), /largest of niche composition/);
  await page.getByTestId('layer-select').selectOption('cell_type');
  assert.match(await page.getByTestId('legend').textContent(), /largest of cell_type/);
  assert.ok((await drawnPixels(page, 2001)).lit > 2000, 'cells are drawn');
  await shot(page, '13-niche');
  const niches = await download(page, 'download-csv', 'niche_composition.csv');
  const out = path.join(tmp, 'cli_niche');
  execFileSync(bin, ['spatial', 'niche', h5ad, '--labels', 'cell_type', '--radius', '100', '--out', out], { stdio: 'pipe' });
  assert.equal(fs.readFileSync(niches, 'utf8'), fs.readFileSync(path.join(out, 'niche_composition.csv'), 'utf8'));
  await page.close();
});

test('the multi-omics demo runs in the page, matches the command line, and its link replays it', async () => {
  const page = await open();
  await page.getByTestId('demo-multiomics-button').click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=dataset-card]').length >= 2, null, { timeout: 120_000 });
  await page.getByTestId('analysis-select').selectOption('multiomics');
  await page.getByTestId('device-select').selectOption('cpu');
  await page.waitForFunction(() => /4 marker sets/.test(document.querySelector('[data-testid=run-check]').textContent), null, { timeout: 30_000 });
  await runWhenReady(page, RUN_TIMEOUT);
  assert.equal(await page.getByTestId('heatmap').count(), 1, 'co-localization');
  assert.equal(await page.getByTestId('dotplot').count(), 2, 'niches and protein loadings');
  const legend = await page.getByTestId('legend').textContent();
  assert.match(legend, /largest of cell_type/);
  const swatches = await page.getByTestId('swatches').locator('li').allTextContents();
  assert.deepEqual([...swatches].sort(), ['Epithelial', 'Fibroblasts', 'Macrophages', 'T cells']);
  await page.getByTestId('layer-select').selectOption({ index: 1 });
  await page.getByTestId('color-select').selectOption({ index: 1 });
  const shown = await page.getByTestId('legend').textContent();
  assert.match(shown, /^F1 /);
  await shot(page, '14-multiomics');
  const labels = fs.readFileSync(await download(page, 'download-csv', 'shared_labels.csv'), 'utf8');
  const h5 = fs.readFileSync(await download(page, 'download-h5ad', 'multiomics.h5ad'));
  assert.equal(h5.subarray(0, 8).toString('latin1'), '\x89HDF\r\n\x1a\n');
  const out = path.join(tmp, 'cli_multiomics');
  execFileSync(bin, ['multiomics', '--demo', '--demo-cells', '800', '--device', 'cpu', '--output', out], { stdio: 'pipe' });
  const rows = (t) => t.trim().split('\n').slice(1).map((l) => l.split(','));
  const [got, want] = [rows(labels), rows(fs.readFileSync(path.join(out, 'shared_labels.csv'), 'utf8'))];
  assert.equal(got.length, 800);
  assert.equal(got.length, want.length);
  const same = got.filter((r, i) => r[3] === want[i][3]).length;
  assert.ok(same >= 796, `${same} of 800 labels as the command line`);
  console.log(`multi-omics demo: ${same} of 800 labels as the command line`);

  const link = await page.getByTestId('share-link').inputValue();
  const other = await open(link);
  await waitResult(other, RUN_TIMEOUT);
  assert.equal(await other.getByTestId('legend').textContent(), shown, 'the link reopens the same layer and colour');
  await other.waitForFunction(() => document.querySelectorAll('[data-testid=dataset-card]').length === 2, null, { timeout: 60_000 });
  await shot(other, '15-multiomics-link');
  await other.close();
  await page.close();
});

// Stopped after its first checkpoint and run again after a reload (as a
// closed tab would be), the fit goes on from the kept checkpoint and still
// ends where the command line's uninterrupted fit does.
test('NSF in the page gives the command line\'s factors for the same seed, through a stop and a reload', needsData, async () => {
  const h5ad = path.join(data, 'nsf_simulations/S1.h5ad');
  const page = await open();
  const setUp = async () => {
    await page.getByTestId('file-input').setInputFiles(h5ad);
    await page.getByTestId('dataset-card').first().waitFor({ timeout: 120_000 });
    await page.getByTestId('analysis-select').selectOption('nsf');
    await page.getByTestId('device-select').selectOption('cpu');
    await fill(page, 'nsf-factors-input', '3');
    await fill(page, 'nsf-inducing-input', '60');
    await fill(page, 'nsf-epochs-input', '200');
    await fill(page, 'nsf-seed-input', '7');
    await page.waitForFunction(() => /NSF of 1296 observations/.test(document.querySelector('[data-testid=run-check]').textContent), null, { timeout: 30_000 });
    await page.waitForFunction(() => !document.querySelector('[data-testid=run-button]').disabled, null, { timeout: 30_000 });
  };
  await setUp();
  await page.getByTestId('run-button').click();
  await page.getByTestId('progress-kept').waitFor({ timeout: RUN_TIMEOUT });
  await page.getByTestId('stop-button').click();
  await page.getByTestId('progress').waitFor({ state: 'detached', timeout: 10_000 });
  const stopped = await page.getByTestId('notice').textContent();
  const kept = Number(stopped.match(/checkpoint at epoch (\d+) is kept/)?.[1]);
  assert.ok(kept >= 10 && kept < 200, stopped);
  await page.reload();
  await setUp();
  await page.getByTestId('run-button').click();
  await page.waitForFunction(() => /goes on from the checkpoint/.test(document.querySelector('[data-testid=notice]')?.textContent || ''), null, { timeout: 60_000 });
  // The one shown as kept, or a later one whose store was under way.
  const resumed = Number((await page.getByTestId('notice').textContent()).match(/left at epoch (\d+)/)?.[1]);
  assert.ok(resumed >= kept && resumed < 200, `kept ${kept}, resumed from ${resumed}`);
  await waitResult(page);
  assert.equal(await page.getByTestId('heatmap').count(), 1, 'the loadings of the top genes');
  await page.getByTestId('layer-select').selectOption('factor 2');
  assert.match(await page.getByTestId('legend').textContent(), /factor 2/);
  await shot(page, '16-nsf');
  const got = await download(page, 'download-csv', 'factors.csv');
  const out = path.join(tmp, 'cli_nsf');
  execFileSync(bin, ['nsf', '--data', h5ad, '--factors', '3', '--inducing', '60', '--epochs', '200', '--seed', '7',
    '--device', 'cpu', '--out', out], { stdio: 'pipe' });
  // The same fit in f32 on both sides; only the order of sums differs.
  const worst = assertCsvClose(got, path.join(out, 'factors.csv'), 2e-3);
  console.log(`NSF factors in the page (stopped, reloaded, resumed from epoch ${resumed}) vs the command line: max |diff| ${worst.toExponential(2)}`);
  await page.close();
});

// The cells with at least 500 counts (about a tenth) keep the run short.
test('RESOLVI in the page on the Xenium cells: fractions as the command line, genes raw and corrected, DE, predicted labels and niche abundance', needsData, async () => {
  const h5ad = path.join(data, 'xenium_mouse_brain_small/derived/xenium.h5ad');
  const page = await open();
  await page.getByTestId('file-input').setInputFiles(h5ad);
  await page.getByTestId('dataset-card').first().waitFor({ timeout: 120_000 });
  await page.getByTestId('analysis-select').selectOption('resolvi');
  await page.getByTestId('device-select').selectOption('cpu');
  await fill(page, 'resolvi-min-counts-input', '500');
  await fill(page, 'resolvi-epochs-input', '1');
  await fill(page, 'resolvi-seed-input', '3');
  await page.getByTestId('resolvi-groupby-select').selectOption('resolvi_leiden');
  await fill(page, 'resolvi-group1-input', '0');
  await page.waitForFunction(() => /RESOLVI \(unsupervised\) on 36602 cells/.test(document.querySelector('[data-testid=run-check]').textContent), null, { timeout: 30_000 });
  await runWhenReady(page, 900_000);
  assert.equal(await page.getByTestId('error').count(), 0);
  const kept = Number((await page.getByTestId('result-summary').textContent()).match(/(\d+) points/)[1]);
  assert.ok(kept > 1000 && kept < 36447, `${kept} cells with at least 500 counts`);
  const layers = await page.getByTestId('layer-select').locator('option').allTextContents();
  for (const l of ['true fraction', 'diffused fraction', 'background fraction', 'latent clusters (Leiden)']) assert.ok(layers.includes(l), `${l} in ${layers}`);
  assert.ok(layers.some((l) => / raw$/.test(l)) && layers.some((l) => / corrected$/.test(l)), `${layers}`);
  await page.getByTestId('layer-select').selectOption('diffused fraction');
  assert.ok((await drawnPixels(page, 2001)).lit > 2000, 'cells are drawn');
  await shot(page, '17-resolvi');
  assert.ok(await page.getByText('de.csv').count() >= 1, 'the DE table is offered');
  const got = await download(page, 'download-csv', 'fractions.csv');
  const out = path.join(tmp, 'cli_resolvi');
  execFileSync(bin, ['resolvi', '--data', h5ad, '--min-counts', '500', '--epochs', '1', '--seed', '3',
    '--device', 'cpu', '--out', out], { stdio: 'pipe' });
  const worst = assertCsvClose(got, path.join(out, 'fractions.csv'), 2e-3);
  console.log(`RESOLVI fractions in the page vs the command line: max |diff| ${worst.toExponential(2)}`);
  await page.close();

  // Semi-supervised on the same cells, labelled by the first run's latent
  // clusters: predicted labels and niche abundance in the page.
  const labelled = await open();
  await labelled.getByTestId('file-input').setInputFiles(path.join(out, 'corrected.h5ad'));
  await labelled.getByTestId('dataset-card').first().waitFor({ timeout: 120_000 });
  await labelled.getByTestId('analysis-select').selectOption('resolvi');
  await labelled.getByTestId('device-select').selectOption('cpu');
  await labelled.getByTestId('resolvi-labels-select').selectOption('resolvi_leiden');
  await fill(labelled, 'resolvi-epochs-input', '1');
  await labelled.getByTestId('resolvi-groupby-select').selectOption('resolvi_leiden');
  await fill(labelled, 'resolvi-group1-input', '0');
  await labelled.waitForFunction(() => /RESOLVI \(semi-supervised\)/.test(document.querySelector('[data-testid=run-check]').textContent), null, { timeout: 30_000 });
  await runWhenReady(labelled, 900_000);
  assert.equal(await labelled.getByTestId('error').count(), 0);
  assert.equal(await labelled.getByTestId('layer-select').inputValue(), 'predicted cell type');
  assert.match(await labelled.getByTestId('legend').textContent(), /largest of predicted cell type/);
  for (const f of ['predictions.csv', 'de.csv', 'niche_abundance.csv']) assert.ok(await labelled.getByText(f).count() >= 1, `${f} offered`);
  await shot(labelled, '18-resolvi-labels');
  await labelled.close();
});

test('a Space Ranger folder\'s H&E image lies under its spots, and can be hidden', needsData, async () => {
  const zip = process.env.TESSERA_VISIUM_ZIP;
  assert.ok(zip && fs.existsSync(zip), 'TESSERA_VISIUM_ZIP must point at a zipped Space Ranger folder');
  const page = await open();
  await page.getByTestId('file-input').setInputFiles(zip);
  await page.getByTestId('dataset-card').first().waitFor({ timeout: 120_000 });
  await page.getByTestId('analysis-select').selectOption('autocorr');
  await runWhenReady(page);
  const toggle = page.getByTestId('image-toggle');
  assert.equal(await toggle.isChecked(), true);
  await drawnPixels(page, 501);
  const withImage = await litPixels(page);
  await shot(page, '16-he-image');
  await toggle.uncheck();
  const without = await litPixels(page);
  // 100 spots cover a few percent of the canvas; the tissue much more.
  console.log(`H&E under the spots: ${withImage.lit} lit pixels with the image, ${without.lit} without`);
  assert.ok(withImage.lit > 3 * without.lit && without.lit > 500, `${withImage.lit} vs ${without.lit}`);
  assert.match(await page.getByTestId('share-link').inputValue(), /#link=/);
  await page.close();
});

test('once loaded, the page works offline: it reloads and opens the demo', async () => {
  // Its own server and context: the server is shut down to go offline
  // (emulated offline does not reach a service worker's own fetches).
  const own = await serve(path.join(root, 'dist'));
  const url = `http://127.0.0.1:${own.address().port}/`;
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 1600 }, bypassCSP: true });
  const page = await ctx.newPage();
  page.on('console', (m) => consoleLines.push(`offline ${m.type()}: ${m.text()}`));
  await page.goto(url);
  await page.getByTestId('run-button').waitFor({ state: 'attached', timeout: 60_000 });
  await page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
  await page.waitForFunction(async () => !!(await caches.match('./worker_bg.wasm')), null, { timeout: 60_000 });
  own.closeAllConnections();
  await new Promise((done) => own.close(done));
  await page.reload();
  await page.getByTestId('run-button').waitFor({ state: 'attached', timeout: 60_000 });
  await page.getByTestId('demo-button').click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=dataset-card]').length >= 2, null, { timeout: 120_000 });
  await runClusters(page, 5);
  await waitResult(page);
  assert.match(await page.getByTestId('result-summary').textContent(), /900 points/);
  await page.screenshot({ path: path.join(artifacts, 'workbench-17-offline.png'), fullPage: true });
  await ctx.close();
});

test('cell2location on the demo pair in the page matches the command line', async () => {
  const page = await open();
  await page.getByTestId('demo-button').click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=dataset-card]').length >= 2, null, { timeout: 120_000 });
  await page.getByTestId('analysis-select').selectOption('cell2location');
  await page.getByTestId('c2l-label-select').selectOption('cell_type');
  await page.getByTestId('c2l-method-select').selectOption('average');
  await fill(page, 'c2l-epochs-input', '300');
  await page.getByTestId('device-select').selectOption('cpu');
  await page.waitForFunction(() => /300 steps/.test(document.querySelector('[data-testid=run-check]').textContent), null, { timeout: 30_000 });
  await runWhenReady(page, RUN_TIMEOUT);
  assert.match(await page.getByTestId('legend').textContent(), /largest of q05_cell_abundance_w_sf/);
  assert.equal(await page.getByTestId('layer-select').locator('option').count(), 2);
  assert.equal(await page.getByTestId('qc-histogram').count(), 1, "the mapping's plot_QC");
  assert.match(await page.getByTestId('result-summary').textContent(), /900 points/);
  await shot(page, '18-cell2location');
  const csv = await download(page, 'download-csv', 'q05_cell_abundance_w_sf.csv');
  const demo = path.join(tmp, 'demo_c2l');
  execFileSync(bin, ['demo', '--out', demo], { stdio: 'pipe' });
  const out = path.join(tmp, 'cli_c2l');
  execFileSync(bin, ['cell2location', 'signatures', '--ref', path.join(demo, 'demo_reference.h5ad'), '--labels', 'cell_type',
    '--method', 'average', '--out', out], { stdio: 'pipe' });
  execFileSync(bin, ['cell2location', 'map', '--sp', path.join(demo, 'demo_spatial.h5ad'), '--signatures', path.join(out, 'inf_aver.csv'),
    '--n-cells-per-location', '30', '--detection-alpha', '20', '--epochs', '300', '--device', 'cpu', '--out', out], { stdio: 'pipe' });
  const got = parseCsv(fs.readFileSync(csv, 'utf8'));
  const want = parseCsv(fs.readFileSync(path.join(out, 'q05_cell_abundance_w_sf.csv'), 'utf8'));
  assert.deepEqual(got.head, want.head);
  let worst = 0;
  for (const [spot, w] of want.rows) w.forEach((v, j) => { worst = Math.max(worst, Math.abs(v - got.rows.get(spot)[j]) / Math.max(1, Math.abs(v))); });
  assert.ok(worst < 1e-3, `q05 abundances differ from the command line's by ${worst} (relative)`);
  console.log(`cell2location demo: page vs CLI q05 max relative diff ${worst.toExponential(2)}`);
  await page.close();
});

test('a tutorial-shaped pair dropped on the page runs cell2location with batches to a result', async () => {
  // The lymph-node tutorial's shape, scaled down for CI: 34 types, 4 samples,
  // NB counts (the full size runs in `tessera bench cell2location --size tutorial`).
  const dir = path.join(tmp, 'tutorial');
  execFileSync(bin, ['simulate', 'tutorial', '--cells', '3400', '--genes', '800', '--spots', '200', '--seed', '3', '--out', dir], { stdio: 'pipe' });
  const page = await open();
  await page.getByTestId('file-input').setInputFiles([path.join(dir, 'reference.h5ad'), path.join(dir, 'sp.h5ad')]);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=dataset-card]').length >= 2, null, { timeout: 120_000 });
  await page.getByTestId('analysis-select').selectOption('cell2location');
  await page.getByTestId('c2l-label-select').selectOption('Subset');
  await page.getByTestId('c2l-batch-select').selectOption('Sample');
  await page.getByTestId('c2l-method-select').selectOption('regression');
  await fill(page, 'ref-epochs-input', '3');
  await fill(page, 'c2l-epochs-input', '100');
  await page.getByTestId('device-select').selectOption('cpu');
  await page.waitForFunction(() => /34 cell types from 3400 reference cells/.test(document.querySelector('[data-testid=run-check]').textContent), null, { timeout: 30_000 });
  await runWhenReady(page, RUN_TIMEOUT);
  assert.equal(await page.getByTestId('error').count(), 0);
  assert.match(await page.getByTestId('result-summary').textContent(), /200 points/);
  assert.match(await page.getByTestId('legend').textContent(), /q05_cell_abundance_w_sf/);
  await shot(page, '19-cell2location-tutorial-shape');
  await page.close();
});

test('Stop ends a run and the next run starts', async () => {
  const page = await open();
  await page.getByTestId('demo-button').click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=dataset-card]').length >= 2, null, { timeout: 120_000 });
  await runClusters(page, 100000);
  await page.waitForFunction(() => /epoch [1-9]\d* of 100000/.test(document.querySelector('[data-testid=progress-text]')?.textContent || ''), null, { timeout: 120_000 });
  await shot(page, '7-before-stop');
  await page.getByTestId('stop-button').click();
  await page.getByTestId('progress').waitFor({ state: 'detached', timeout: 10_000 });
  assert.match(await page.getByTestId('notice').textContent(), /Run stopped/);
  assert.equal(await page.getByTestId('run-button').isDisabled(), false);
  await setEpochs(page, 20);
  await page.getByTestId('run-button').click();
  await waitResult(page);
  assert.match(await page.getByTestId('result-summary').textContent(), /900 points/);
  await shot(page, '8-after-stop');
  await page.close();
});

test('a malformed link and a corrupt bundle give visible errors, and the page stays usable', async () => {
  const page = await open(`${base}#link=this-is-not-a-link`);
  const err = page.getByTestId('error');
  await err.waitFor({ timeout: 30_000 });
  assert.match(await err.textContent(), /This share link could not be opened/);
  await shot(page, '9-bad-link');
  await page.getByTestId('file-input').setInputFiles({ name: 'results.zip', mimeType: 'application/zip', buffer: Buffer.from('PK\x03\x04 truncated') });
  await page.waitForFunction(() => /results\.zip/.test(document.querySelector('[data-testid=error]')?.textContent || ''), null, { timeout: 30_000 });
  await page.getByTestId('demo-button').click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=dataset-card]').length >= 2, null, { timeout: 120_000 });
  assert.equal(await page.getByTestId('error').count(), 0);
  await page.close();
  assert.ok(!consoleLines.some((l) => l.startsWith('pageerror')), consoleLines.filter((l) => l.startsWith('pageerror')).join('\n'));
});
