/**
 * Fallback for lib/nft/ctnetlink.ts: `conntrack -D …` (conntrack-tools), one process per call, in a
 * namespace through `nsenter --net=/run/netns/NAME`. Exit status 1 with "0 flow entries" means
 * nothing matched: success, 0 deleted.
 */
import { spawn } from 'node:child_process';
import { childEnv } from '../sys/children.js';
import { NftValidationError } from './errors.js';
import { IPPROTO, type ConntrackFilter } from './ctnetlink.js';
import { checkPort, checkUint, parseAddress } from './validate.js';

/** Options of deleteConntrackCli: namespace, conntrack binary, `all` to allow an empty filter. */
export interface ConntrackCliOptions {
  netns?: string;
  /** conntrack binary (default "conntrack"). */
  conntrack?: string;
  all?: boolean;
}

/** Failure of the conntrack tool itself (not "nothing matched"). */
export class ConntrackCliError extends Error {
  readonly code = 'E_CONNTRACK_CLI';
  readonly exitCode: number | null;
  readonly stderr: string;
  constructor(exitCode: number | null, stderr: string, args: string[]) {
    super(`conntrack ${args.join(' ')} failed (exit ${exitCode}): ${stderr.trim()}`);
    this.name = 'ConntrackCliError';
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

const NETNS_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/** conntrack(8) arguments for a filter (validated: nothing reaches the tool unchecked). */
export function conntrackArgs(f: ConntrackFilter): string[] {
  const a: string[] = [];
  if (f.family !== undefined) {
    if (f.family !== 'ipv4' && f.family !== 'ipv6') throw new NftValidationError('E_INVALID_VALUE', 'conntrack family', f.family, 'ipv4 or ipv6');
    a.push('-f', f.family);
  }
  if (f.proto !== undefined) {
    const p = typeof f.proto === 'number' ? checkUint('conntrack proto', f.proto, 255) : IPPROTO[f.proto];
    if (p === undefined) throw new NftValidationError('E_INVALID_VALUE', 'conntrack proto', f.proto, 'unknown protocol');
    a.push('-p', String(p));
  }
  const addr = (opt: string, v: string | undefined): void => {
    if (v === undefined) return;
    const x = parseAddress(opt, v);
    if (x.kind === 'range') throw new NftValidationError('E_INVALID_ADDRESS', opt, v, 'conntrack(8) takes an address or a prefix');
    a.push(opt, x.kind === 'addr' ? x.addr : `${x.addr}/${x.len}`);
  };
  addr('--orig-src', f.origSrc);
  addr('--orig-dst', f.origDst);
  addr('--reply-src', f.replySrc);
  addr('--reply-dst', f.replyDst);
  const port = (opt: string, v: number | undefined): void => {
    if (v !== undefined) a.push(opt, String(checkPort(opt, v)));
  };
  port('--orig-port-src', f.origSrcPort);
  port('--orig-port-dst', f.origDstPort);
  if (f.origDstPorts !== undefined) {
    // conntrack(8) matches one port; a wider deletion than asked for must not happen silently
    if (f.origDstPorts[0] !== f.origDstPorts[1]) throw new NftValidationError('E_INVALID_PORT', 'origDstPorts', f.origDstPorts, 'conntrack(8) cannot match a port range');
    port('--orig-port-dst', f.origDstPorts[0]);
  }
  port('--reply-port-src', f.replySrcPort);
  port('--reply-port-dst', f.replyDstPort);
  if (f.zone !== undefined) a.push('--zone', String(checkUint('conntrack zone', f.zone, 65535)));
  if (f.mark !== undefined) a.push('--mark', String(checkUint('conntrack mark', f.mark)));
  return a;
}

/** Delete matching conntrack entries with conntrack(8); returns the number deleted. */
export function deleteConntrackCli(filter: ConntrackFilter, opts: ConntrackCliOptions = {}): Promise<number> {
  const fargs = conntrackArgs(filter);
  if (fargs.every((x) => x !== '-p' && !x.startsWith('--')) && !opts.all) {
    return Promise.reject(new NftValidationError('E_INVALID_VALUE', 'conntrack filter', filter, 'empty filter: pass { all: true } to delete every entry'));
  }
  const tool = opts.conntrack ?? 'conntrack';
  let cmd = tool;
  let args = ['-D', ...fargs];
  if (opts.netns !== undefined) {
    if (!NETNS_RE.test(opts.netns)) return Promise.reject(new NftValidationError('E_INVALID_NAME', 'namespace name', opts.netns, 'not a valid namespace name'));
    cmd = 'nsenter';
    args = [`--net=/run/netns/${opts.netns}`, tool, ...args];
  }
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: childEnv() });
    const err: Buffer[] = [];
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new ConntrackCliError(null, e.message, args)));
    child.on('close', (code) => {
      const text = Buffer.concat(err).toString('utf8');
      const m = /(\d+) flow entries have been deleted/.exec(text);
      if ((code === 0 || code === 1) && m) return resolve(Number(m[1]));
      reject(new ConntrackCliError(code, text, args));
    });
  });
}
