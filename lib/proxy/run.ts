/**
 * One proxy call: `ensure-network-device` (choose the network's host) or any router command
 * (run the wrapper on the network's host). Returns the exit code; never exits the process.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { shQuote } from '../router/contract/install-wrapper.js';
import { UsageError } from '../util/errors.js';
import { renderHelp } from '../router/contract/help.js';
import { createLogger, type Logger } from '../router/log.js';
import { CallDir } from './call-dir.js';
import { preferredHostIndex } from './cksum.js';
import {
  PROXY_EXIT_OK, ProxyConfigError, ProxyError, RemoteCommandError, SshError, describeProxyError, proxyExitCodeOf,
} from './errors.js';
import { credentialsOf, forwardHostOf, hostListOf, isValidHost, probeOrder } from './hosts.js';
import { ENSURE_COMMAND, parseProxyInvocation, type ProxyInvocation } from './invocation.js';
import { uploadDocument } from './payload.js';
import { SshSession, describeTarget, type SshSettings, type SshTarget, type StepOptions } from './ssh.js';

export interface ProxyDeps {
  env?: Record<string, string | undefined>;
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  /** aborted on SIGTERM/SIGINT/SIGHUP: children are ended, temp files removed */
  signal?: AbortSignal;
  /** `setpriv` used to tie the SSH master's life to ours; null disables (default: found in /usr/bin or /bin) */
  setpriv?: string | null;
  /** Columns the help is wrapped to (default 80). */
  helpWidth?: number;
}

/** Remote temp file for the payload, private from the start (umask), unique (mktemp). */
export const REMOTE_MKTEMP = 'umask 077 && mktemp "${TMPDIR:-/tmp}/cs-extnet-payload-XXXXXXXXXX"';
const REMOTE_PATH_RE = /^\/[A-Za-z0-9._/-]+$/;

interface CallContext {
  inv: ProxyInvocation;
  log: Logger;
  ssh: SshSettings;
  deadline: number;
  signal?: AbortSignal;
  out: (s: string) => void;
  err: (s: string) => void;
}

const line = (t: string) => (t.endsWith('\n') ? t : `${t}\n`);

function findSetpriv(): string | undefined {
  return ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
}

function step(ctx: CallContext, deadline = ctx.deadline): StepOptions {
  return { deadline: Math.min(deadline, ctx.deadline), signal: ctx.signal };
}

function interrupted(ctx: CallContext): boolean {
  return ctx.signal?.aborted === true;
}

/** Can we log in and run `echo ok`? The reason when not. */
async function probe(ctx: CallContext, target: SshTarget): Promise<{ ok: true } | { ok: false; reason: string; error?: SshError }> {
  const probeDeadline = Date.now() + (ctx.ssh.connectTimeoutSec * 2 + 10) * 1000;
  let session: SshSession;
  try {
    session = await SshSession.open(target, ctx.ssh, step(ctx, probeDeadline));
  } catch (e) {
    if (e instanceof SshError) return { ok: false, reason: e.message, error: e };
    throw e;
  }
  try {
    const r = await session.exec('echo ok', step(ctx, probeDeadline));
    if (r.status === 0 && r.stdout.trim().split('\n').pop() === 'ok') return { ok: true };
    const e = session.stepFailure('echo ok', r);
    return { ok: false, reason: r.status !== null && r.status !== 255 ? `ssh ${describeTarget(target)}: echo ok exited with ${r.status}` : e.message, error: e };
  } finally {
    await session.close();
  }
}

async function ensureNetworkDevice(ctx: CallContext): Promise<void> {
  const { inv, log } = ctx;
  const { networkId, vpcId } = inv;
  if (networkId === undefined && vpcId === undefined) {
    const label = inv.form === 'options' ? '--network-id or --vpc-id' : 'payload.network_id or payload.vpc_id';
    throw new UsageError(`${ENSURE_COMMAND}: ${label} is required`, inv.form === 'options' ? '--network-id' : 'payload.network_id');
  }
  const physical = inv.details.physicalNetwork;
  const hosts = hostListOf(physical);
  if (!hosts.some((h) => h !== '')) {
    throw new ProxyConfigError(`${ENSURE_COMMAND}: no hosts configured (set 'hosts' in the physical-network extension details)`, 'physical-network-extension-details.hosts', 'E_PROXY_NO_HOST');
  }
  const creds = credentialsOf(physical);
  // VPC tiers share the VPC's namespace, so the VPC id routes them all to one host
  const namespace = vpcId !== undefined ? `cs-vpc-${vpcId}` : `cs-net-${networkId}`;
  const print = (host: string) => {
    const details: Record<string, string> = { host, namespace };
    if (vpcId !== undefined) details.vpc_id = vpcId;
    ctx.out(`${JSON.stringify(details)}\n`);
  };
  const remembered = [inv.currentDetails.host, inv.details.network.host].find((h) => typeof h === 'string' && h !== '') as string | undefined;
  const failures: string[] = [];
  const tried = new Set<string>();

  if (remembered !== undefined && hosts.includes(remembered) && isValidHost(remembered)) {
    tried.add(remembered);
    const r = await probe(ctx, { host: remembered, ...creds });
    if (r.ok) {
      log.info({ networkId, vpcId, host: remembered }, 'keeping current host');
      print(remembered);
      return;
    }
    if (interrupted(ctx)) throw r.error ?? new SshError('E_INTERRUPTED', remembered, creds.port, 'interrupted');
    failures.push(r.reason);
    log.warn({ networkId, vpcId, host: remembered, reason: r.reason }, 'current host not reachable, failing over');
  }

  const key = vpcId ?? networkId!;
  const preferred = preferredHostIndex(key, hosts.length);
  for (const { host, index } of probeOrder(hosts, preferred)) {
    if (tried.has(host)) continue;
    tried.add(host);
    const r = await probe(ctx, { host, ...creds });
    if (r.ok) {
      log.info({ networkId, vpcId, host, key, index, preferred }, 'host selected');
      print(host);
      return;
    }
    if (interrupted(ctx)) throw r.error ?? new SshError('E_INTERRUPTED', host, creds.port, 'interrupted');
    failures.push(r.reason);
    log.warn({ networkId, vpcId, host, index, reason: r.reason }, 'host not reachable, trying the next');
    if (Date.now() >= ctx.deadline) break;
  }
  throw new ProxyConfigError(`${ENSURE_COMMAND}: no reachable host (${failures.join('; ')})`, 'physical-network-extension-details.hosts', 'E_PROXY_NO_HOST');
}

async function forwardCommand(ctx: CallContext): Promise<void> {
  const { inv, log } = ctx;
  const host = forwardHostOf(inv.details.physicalNetwork, inv.details.network);
  if (host === undefined) {
    throw new ProxyConfigError('no target host: run ensure-network-device first (network-extension-details.host), or set host/hosts in the physical-network extension details', 'network-extension-details.host', 'E_PROXY_NO_HOST');
  }
  const target: SshTarget = { host, ...credentialsOf(inv.details.physicalNetwork) };
  const local = ctx.ssh.dir.writePrivate('payload.json', JSON.stringify(uploadDocument(inv)));
  log.info({ host, port: target.port, user: target.user, auth: target.auth.kind, form: inv.form, networkId: inv.networkId, vpcId: inv.vpcId }, 'forwarding');

  const session = await SshSession.open(target, ctx.ssh, step(ctx));
  try {
    const mk = await session.exec(REMOTE_MKTEMP, step(ctx));
    if (mk.status !== 0) throw session.stepFailure('creating the remote payload file', mk);
    const remotePath = mk.stdout.trim().split('\n').pop() ?? '';
    if (!REMOTE_PATH_RE.test(remotePath)) {
      throw new SshError('E_SSH_TRANSFER', host, target.port, `ssh ${describeTarget(target)}: mktemp printed no usable path`);
    }
    // removed by the same remote shell right after the wrapper; again separately when that
    // shell may not have got that far (connection lost, timeout, interrupt)
    let removedRemotely = false;
    try {
      const up = await session.upload(local, remotePath, step(ctx));
      if (up.status !== 0) throw session.stepFailure('uploading the payload file', up);
      ctx.ssh.dir.removeFile(local);
      // the remote wrapper gets the time that is left, minus a margin for SSH, so that its own
      // time-out message (rather than our kill) reports a slow command
      const remoteTimeout = Math.max(1, Math.floor((ctx.deadline - Date.now()) / 1000) - 2);
      const wrapperCall = [inv.proxy.remoteWrapper, inv.command, remotePath, String(remoteTimeout), ...inv.forwardOptions].map(shQuote).join(' ');
      const remoteCommand = `${wrapperCall}; rc=$?; rm -f -- ${shQuote(remotePath)}; exit $rc`;
      const started = Date.now();
      const r = await session.exec(remoteCommand, { ...step(ctx), onStdout: ctx.out, onStderr: ctx.err });
      log.info({ host, status: r.status, signal: r.signal, remoteMs: Date.now() - started }, 'remote wrapper finished');
      removedRemotely = r.status !== null && r.status !== 255 && !r.aborted && !r.timedOut && !r.error;
      if (r.status === 0) return;
      if (r.error || r.aborted || r.timedOut || r.signal) throw session.stepFailure(`running ${inv.command}`, r);
      if (r.status === 255) {
        // 255 is also ssh's own failure status: the wrapper's only if the connection is still up
        await new Promise((res) => setTimeout(res, 200));
        if (!session.alive()) throw session.stepFailure(`running ${inv.command}`, r);
      }
      throw new RemoteCommandError(`remote wrapper on ${describeTarget(target)} exited with ${r.status}`, r.status, null);
    } finally {
      if (!removedRemotely) {
        if (session.alive()) {
          const rm = await session.exec(`rm -f -- ${shQuote(remotePath)}`, { deadline: Date.now() + 5000 });
          if (rm.status !== 0) log.warn({ host, remotePath, status: rm.status }, 'could not remove the remote payload file');
        } else {
          log.warn({ host, remotePath }, 'connection gone: remote payload file not removed');
        }
      }
    }
  } finally {
    await session.close();
  }
}

export async function runProxy(argv: readonly string[], deps: ProxyDeps = {}): Promise<number> {
  const env = deps.env ?? process.env;
  const out = deps.stdout ?? ((s: string) => { process.stdout.write(s); });
  const err = deps.stderr ?? ((s: string) => { process.stderr.write(s); });
  const started = Date.now();

  let parsed;
  try {
    parsed = parseProxyInvocation(argv, env);
  } catch (e) {
    err(line(`netns-router proxy: ${describeProxyError(e)}`));
    return proxyExitCodeOf(e);
  }
  if (parsed.kind === 'help') {
    out(renderHelp(parsed.doc, deps.helpWidth));
    return PROXY_EXIT_OK;
  }
  const inv = parsed;
  const created = createLogger({
    file: inv.settings.logFile, level: inv.settings.logLevel,
    base: { extension: inv.settings.extension, command: inv.command, role: 'proxy' },
  });
  const log = created.logger;
  if (created.problem) err(line(`netns-router proxy: warning: ${created.problem}`));
  log.info({ form: inv.form, networkId: inv.networkId, vpcId: inv.vpcId, timeoutSeconds: inv.settings.timeoutSeconds }, 'proxy start');

  let dir: CallDir | undefined;
  try {
    try {
      mkdirSync(dirname(inv.proxy.knownHostsFile), { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new ProxyConfigError(`known_hosts file ${inv.proxy.knownHostsFile}: cannot create its directory (${(e as NodeJS.ErrnoException).code ?? String(e)}); set --known-hosts or NETNS_ROUTER_PROXY_KNOWN_HOSTS`, '--known-hosts');
    }
    dir = CallDir.create();
    const setpriv = deps.setpriv === null ? undefined : deps.setpriv ?? findSetpriv();
    const ctx: CallContext = {
      inv, log, out, err, signal: deps.signal,
      deadline: started + Math.round(inv.settings.timeoutSeconds * 1000),
      ssh: {
        knownHostsFile: inv.proxy.knownHostsFile, connectTimeoutSec: inv.proxy.connectTimeoutSec,
        env: env as NodeJS.ProcessEnv, dir, setpriv,
      },
    };
    if (inv.command === ENSURE_COMMAND) await ensureNetworkDevice(ctx);
    else await forwardCommand(ctx);
    log.info({ durationMs: Date.now() - started, exitCode: PROXY_EXIT_OK }, 'proxy done');
    return PROXY_EXIT_OK;
  } catch (e) {
    const code = proxyExitCodeOf(e);
    err(line(`netns-router proxy: ${inv.command}: ${describeProxyError(e)}`));
    // as in the router's CLI: a usage error goes to the caller only (the log closes the call with its exit code);
    // a configuration problem (no host reachable, bad SSH details) and a failed remote wrapper are warnings, the
    // rest (SSH failures, defects) errors
    if (e instanceof UsageError) {
      log.info({ durationMs: Date.now() - started, exitCode: code }, 'proxy rejected');
    } else {
      const level = e instanceof RemoteCommandError || (e instanceof ProxyError && code === 1) ? 'warn' : 'error';
      log[level]({ durationMs: Date.now() - started, exitCode: code, err: e }, 'proxy failed');
    }
    return code;
  } finally {
    dir?.remove();
  }
}
