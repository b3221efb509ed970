/** Load-balancing test helpers: HTTP backends answering their own name, HTTP clients and request loops, all in namespaces. */
import { spawn, type ChildProcess } from 'node:child_process';
import { nsTry, waitFor } from './topo.js';

const SERVER = `
const http = require('node:http');
const [port, name, cookie] = process.argv.slice(1);
http.createServer((req, res) => {
  const body = name + '\\n';
  const h = { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'x-backend': name };
  if (cookie) h['set-cookie'] = cookie + '=' + name + '-session; Path=/';
  res.writeHead(200, h);
  res.end(body);
}).listen(Number(port), '0.0.0.0');
`;

/** An HTTP server in `ns` answering every request with `name` (and Set-Cookie `cookie`=<name>-session when given). */
export async function httpNameServer(ns: string, port: number, name: string, opts: { cookie?: string } = {}): Promise<ChildProcess> {
  const p = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', SERVER, String(port), name, opts.cookie ?? ''], { stdio: 'ignore' });
  const up = await waitFor(() => httpGet(ns, `http://127.0.0.1:${port}/`) === name, 5000);
  if (!up) { p.kill(); throw new Error(`backend ${name} did not come up in ${ns}:${port}`); }
  return p;
}

/** GET `url` from inside `ns` with curl; the body trimmed, or '' on any failure. */
export function httpGet(ns: string, url: string, opts: { cookieJar?: string; headers?: string[]; timeoutS?: number } = {}): string {
  const args = ['curl', '-s', '-f', '-m', String(opts.timeoutS ?? 2)];
  if (opts.cookieJar) args.push('-b', opts.cookieJar, '-c', opts.cookieJar);
  for (const h of opts.headers ?? []) args.push('-H', h);
  const r = nsTry(ns, [...args, url], 5000);
  return r.status === 0 ? r.stdout.trim() : '';
}

/** Names answering `n` sequential requests → count per name ('' = failed request). */
export function tally(ns: string, url: string, n: number): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const b = httpGet(ns, url);
    out.set(b, (out.get(b) ?? 0) + 1);
  }
  return out;
}

const LOOP = `
const http = require('node:http');
const [host, port, ms, conc] = process.argv.slice(1);
const end = Date.now() + Number(ms);
let ok = 0, fail = 0; const errs = {};
const note = (e) => { fail++; const k = e && (e.code || e.message) || 'empty'; errs[k] = (errs[k] || 0) + 1; };
const one = () => new Promise((res) => {
  const r = http.get({ host, port: Number(port), path: '/', agent: false, timeout: 3000 }, (s) => {
    let b = ''; s.on('data', (d) => b += d);
    s.on('end', () => { if (s.statusCode === 200 && b) ok++; else note({ code: 'HTTP ' + s.statusCode }); res(); });
    s.on('error', (e) => { note(e); res(); });
  });
  r.on('timeout', () => r.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
  r.on('error', (e) => { note(e); res(); });
});
(async () => {
  const worker = async () => { while (Date.now() < end) await one(); };
  await Promise.all(Array.from({ length: Number(conc) }, worker));
  process.stdout.write(JSON.stringify({ ok, fail, errs }));
})();
`;

export interface LoopResult { ok: number; fail: number; errs: Record<string, number> }

/** Run `concurrency` back-to-back HTTP GET loops against host:port from `ns` for `ms`; resolves with the counts. */
export function requestLoop(ns: string, host: string, port: number, ms: number, concurrency = 2): Promise<LoopResult> {
  return new Promise((resolve, reject) => {
    const p = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', LOOP, host, String(port), String(ms), String(concurrency)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('error', reject);
    p.on('close', (code) => {
      try { resolve(JSON.parse(out) as LoopResult); } catch { reject(new Error(`request loop failed (${code}): ${err}`)); }
    });
  });
}

const KEEPALIVE = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
const s = net.connect(Number(port), host);
let buf = '';
const ask = () => s.write('GET / HTTP/1.1\\r\\nHost: lb\\r\\nConnection: keep-alive\\r\\n\\r\\n');
s.on('data', (d) => {
  buf += d;
  const m = /\\r\\n\\r\\n([^\\n]*)\\n/.exec(buf);
  if (m) { process.stdout.write('answer ' + m[1] + ' ' + s.localPort + '\\n'); buf = ''; }
});
s.on('connect', ask);
s.on('close', () => { process.stdout.write('closed\\n'); process.exit(0); });
process.stdin.on('data', () => ask());
`;

/** One TCP connection kept open: `ask()` sends an HTTP/1.1 keep-alive request on it and resolves with the answer line. */
export function keepAliveClient(ns: string, host: string, port: number): { ask: () => Promise<string>; close: () => void } {
  const p = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', KEEPALIVE, host, String(port)], { stdio: ['pipe', 'pipe', 'ignore'] });
  const lines: string[] = [];
  let pending = '';
  p.stdout!.on('data', (d) => {
    pending += d;
    let i;
    while ((i = pending.indexOf('\n')) >= 0) { lines.push(pending.slice(0, i)); pending = pending.slice(i + 1); }
  });
  let asked = 0;
  const next = async (): Promise<string> => {
    const want = ++asked;
    await waitFor(() => lines.length >= want || p.exitCode !== null, 5000);
    return lines[want - 1] ?? 'no answer';
  };
  return {
    ask: async () => {
      // the first request goes out on connect
      if (asked > 0) p.stdin!.write('\n');
      return next();
    },
    close: () => { p.kill(); },
  };
}
