// How long the page takes to open dropped files: from the drop to their
// dataset cards, with the progress shown meanwhile. Not a test: it prints
// the seconds per file set. Needs dist/ (trunk build).
// Run: node tests/e2e/bench_open.mjs FILE [FILE ...]
// (e.g. the pair from `tessera simulate tutorial --out tut`).
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { serve } from './serve.mjs';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const files = process.argv.slice(2);
if (files.length === 0) throw new Error('usage: node tests/e2e/bench_open.mjs FILE [FILE ...]');
const server = await serve(path.join(root, 'dist'));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless=new', '--no-sandbox', '--disable-gpu-sandbox'],
});
try {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.getByTestId('run-button').waitFor({ state: 'attached', timeout: 60_000 });
  const t0 = performance.now();
  await page.getByTestId('file-input').setInputFiles(files);
  const t1 = performance.now();
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=dataset-card]').length >= n || document.querySelector('[data-testid=error]'),
    files.length, { timeout: 600_000, polling: 100 });
  const t2 = performance.now();
  const error = await page.getByTestId('error').count() ? await page.getByTestId('error').textContent() : null;
  const mb = files.reduce((s, f) => s + fs.statSync(f).size, 0) / 1e6;
  console.log(`${files.map((f) => path.basename(f)).join(' + ')} (${mb.toFixed(0)} MB): handed to the page in ${((t1 - t0) / 1000).toFixed(1)} s, cards after ${((t2 - t0) / 1000).toFixed(1)} s`);
  if (error) console.log(`the page said: ${error}`);
  for (const e of errors) console.log(`page error: ${e}`);
} finally {
  await browser.close();
  server.close();
}
