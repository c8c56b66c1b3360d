// The workshop's demo in the page against the command line: cell2location's
// mapping on the demo tissue (900 spots x 200 genes x 6 types, signatures by
// cluster averages) on the CPU device, at two step counts so that setup
// cancels: (t(long) - t(short)) / (long - short) is the time of one step.
// Not a test: it prints ms per step in the page and natively, their ratio,
// and the projected 30,000 steps. Needs dist/ (trunk build) and a release
// CLI. Run: TESSERA_BIN=target/release/tessera node tests/e2e/bench_demo.mjs
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';
import { serve } from './serve.mjs';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const bin = process.env.TESSERA_BIN || path.join(root, 'target/release/tessera');
const [SHORT, LONG] = (process.env.STEPS || '300,3300').split(',').map(Number);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-bench-demo-'));

async function pageSeconds(page, steps) {
  const epochs = page.getByTestId('c2l-epochs-input');
  await epochs.fill(String(steps));
  await epochs.dispatchEvent('change');
  await page.waitForFunction((n) => new RegExp(`\\b${n} steps`).test(document.querySelector('[data-testid=run-check]').textContent), steps);
  await page.waitForFunction(() => !document.querySelector('[data-testid=run-button]').disabled);
  // The previous run's result is on the page: this run is over once its
  // progress bar has come and gone.
  await page.evaluate(() => {
    window.benchRan = false;
    new MutationObserver((_, o) => {
      if (document.querySelector('[data-testid=progress]')) { window.benchRan = true; o.disconnect(); }
    }).observe(document.body, { childList: true, subtree: true });
  });
  const t0 = performance.now();
  await page.getByTestId('run-button').click();
  await page.waitForFunction(() => {
    const s = document.querySelector('[data-testid=result-summary]');
    const over = window.benchRan && !document.querySelector('[data-testid=progress]');
    return document.querySelector('[data-testid=error]') || (over && s && s.textContent.length > 0);
  }, null, { timeout: 3_600_000, polling: 50 });
  if (await page.getByTestId('error').count()) throw new Error(`the page's run failed: ${await page.getByTestId('error').textContent()}`);
  return (performance.now() - t0) / 1000;
}

function cliSeconds(demo, steps) {
  const out = path.join(tmp, `map${steps}`);
  const t0 = performance.now();
  execFileSync(bin, ['cell2location', 'map', '--sp', path.join(demo, 'demo_spatial.h5ad'), '--signatures', path.join(tmp, 'sig', 'inf_aver.csv'),
    '--n-cells-per-location', '30', '--detection-alpha', '20', '--epochs', String(steps), '--device', 'cpu', '--out', out], { stdio: 'pipe' });
  return (performance.now() - t0) / 1000;
}

const server = await serve(path.join(root, 'dist'));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless=new', '--no-sandbox', '--disable-gpu-sandbox'],
});
try {
  const demo = path.join(tmp, 'demo');
  execFileSync(bin, ['demo', '--out', demo], { stdio: 'pipe' });
  execFileSync(bin, ['cell2location', 'signatures', '--ref', path.join(demo, 'demo_reference.h5ad'), '--labels', 'cell_type',
    '--method', 'average', '--out', path.join(tmp, 'sig')], { stdio: 'pipe' });
  const cli = [cliSeconds(demo, SHORT), cliSeconds(demo, LONG)];

  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.getByTestId('demo-button').click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=dataset-card]').length >= 2, null, { timeout: 120_000 });
  await page.getByTestId('analysis-select').selectOption('cell2location');
  await page.getByTestId('c2l-label-select').selectOption('cell_type');
  await page.getByTestId('c2l-method-select').selectOption('average');
  await page.getByTestId('device-select').selectOption('cpu');
  const web = [await pageSeconds(page, SHORT), await pageSeconds(page, LONG)];

  const per = (t) => (t[1] - t[0]) / (LONG - SHORT);
  const [pw, pc] = [per(web), per(cli)];
  console.log(`demo cell2location map, 900 spots x 200 genes x 6 types, CPU device, ${SHORT} and ${LONG} steps`);
  console.log('| where | s (short) | s (long) | ms per step | 30,000 steps |');
  console.log('|---|---|---|---|---|');
  for (const [name, t, p] of [['page (wasm, 1 thread)', web, pw], ['command line', cli, pc]]) {
    console.log(`| ${name} | ${t[0].toFixed(2)} | ${t[1].toFixed(2)} | ${(1000 * p).toFixed(2)} | ${(30_000 * p).toFixed(0)} s |`);
  }
  console.log(`page / command line: ${(pw / pc).toFixed(2)}`);
} finally {
  await browser.close();
  server.close();
  fs.rmSync(tmp, { recursive: true, force: true });
}
