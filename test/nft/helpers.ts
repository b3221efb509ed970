/** Helpers for the nft suites: throw-away namespaces, command execution. */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export const rnd = (): string => randomBytes(4).toString('hex');

/** `ip netns add nftt-<random>`; returns the name. */
export function addNs(tag = ''): string {
  const name = `nftt-${tag}${rnd()}`;
  sh('ip', ['netns', 'add', name]);
  return name;
}

export function delNs(name: string): void {
  spawnSync('ip', ['netns', 'del', name], { encoding: 'utf8' });
}

/** Run a command; throws with its stderr when it exits non-zero. */
export function sh(cmd: string, args: string[], opts: { input?: string; allowFail?: boolean } = {}): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, timeout: 60_000 });
  if (!opts.allowFail && r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr || r.error?.message || ''}`);
  }
  return r;
}

/** Run a command inside a namespace (nsenter --net). */
export function nsSh(ns: string, cmd: string, args: string[], opts: { allowFail?: boolean } = {}): SpawnSyncReturns<string> {
  return sh('nsenter', [`--net=/run/netns/${ns}`, cmd, ...args], opts);
}

/** Names of the tables in a namespace ("family name"). */
export function nsTables(ns: string): string[] {
  const r = nsSh(ns, 'nft', ['-j', 'list', 'tables']);
  const doc = JSON.parse(r.stdout) as { nftables: Array<{ table?: { family: string; name: string } }> };
  return doc.nftables.filter((i) => i.table).map((i) => `${i.table!.family} ${i.table!.name}`);
}
