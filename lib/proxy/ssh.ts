/**
 * OpenSSH client sessions to a KVM host. One call authenticates once: a control master
 * (`ssh -M -N`, under `sshpass -e` for password logins) is started and every later step — the
 * probe, `mktemp`, the `scp` upload, the wrapper, the clean-up `rm` — runs through its control
 * socket without authenticating again. This keeps secrets in exactly one process for a moment
 * (the key file exists only until the master has authenticated; the password only in sshpass's
 * environment) and makes exit statuses unambiguous (sshpass's own codes 1-6 can only come from
 * the master, never from the wrapper).
 *
 * Host keys: StrictHostKeyChecking=accept-new against our own known_hosts file.
 */
import { existsSync, statSync } from 'node:fs';
import { childEnv } from '../sys/children.js';
import { CallDir } from './call-dir.js';
import { runChild, startChild, type ChildHandle, type ChildResult } from './child.js';
import { SshError, type ProxyErrorCode } from './errors.js';
import type { SshCredentials } from './hosts.js';

export interface SshSettings {
  knownHostsFile: string;
  connectTimeoutSec: number;
  /** the caller's environment: ssh/scp get only its HOME, USER, LOGNAME and SSH_AUTH_SOCK (cleanEnv) */
  env: NodeJS.ProcessEnv;
  dir: CallDir;
  /** run the master under `setpriv --pdeathsig` when available (dies with the proxy) */
  setpriv?: string;
}

export interface SshTarget extends SshCredentials {
  host: string;
}

export interface StepOptions {
  deadline: number;
  signal?: AbortSignal;
  onStdout?: (text: string) => void;
  onStderr?: (text: string) => void;
}

export const describeTarget = (t: { user: string; host: string; port: number }): string => `${t.user}@${t.host} port ${t.port}`;

/** A path inside `-o Key=value`: ssh expands %-tokens in these, so '%' is doubled. */
function sshPath(p: string): string {
  if (/[\s"'\\]/.test(p)) throw new Error(`unusable path for ssh options: ${JSON.stringify(p)}`);
  return p.replace(/%/g, '%%');
}

/** scp's remote operand: IPv6 literals need brackets. */
export function scpHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * ssh/scp's environment: the minimal child environment (lib/sys/children.ts) plus what OpenSSH looks at.
 * Never the caller's whole environment (CloudStack's extension details), never its SSHPASS.
 */
function cleanEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return childEnv({ HOME: env.HOME, USER: env.USER, LOGNAME: env.LOGNAME, SSH_AUTH_SOCK: env.SSH_AUTH_SOCK });
}

/** Options shared by every ssh/scp we run. */
function commonOptions(t: SshTarget, s: SshSettings): string[] {
  const o = (kv: string) => ['-o', kv];
  return [
    ...o(`Port=${t.port}`), ...o(`User=${t.user}`),
    ...o(`UserKnownHostsFile=${sshPath(s.knownHostsFile)}`), ...o('GlobalKnownHostsFile=/dev/null'),
    ...o('LogLevel=ERROR'), ...o('ForwardAgent=no'), ...o('ForwardX11=no'), ...o('RequestTTY=no'),
  ];
}

/** Options of the master: how to connect and authenticate. */
function masterOptions(t: SshTarget, s: SshSettings, keyFile: string | undefined): string[] {
  const o = (kv: string) => ['-o', kv];
  const auth: string[] = [];
  switch (t.auth.kind) {
    case 'key':
      auth.push(...o(`IdentityFile=${sshPath(keyFile!)}`), ...o('IdentitiesOnly=yes'), ...o('BatchMode=yes'),
        ...o('PreferredAuthentications=publickey'), ...o('PasswordAuthentication=no'), ...o('KbdInteractiveAuthentication=no'));
      break;
    case 'password':
      // sshpass answers the prompt, so no BatchMode here; one prompt, so a wrong password fails fast
      auth.push(...o('BatchMode=no'), ...o('PubkeyAuthentication=no'), ...o('IdentitiesOnly=yes'),
        ...o('PreferredAuthentications=password,keyboard-interactive'), ...o('NumberOfPasswordPrompts=1'));
      break;
    case 'default':
      auth.push(...o('BatchMode=yes'));
      break;
  }
  return [
    ...commonOptions(t, s), ...auth,
    ...o(`ConnectTimeout=${s.connectTimeoutSec}`), ...o('StrictHostKeyChecking=accept-new'),
    ...o('ServerAliveInterval=10'), ...o('ServerAliveCountMax=3'), ...o('ClearAllForwardings=yes'),
  ];
}

/** Options of a client of the master: never authenticates by itself (fails if the master is gone). */
function muxOptions(t: SshTarget, s: SshSettings, socket: string): string[] {
  const o = (kv: string) => ['-o', kv];
  return [
    ...commonOptions(t, s), ...o(`ControlPath=${sshPath(socket)}`), ...o('ControlMaster=no'),
    ...o('BatchMode=yes'), ...o('StrictHostKeyChecking=yes'), ...o('PubkeyAuthentication=no'),
    ...o('PasswordAuthentication=no'), ...o('KbdInteractiveAuthentication=no'), ...o('HostbasedAuthentication=no'),
    ...o('GSSAPIAuthentication=no'), ...o(`ConnectTimeout=${s.connectTimeoutSec}`),
  ];
}

/** Last non-empty line of ssh's stderr (its own diagnostics never hold our secrets). */
function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.replace(/\r/g, '').trim()).filter((l) => l !== '' && !/^@+$/.test(l));
  return lines.length ? lines[lines.length - 1] : '';
}

/** Why the master could not be set up. */
function masterFailure(t: SshTarget, s: SshSettings, r: ChildResult, viaSshpass: boolean): SshError {
  const who = describeTarget(t);
  const err = (code: ProxyErrorCode, text: string) => new SshError(code, t.host, t.port, `ssh ${who}: ${text}`);
  if (r.error) {
    const tool = viaSshpass ? 'sshpass' : 'ssh';
    return err('E_SSH_TOOL', r.error.code === 'ENOENT'
      ? `${tool} is not installed${viaSshpass ? ' (needed for password logins; or configure sshkey)' : ''}`
      : `cannot run ${tool}: ${r.error.message}`);
  }
  if (r.aborted) return err('E_INTERRUPTED', 'interrupted while connecting');
  if (r.timedOut) return err('E_SSH_TIMEOUT', 'timed out while connecting and authenticating');
  const text = r.stderr;
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed|host key for .* has changed/i.test(text)) {
    return err('E_SSH_HOSTKEY', `host key differs from the one recorded in ${s.knownHostsFile} (if the host was reinstalled: ssh-keygen -f ${s.knownHostsFile} -R '${t.port === 22 ? t.host : `[${t.host}]:${t.port}`}')`);
  }
  if (viaSshpass) {
    // sshpass(1) exit statuses
    if (r.status === 5) return err('E_SSH_AUTH', 'authentication failed (password rejected)');
    if (r.status === 6) return err('E_SSH_HOSTKEY', 'host key is not known (sshpass saw a host key prompt)');
    if (r.status === 4) return err('E_SSH_AUTH', 'authentication failed (unrecognised response from ssh)');
    if (r.status === 2 || r.status === 3) return err('E_SSH_CONNECT', `sshpass failed (status ${r.status})${lastLine(text) ? `: ${lastLine(text)}` : ''}`);
  }
  if (/Permission denied|Too many authentication failures|no matching|Authentication failed/i.test(text)) {
    return err('E_SSH_AUTH', `authentication failed: ${lastLine(text)}`);
  }
  const line = lastLine(text);
  const how = r.signal ? `ssh killed by ${r.signal}` : `ssh exited with ${r.status}`;
  return err('E_SSH_CONNECT', line ? `connection failed: ${line}` : `connection failed (${how})`);
}

let sessionCounter = 0;

function isSocket(p: string): boolean {
  try {
    return statSync(p).isSocket();
  } catch {
    return false;
  }
}

/** An authenticated connection to one host. */
export class SshSession {
  private closed = false;

  private constructor(
    readonly target: SshTarget,
    private readonly settings: SshSettings,
    private readonly master: ChildHandle,
    private readonly socket: string,
  ) {}

  /** Connects and authenticates; throws SshError (exit 2) naming host and port. */
  static async open(target: SshTarget, settings: SshSettings, step: StepOptions): Promise<SshSession> {
    const n = sessionCounter++;
    const socket = settings.dir.file(`c${n}`);
    const keyFile = target.auth.kind === 'key' ? settings.dir.writePrivate(`k${n}`, target.auth.key) : undefined;
    const viaSshpass = target.auth.kind === 'password';
    const env = cleanEnv(settings.env);
    if (target.auth.kind === 'password') env.SSHPASS = target.auth.password;
    const ssh = ['ssh', '-M', '-N', '-T', ...masterOptions(target, settings, keyFile),
      '-o', `ControlPath=${sshPath(socket)}`, '-o', 'ControlPersist=no', '--', target.host];
    const argv = [
      ...(settings.setpriv ? [settings.setpriv, '--pdeathsig', 'SIGTERM', '--'] : []),
      ...(viaSshpass ? ['sshpass', '-e'] : []),
      ...ssh,
    ];
    // not tied to the call's signal or deadline: after an interrupt the master is still needed to
    // remove the remote payload file; close() ends it
    const master = startChild(argv, { env });
    try {
      // the control socket appears once the master has authenticated
      for (;;) {
        if (master.exited()) throw masterFailure(target, settings, await master.done, viaSshpass);
        if (isSocket(socket)) break;
        if (step.signal?.aborted) throw masterFailure(target, settings, { ...(await master.stop(500)), aborted: true }, viaSshpass);
        if (Date.now() >= step.deadline) throw masterFailure(target, settings, { ...(await master.stop(500)), timedOut: true }, viaSshpass);
        await new Promise((r) => setTimeout(r, 15));
      }
    } catch (e) {
      await master.stop(500);
      throw e;
    } finally {
      if (keyFile) settings.dir.removeFile(keyFile);
    }
    return new SshSession(target, settings, master, socket);
  }

  /** Is the master (and so the connection) still up? */
  alive(): boolean {
    return !this.closed && !this.master.exited() && existsSync(this.socket);
  }

  /** Runs a remote shell command through the master. */
  exec(remoteCommand: string, step: StepOptions): Promise<ChildResult> {
    const argv = ['ssh', '-T', ...muxOptions(this.target, this.settings, this.socket), '--', this.target.host, remoteCommand];
    return runChild(argv, { env: cleanEnv(this.settings.env), ...step });
  }

  /** Copies a local file to `remotePath` with scp through the master. */
  upload(localPath: string, remotePath: string, step: StepOptions): Promise<ChildResult> {
    const argv = ['scp', '-q', '-B', ...muxOptions(this.target, this.settings, this.socket), '--', localPath, `${scpHost(this.target.host)}:${remotePath}`];
    return runChild(argv, { env: cleanEnv(this.settings.env), ...step });
  }

  /** Ends the master (politely through its socket, then by signal). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.master.exited()) {
      await runChild(['ssh', ...muxOptions(this.target, this.settings, this.socket), '-O', 'exit', '--', this.target.host],
        { env: cleanEnv(this.settings.env), deadline: Date.now() + 3000 });
      const quit = await Promise.race([this.master.done.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 2000))]);
      if (!quit) await this.master.stop(1000);
    }
    this.settings.dir.removeFile(this.socket);
  }

  /** Describes why a step through the master failed (connection lost, timeout, interrupt). */
  stepFailure(what: string, r: ChildResult): SshError {
    const who = describeTarget(this.target);
    const mk = (code: ProxyErrorCode, text: string) => new SshError(code, this.target.host, this.target.port, `ssh ${who}: ${text}`);
    if (r.error) return mk('E_SSH_TOOL', r.error.code === 'ENOENT' ? `${what}: ${r.error.path ?? 'program'} is not installed` : `${what}: ${r.error.message}`);
    if (r.aborted) return mk('E_INTERRUPTED', `${what}: interrupted`);
    if (r.timedOut) return mk('E_SSH_TIMEOUT', `${what}: timed out`);
    const line = lastLine(r.stderr);
    return mk(this.alive() ? 'E_SSH_TRANSFER' : 'E_SSH_LOST',
      `${what} failed (${r.signal ? `killed by ${r.signal}` : `status ${r.status}`})${line ? `: ${line}` : ''}${this.alive() ? '' : ' — connection lost'}`);
  }
}
