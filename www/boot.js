// Starts the page's wasm from a file rather than an inline script, so the
// Content-Security-Policy allows no inline script at all; then registers
// the service worker that keeps the page working offline.
import init from './app.js';

await init({ module_or_path: './app_bg.wasm' });
if ('serviceWorker' in navigator) navigator.serviceWorker.register('./sw.js').catch(() => {});
