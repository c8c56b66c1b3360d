// Offline once loaded: the app shell is cached when the service worker
// installs, and every GET the page or its worker makes later (fetched
// datasets too) is kept; the network wins while online, the cache answers
// when it is not. A workshop room can lose its Wi-Fi.
const CACHE = 'tessera-v3';
const SHELL = ['./', './index.html', './app.js', './app_bg.wasm', './worker.js', './worker_bg.wasm',
  './worker_loader.js', './boot.js', './style.css', './favicon.svg'];
self.addEventListener('install', (e) => {
  self.skipWaiting();
  // One by one: a missing file must not keep the rest out.
  e.waitUntil(caches.open(CACHE).then((c) => Promise.all(SHELL.map((u) => c.add(u).catch(() => {})))));
});
self.addEventListener('activate', (e) => e.waitUntil((async () => {
  // Old app shells only: the kept result (tessera-results) stays.
  for (const k of await caches.keys()) if (k !== CACHE && k.startsWith('tessera-v')) await caches.delete(k);
  await self.clients.claim();
})()));
self.addEventListener('fetch', (e) => {
  if (e.request.method !== 'GET' || !e.request.url.startsWith('http')) return;
  e.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const resp = await fetch(e.request);
      if (resp.ok) cache.put(e.request, resp.clone()).catch(() => {});
      return resp;
    } catch (err) {
      const hit = await cache.match(e.request, { ignoreSearch: false });
      if (hit) return hit;
      throw err;
    }
  })());
});
