/**
 * posix_spawn(3) and waitpid(2) through koffi, for starting daemons from a large Node process.
 *
 * Node's child_process forks: the kernel copies the parent's page tables, so a spawn costs time proportional
 * to the parent's memory (measured here: /bin/true in 2 ms from a fresh Node, 20-45 ms from one holding
 * 200 MB). glibc's posix_spawn uses clone(CLONE_VM | CLONE_VFORK): no copy, constant cost. The child is
 * created by the calling thread, so it is born in that thread's network namespace (call it inside
 * runInNetns to start a process in a router namespace).
 *
 * The child gets stdin/stdout on /dev/null, stderr on a file of the caller's choosing, the minimal child
 * environment (children.ts) unless the caller names another, every other fd closed, all signal
 * dispositions at their defaults and an empty signal mask (Node ignores SIGPIPE; that
 * must not leak into a daemon).
 */
import { SysError } from './errors.js';
import { childEnvList } from './children.js';
import { errno, lazyBinding, libcLibrary } from './ffi.js';

// glibc x86_64: posix_spawn_file_actions_t is 80 bytes, posix_spawnattr_t 336, sigset_t 128; opaque here.
const FILE_ACTIONS_SIZE = 80;
const ATTR_SIZE = 336;
const SIGSET_SIZE = 128;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
/** glibc ≥ 2.26: the child calls setsid() (a session of its own, like a detached Node child). */
const POSIX_SPAWN_SETSID = 0x80;
const O_RDONLY = 0;
const O_WRONLY = 1;
const O_CREAT = 0o100;
const O_TRUNC = 0o1000;
const O_APPEND = 0o2000;
const ECHILD = 10;
const WNOHANG = 1;

const c = lazyBinding(() => {
  const lib = libcLibrary();
  return {
    spawn: lib.func('int posix_spawn(_Out_ int *pid, const char *path, void *actions, void *attr, const char **argv, const char **envp)'),
    faInit: lib.func('int posix_spawn_file_actions_init(void *actions)'),
    faDestroy: lib.func('int posix_spawn_file_actions_destroy(void *actions)'),
    faOpen: lib.func('int posix_spawn_file_actions_addopen(void *actions, int fd, const char *path, int oflag, uint32_t mode)'),
    faDup2: lib.func('int posix_spawn_file_actions_adddup2(void *actions, int fd, int newfd)'),
    attrInit: lib.func('int posix_spawnattr_init(void *attr)'),
    attrDestroy: lib.func('int posix_spawnattr_destroy(void *attr)'),
    attrFlags: lib.func('int posix_spawnattr_setflags(void *attr, int16_t flags)'),
    attrSigdef: lib.func('int posix_spawnattr_setsigdefault(void *attr, const void *set)'),
    attrSigmask: lib.func('int posix_spawnattr_setsigmask(void *attr, const void *set)'),
    sigfillset: lib.func('int sigfillset(void *set)'),
    sigemptyset: lib.func('int sigemptyset(void *set)'),
    waitpid: lib.func('int waitpid(int pid, _Out_ int *status, int options)'),
    /** glibc ≥ 2.34; without it the child keeps inherited fds (our own are close-on-exec). */
    closefrom: optional(() => lib.func('int posix_spawn_file_actions_addclosefrom_np(void *actions, int from)') as unknown as (fa: Buffer, from: number) => number),
    /** glibc ≥ 2.29: the child's working directory. */
    addchdir: optional(() => lib.func('int posix_spawn_file_actions_addchdir_np(void *actions, const char *path)') as unknown as (fa: Buffer, path: string) => number),
  };
});

function optional<T>(declare: () => T): T | undefined {
  try {
    return declare();
  } catch {
    return undefined;
  }
}

/** posix_spawn-family functions return the error number instead of setting errno. */
function ok(name: string, rc: number): void {
  if (rc !== 0) throw new SysError(name, rc);
}

export interface SpawnOptions {
  /** File receiving the child's stderr (created/truncated, 0600); default /dev/null. */
  stderrPath?: string;
  /** Append to stderrPath instead of truncating it (a daemon's log). */
  appendStderr?: boolean;
  /** The child's stdout goes where its stderr goes (instead of /dev/null). */
  stdoutToStderr?: boolean;
  /** The child starts a session of its own (setsid), detached from ours. */
  newSession?: boolean;
  /** Working directory of the child (glibc ≥ 2.29; ignored before). */
  cwd?: string;
  /** Environment as NAME=value strings; default: the minimal child environment (children.ts), never ours. */
  env?: string[];
}

/** Start `path` with `argv` (argv[0] included). Returns the child's pid. */
export function posixSpawn(path: string, argv: string[], opts: SpawnOptions = {}): number {
  const fa = Buffer.alloc(FILE_ACTIONS_SIZE);
  const attr = Buffer.alloc(ATTR_SIZE);
  const all = Buffer.alloc(SIGSET_SIZE);
  const none = Buffer.alloc(SIGSET_SIZE);
  ok('posix_spawn_file_actions_init', Number(c().faInit(fa)));
  try {
    ok('posix_spawnattr_init', Number(c().attrInit(attr)));
    try {
      ok('posix_spawn_file_actions_addopen', Number(c().faOpen(fa, 0, '/dev/null', O_RDONLY, 0)));
      const errFlags = O_WRONLY | O_CREAT | (opts.appendStderr ? O_APPEND : O_TRUNC);
      ok('posix_spawn_file_actions_addopen', Number(c().faOpen(fa, 2, opts.stderrPath ?? '/dev/null', errFlags, 0o600)));
      if (opts.stdoutToStderr) ok('posix_spawn_file_actions_adddup2', Number(c().faDup2(fa, 2, 1)));
      else ok('posix_spawn_file_actions_addopen', Number(c().faOpen(fa, 1, '/dev/null', O_WRONLY, 0)));
      const closefrom = c().closefrom;
      if (closefrom) ok('posix_spawn_file_actions_addclosefrom_np', Number(closefrom(fa, 3)));
      const addchdir = c().addchdir;
      if (opts.cwd !== undefined && addchdir) ok('posix_spawn_file_actions_addchdir_np', Number(addchdir(fa, opts.cwd)));
      c().sigfillset(all);
      c().sigemptyset(none);
      ok('posix_spawnattr_setsigdefault', Number(c().attrSigdef(attr, all)));
      ok('posix_spawnattr_setsigmask', Number(c().attrSigmask(attr, none)));
      ok('posix_spawnattr_setflags', Number(c().attrFlags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | (opts.newSession ? POSIX_SPAWN_SETSID : 0))));
      const env = opts.env ?? childEnvList();
      const pid = [0];
      ok('posix_spawn', Number(c().spawn(pid, path, fa, attr, [...argv, null], [...env, null])));
      return pid[0];
    } finally {
      c().attrDestroy(attr);
    }
  } finally {
    c().faDestroy(fa);
  }
}

export interface ExitStatus {
  /** Exit code when the child exited normally. */
  code: number | null;
  /** Signal number when it was killed. */
  signal: number | null;
}

function decode(status: number): ExitStatus {
  const sig = status & 0x7f;
  return sig === 0 ? { code: (status >> 8) & 0xff, signal: null } : { code: null, signal: sig };
}

/**
 * Wait for a child started by posixSpawn, on koffi's worker pool (the event loop stays free). Only that pid
 * is reaped: libuv reaps only the children it started itself.
 */
export function waitChild(pid: number): Promise<ExitStatus> {
  return new Promise((resolve, reject) => {
    const status = [0];
    (c().waitpid as unknown as { async: (...a: unknown[]) => void }).async(pid, status, 0, (err: unknown, rc: number) => {
      if (err) return reject(err);
      if (Number(rc) < 0) return reject(new SysError('waitpid', errno() || ECHILD));
      resolve(decode(status[0]));
    });
  });
}

/** Wait for a child started by posixSpawn, blocking this thread (for short-lived checks). */
export function waitChildSync(pid: number): ExitStatus {
  const status = [0];
  for (;;) {
    const rc = Number(c().waitpid(pid, status, 0));
    if (rc >= 0) return decode(status[0]);
    const e = errno();
    if (e !== 4) throw new SysError('waitpid', e || ECHILD); // 4: EINTR, again
  }
}

/**
 * Reap a child started by posixSpawn if it has exited (never blocks): its exit status, or undefined while it
 * runs — or when it is not our child (ECHILD: someone else's, or reaped already). A long-lived process must
 * reap the daemons it started itself, or each one that dies stays a zombie (libuv reaps only its own).
 */
export function reapIfExited(pid: number): ExitStatus | undefined {
  const status = [0];
  const rc = Number(c().waitpid(pid, status, WNOHANG));
  return rc === pid ? decode(status[0]) : undefined;
}
