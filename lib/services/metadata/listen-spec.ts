/**
 * A router's listen.json (layout.ts): read and checked the one way, by the daemon on every sync and by the
 * in-memory daemon of the fake kernel (lib/router/fake-kernel.ts) — kept apart from daemon.ts so that reading
 * it does not load the HTTP server.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isIpv4 } from '../../util/ip.js';
import { MetadataError } from './errors.js';
import { IFNAME_RE, MAC_RE, listenFile, type LinkLocalSpec, type ListenSpec } from './layout.js';

const isLinkLocalSpec = (l: unknown): l is LinkLocalSpec => {
  const x = l as Partial<LinkLocalSpec> | null;
  return typeof x === 'object' && x !== null && typeof x.ifname === 'string' && IFNAME_RE.test(x.ifname)
    && typeof x.macs === 'object' && x.macs !== null && !Array.isArray(x.macs)
    && Object.entries(x.macs).every(([mac, ip]) => MAC_RE.test(mac) && isIpv4(ip));
};

/** Read and check a router's listen.json; undefined when absent (= serve nothing there). */
export function readListenSpec(stateDir: string, ns: string): ListenSpec | undefined {
  const p = listenFile(stateDir, ns);
  if (!existsSync(p)) return undefined;
  const v = JSON.parse(readFileSync(p, 'utf8')) as Partial<ListenSpec>;
  if (v.namespace !== ns || !Array.isArray(v.addresses) || !v.addresses.every(isIpv4)
    || (v.linkLocal !== undefined && !(Array.isArray(v.linkLocal) && v.linkLocal.every(isLinkLocalSpec)))) {
    throw new MetadataError('E_LISTEN', `${p}: not a listen specification for ${ns}`);
  }
  const spec: ListenSpec = { namespace: ns, addresses: [...new Set(v.addresses)].sort() };
  if (v.linkLocal?.length) spec.linkLocal = v.linkLocal.map((l) => ({ ifname: l.ifname, macs: { ...l.macs } }));
  return spec;
}

