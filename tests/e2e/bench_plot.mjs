// The spatial plot's frame rate at 10k, 100k and 1M points, in headless
// Chromium (WebGPU on SwiftShader here; pass CHROMIUM_ARGS for a real
// adapter). Not a test: it prints the page's figures, the 10k run being the
// baseline. Needs dist/ (trunk build). Run: node tests/e2e/bench_plot.mjs
import path from 'node:path';
import { chromium } from 'playwright-core';
import { serve } from './serve.mjs';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const server = await serve(path.join(root, 'dist'));
const extra = (process.env.CHROMIUM_ARGS || '--use-angle=swiftshader --enable-features=Vulkan --use-vulkan=swiftshader').split(' ');
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless=new', '--no-sandbox', '--disable-gpu-sandbox', '--enable-unsafe-webgpu', ...extra],
});
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/#bench=plot`);
  const out = page.getByTestId('bench-result');
  await out.waitFor({ timeout: 600_000 });
  console.log(await out.textContent());
} finally {
  await browser.close();
  server.close();
}
