// Offline once loaded: every GET the page or its worker makes (the app,
// the wasm, fetched datasets) is kept; the network wins while online, the
// cache answers when it is not. A workshop room can lose its Wi-Fi.
const CACHE = 'tessera-v1';
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));
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
