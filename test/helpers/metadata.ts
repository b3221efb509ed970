/** Helpers of the metadata/password service tests: guest HTTP requests with curl, hand-made routers. */
import { mkdirSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nsTry, uid, type Scratch } from './topo.js';
import { listenFile, vmDir } from '../../lib/services/metadata/layout.js';

export interface HttpAnswer {
  status: number;
  body: string;
}

export interface RequestOptions {
  /** Source address (curl --interface): a guest using an address it added. */
  from?: string;
  /** HTTP method (HEAD: curl -I). Default GET. */
  method?: string;
  /** Raw header lines, sent as written and in order (curl -H), after `headers`. */
  rawHeaders?: string[];
}

/** Request `url` from inside namespace `ns` with curl (path sent as written). status 0 = no connection. */
export function guestGet(ns: string, url: string, headers: Record<string, string> = {}, opts: RequestOptions = {}): HttpAnswer {
  const h = [...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), ...(opts.rawHeaders ?? [])].flatMap((x) => ['-H', x]);
  const method = opts.method === 'HEAD' ? ['-I'] : opts.method ? ['-X', opts.method] : [];
  const from = opts.from ? ['--interface', opts.from] : [];
  const r = nsTry(ns, ['curl', '-s', '-m', '5', '--path-as-is', '-w', '\n%{http_code}', ...method, ...from, ...h, url], 10_000);
  const i = r.stdout.lastIndexOf('\n');
  const status = Number(r.stdout.slice(i + 1)) || 0;
  return { status, body: i >= 0 ? r.stdout.slice(0, i) : '' };
}

/** The password protocol as the guest scripts speak it. */
export const passwordRequest = (ns: string, ip: string, kind: 'send_my_password' | 'saved_password' | string, opts: RequestOptions = {}) =>
  guestGet(ns, `http://${ip}:8080/`, { DomU_Request: kind }, opts);

/** A router namespace and a guest namespace joined by a veth: router `routerIp`/24, guest `guestIp`/24. */
export function routerAndGuest(s: Scratch, routerIp: string, guestIp: string, router?: string): { router: string; guest: string } {
  const r = router ?? s.ns('rt');
  const g = s.ns('gs');
  const rh = s.handle(r);
  rh.netlink.linkSetUp('lo');
  const name = `m${uid(6)}`;
  rh.netlink.linkAdd({ kind: 'veth', name, up: true, peer: { name: 'eth0', namespace: { netns: g }, up: true } });
  rh.netlink.addrAdd({ dev: name, address: `${routerIp}/24` });
  const gh = s.handle(g);
  gh.netlink.linkSetUp('lo');
  gh.netlink.addrAdd({ dev: 'eth0', address: `${guestIp}/24` });
  return { router: r, guest: g };
}

/** Write a router's listen.json and one VM's served files by hand (what the router module materialises). */
export function writeVmFiles(stateDir: string, ns: string, addresses: string[], ip: string, files: Record<string, string>): void {
  mkdirSync(join(stateDir, 'vmdata', ns), { recursive: true, mode: 0o700 });
  writeFileSync(listenFile(stateDir, ns), JSON.stringify({ namespace: ns, addresses }));
  const dir = vmDir(stateDir, ns, ip);
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, rel), content, { mode: 0o600 });
  }
}

/** Sockets a process holds open (from /proc). */
export function socketCount(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
    } catch { /* closed meanwhile */ }
  }
  return n;
}
