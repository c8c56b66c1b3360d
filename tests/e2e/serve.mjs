// A static file server for dist/ on loopback, with the MIME types wasm needs.
// `mounts` maps URL prefixes (e.g. '/data/') to more folders, which stand in
// for public dataset URLs. Options: `tls` ({ key, cert }) serves https, as
// a public source must be; `headers` go on every response (the page's
// Content-Security-Policy, CORS for a data host).
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css', '.svg': 'image/svg+xml', '.json': 'application/json' };

export function serve(root, mounts = {}, { tls, headers = {} } = {}) {
  const handler = (req, res) => {
    const url = new URL(req.url, 'http://x');
    let base = root;
    let rel = decodeURIComponent(url.pathname);
    for (const [prefix, dir] of Object.entries(mounts)) {
      if (rel.startsWith(prefix)) { base = dir; rel = rel.slice(prefix.length - 1); break; }
    }
    let file = path.join(base, rel);
    if (!file.startsWith(base)) { res.writeHead(403, headers).end(); return; }
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
    fs.readFile(file, (err, data) => {
      if (err) { res.writeHead(404, headers).end('not found'); return; }
      res.writeHead(200, { ...headers, 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' }).end(data);
    });
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/// The Content-Security-Policy `trunk serve` sends (Trunk.toml), so the
/// tests run the page and its worker under the policy www/serve.sh serves.
export function policy(root) {
  const toml = fs.readFileSync(path.join(root, 'Trunk.toml'), 'utf8');
  const m = toml.match(/^Content-Security-Policy = "(.*)"$/m);
  if (!m) throw new Error('Trunk.toml has no Content-Security-Policy header');
  return m[1];
}

/// A throwaway self-signed certificate for 127.0.0.1 (openssl).
export function selfSigned(dir) {
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'pipe' });
  return { key: fs.readFileSync(key), cert: fs.readFileSync(cert) };
}
