/**
 * Real OpenSSH servers as "KVM hosts" for the proxy tests: each host is a namespace reached from
 * the sandbox over its own veth pair (172.30.<k>.1 ↔ 172.30.<k>.2), running Debian's
 * /usr/sbin/sshd with a private config (host key, authorized_keys, pid file in a temp dir).
 * sshd runs in the host's network namespace but the sandbox's mount namespace (nsenter --net), so
 * namespaces a remote wrapper creates under /run/netns are visible to the test.
 *
 * Password logins need a root password: privateRootPassword() bind-mounts a modified copy of
 * /etc/shadow over /etc/shadow in the sandbox's (private) mount namespace, after checking that the
 * mount cannot propagate and before/after checking that the host's /etc/shadow (as the process that
 * started the sandbox sees it) is unchanged.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Scratch, uid } from './topo.js';

export const SSHD = '/usr/sbin/sshd';

export interface KeyPair {
  privateKey: string;
  publicKey: string;
  path: string;
}

export interface SshdHostOptions {
  name: string;
  /** allow password logins (root's password comes from privateRootPassword()) */
  password?: boolean;
  port?: number;
  /** use this existing namespace instead of a new one */
  ns?: string;
  /** extra environment for sessions (SetEnv) */
  sessionEnv?: Record<string, string>;
}

export class SshdHost {
  proc: ChildProcess | undefined;
  log = '';

  constructor(
    readonly name: string,
    readonly ns: string,
    readonly address: string,
    readonly port: number,
    readonly dir: string,
    readonly config: string,
  ) {}

  /** This host's session TMPDIR (remote temp files land here). */
  get tmp(): string {
    return join(this.dir, 'tmp');
  }

  async start(): Promise<void> {
    if (this.proc) return;
    const p = spawn('nsenter', [`--net=/run/netns/${this.ns}`, '--', SSHD, '-D', '-e', '-f', this.config], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = p;
    p.stderr!.setEncoding('utf8');
    let listening!: () => void;
    const ready = new Promise<void>((r) => { listening = r; });
    let thisRun = '';
    p.stderr!.on('data', (s: string) => {
      this.log += s;
      thisRun += s;
      if (thisRun.includes('Server listening on')) listening();
    });
    const exited = new Promise<void>((_, rej) => p.once('exit', (c) => rej(new Error(`sshd ${this.name} exited (${c}): ${this.log}`))));
    exited.catch(() => { /* reported through the race below */ });
    const timeout = new Promise<void>((_, rej) => setTimeout(() => rej(new Error(`sshd ${this.name} did not start: ${this.log}`)), 5000));
    await Promise.race([ready, exited, timeout]);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    this.proc = undefined;
    if (p.exitCode === null && p.signalCode === null) {
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await gone;
    }
  }

  /** Replaces the host key (a "reinstalled" host); restart to take effect. */
  regenerateHostKey(): void {
    const key = join(this.dir, 'ssh_host_ed25519_key');
    rmSync(key, { force: true });
    rmSync(`${key}.pub`, { force: true });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  }
}

/** A stub of the KVM-host wrapper: records argv, payload file (content, mode) and host; can hold or fail. */
export class StubWrapper {
  readonly path: string;
  readonly recDir: string;

  constructor(dir: string) {
    this.recDir = join(dir, 'rec');
    mkdirSync(this.recDir, { recursive: true });
    this.path = join(dir, 'stub-wrapper.sh');
    writeFileSync(this.path, [
      '#!/bin/sh',
      '# test stub of the KVM-host wrapper',
      `R='${this.recDir}'`,
      // recorded in a temporary directory, renamed once complete: readers never see half a record
      'n="call-$(date +%s%N)-$$"',
      'c="$R/.$n"',
      'mkdir -p "$c"',
      'printf %s "${NRP_TEST_HOST:-}" > "$c/host"',
      'printf %s "$#" > "$c/argc"',
      'i=0',
      'for a in "$@"; do printf %s "$a" > "$c/arg$i"; i=$((i+1)); done',
      'if [ -f "$2" ]; then cp "$2" "$c/payload"; stat -c "%a %U" "$2" > "$c/payload-mode"; fi',
      'mv "$c" "$R/$n"',
      'c="$R/$n"',
      'if [ -f "$R/hold" ]; then : > "$c/holding"; while [ -f "$R/hold" ]; do sleep 0.05; done; fi',
      'if [ -f "$R/fail" ]; then code=$(cat "$R/fail"); echo "stub: failing with $code" >&2; : > "$c/done"; exit "$code"; fi',
      'echo "stub ran $1 on ${NRP_TEST_HOST:-?}"',
      ': > "$c/done"',
      '',
    ].join('\n'));
    chmodSync(this.path, 0o755);
  }

  setFail(code: number | undefined): void {
    const f = join(this.recDir, 'fail');
    if (code === undefined) rmSync(f, { force: true });
    else writeFileSync(f, String(code));
  }

  setHold(on: boolean): void {
    const f = join(this.recDir, 'hold');
    if (on) writeFileSync(f, '');
    else rmSync(f, { force: true });
  }

  calls(): Array<{ host: string; args: string[]; payload?: string; payloadMode?: string; holding: boolean; done: boolean }> {
    return readdirSync(this.recDir).filter((n) => n.startsWith('call-')).sort().map((n) => {
      const c = join(this.recDir, n);
      const argc = Number(readFileSync(join(c, 'argc'), 'utf8'));
      const args = Array.from({ length: argc }, (_, i) => readFileSync(join(c, `arg${i}`), 'utf8'));
      const opt = (f: string) => (existsSync(join(c, f)) ? readFileSync(join(c, f), 'utf8') : undefined);
      return {
        host: readFileSync(join(c, 'host'), 'utf8'), args, payload: opt('payload'), payloadMode: opt('payload-mode')?.trim(),
        holding: existsSync(join(c, 'holding')), done: existsSync(join(c, 'done')),
      };
    });
  }

  clear(): void {
    for (const n of readdirSync(this.recDir)) if (n.startsWith('call-')) rmSync(join(this.recDir, n), { recursive: true, force: true });
  }
}

let subnet = 10 + Math.floor(Math.random() * 200);

/** /run/sshd is sshd's compiled-in privilege separation directory (the package creates it at boot). */
function ensurePrivsepDir(): void {
  if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
}

/** Hosts, keys and a stub wrapper of one test; cleanup() stops every sshd and removes everything. */
export class SshLab {
  readonly dir: string;
  readonly hosts: SshdHost[] = [];
  readonly stub: StubWrapper;
  readonly knownHosts: string;

  constructor(readonly scratch: Scratch) {
    this.dir = mkdtempSync(join(tmpdir(), 'nrp-lab-'));
    this.stub = new StubWrapper(this.dir);
    this.knownHosts = join(this.dir, 'known_hosts');
    ensurePrivsepDir();
  }

  keyPair(name = `key-${uid()}`): KeyPair {
    const path = join(this.dir, name);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path]);
    return { path, privateKey: readFileSync(path, 'utf8'), publicKey: readFileSync(`${path}.pub`, 'utf8') };
  }

  /** Public keys accepted by every host (one authorized_keys file shared by the lab). */
  authorize(key: KeyPair): void {
    const f = join(this.dir, 'authorized_keys');
    writeFileSync(f, (existsSync(f) ? readFileSync(f, 'utf8') : '') + key.publicKey);
  }

  async addHost(opts: SshdHostOptions): Promise<SshdHost> {
    const ns = opts.ns ?? this.scratch.ns('kvm');
    const k = subnet++;
    if (subnet > 250) subnet = 10;
    const rootEnd = `m${uid(6)}`;
    execFileSync('ip', ['link', 'add', rootEnd, 'type', 'veth', 'peer', 'name', 'mgmt0', 'netns', ns]);
    execFileSync('ip', ['addr', 'add', `172.30.${k}.1/24`, 'dev', rootEnd]);
    execFileSync('ip', ['link', 'set', rootEnd, 'up']);
    execFileSync('ip', ['-n', ns, 'addr', 'add', `172.30.${k}.2/24`, 'dev', 'mgmt0']);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'mgmt0', 'up']);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const address = `172.30.${k}.2`;
    const port = opts.port ?? 22;
    const dir = join(this.dir, `host-${opts.name}`);
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    const hostKey = join(dir, 'ssh_host_ed25519_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
    const env = { NRP_TEST_HOST: opts.name, TMPDIR: join(dir, 'tmp'), ...(opts.sessionEnv ?? {}) };
    const config = join(dir, 'sshd_config');
    writeFileSync(config, [
      `ListenAddress ${address}`,
      `Port ${port}`,
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(this.dir, 'authorized_keys')}`,
      'StrictModes no',
      'UsePAM no',
      `PermitRootLogin ${opts.password ? 'yes' : 'prohibit-password'}`,
      `PasswordAuthentication ${opts.password ? 'yes' : 'no'}`,
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'Subsystem sftp internal-sftp',
      `SetEnv ${Object.entries(env).map(([k2, v]) => `${k2}=${v}`).join(' ')}`,
      'PrintMotd no',
      'MaxStartups 50',
      'LogLevel INFO',
      '',
    ].join('\n'));
    const host = new SshdHost(opts.name, ns, address, port, dir, config);
    this.hosts.push(host);
    await host.start();
    return host;
  }

  async cleanup(): Promise<void> {
    for (const h of this.hosts) await h.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

function outerMountNamespacePid(): number | undefined {
  const ours = readlinkSync('/proc/self/ns/mnt');
  for (let pid = parentOf(process.pid); pid > 1; pid = parentOf(pid)) {
    try {
      if (readlinkSync(`/proc/${pid}/ns/mnt`) !== ours) return pid;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * Sets root's password for this sandbox only: a private copy of /etc/shadow bind-mounted over it.
 * Refuses unless an ancestor lives in another mount namespace and the mount holding /etc is
 * private; verifies through that ancestor's /proc/PID/root that the host's /etc/shadow is unchanged.
 * Returns undo().
 */
export function privateRootPassword(password: string, dir: string): () => void {
  if (process.env.NETNS_ROUTER_SANDBOX !== '1') throw new Error('privateRootPassword: only inside the sandbox');
  // the nearest ancestor outside our mount namespace (the process that started the sandbox)
  const outside = outerMountNamespacePid();
  if (outside === undefined) throw new Error('privateRootPassword: no ancestor outside this mount namespace; refusing');
  const hostShadow = readFileSync(`/proc/${outside}/root/etc/shadow`, 'utf8');
  const original = readFileSync('/etc/shadow', 'utf8');
  if (original !== hostShadow) throw new Error('privateRootPassword: /etc/shadow already differs from the host\'s; refusing');
  const hash = execFileSync('openssl', ['passwd', '-6', '-stdin'], { input: `${password}\n`, encoding: 'utf8' }).trim();
  const lines = original.split('\n');
  const i = lines.findIndex((l) => l.startsWith('root:'));
  if (i < 0) throw new Error('privateRootPassword: no root entry in /etc/shadow');
  const fields = lines[i].split(':');
  fields[1] = hash;
  lines[i] = fields.join(':');
  const copy = join(dir, `shadow-${uid()}`);
  writeFileSync(copy, lines.join('\n'), { mode: 0o600 });
  execFileSync('mount', ['--bind', copy, '/etc/shadow']);
  const undo = () => {
    try { execFileSync('umount', ['/etc/shadow']); } catch { /* gone with the sandbox anyway */ }
  };
  try {
    if (readFileSync(`/proc/${outside}/root/etc/shadow`, 'utf8') !== hostShadow) throw new Error('host /etc/shadow changed: the bind mount leaked');
    if (!readFileSync('/etc/shadow', 'utf8').includes(hash)) throw new Error('bind mount of /etc/shadow did not take');
  } catch (e) {
    undo();
    throw e;
  }
  return undo;
}

/** Every process's command line and environment (NUL → space), for secret scans. */
export function allCommandLines(): Array<{ pid: string; cmdline: string; environ: string }> {
  const out: Array<{ pid: string; cmdline: string; environ: string }> = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(pid)) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0/g, ' ');
      let environ = '';
      try { environ = readFileSync(`/proc/${pid}/environ`, 'latin1').replace(/\0/g, ' '); } catch { /* not ours to read */ }
      out.push({ pid, cmdline, environ });
    } catch {
      /* exited */
    }
  }
  return out;
}
