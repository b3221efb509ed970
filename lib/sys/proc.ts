/**
 * What /proc says about a process: alive (a zombie counts as dead: a daemonized master is reparented to pid 1,
 * which may reap it seconds later), its command line, its process group, its environment, its children, the
 * network namespace it lives in; the processes holding an argument or in a process group. The daemons' drivers
 * (lib/services) and the router's operator hooks (lib/router/hook-runner.ts) read processes through these.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';

/** Process state letter (R, S, D, Z, …), or undefined when the pid does not exist. */
export function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ..." — comm may hold spaces and parentheses: the state follows the last ')'
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) || undefined;
  } catch {
    return undefined;
  }
}

export function procAlive(pid: number): boolean {
  const s = procState(pid);
  return s !== undefined && s !== 'Z' && s !== 'X';
}

export function procCmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
  } catch {
    return [];
  }
}

/** PF_KTHREAD in /proc/PID/stat's flags: a kernel thread (its command line is always empty). */
const PF_KTHREAD = 0x00200000;

/**
 * Every process whose command line holds `arg` as one argument (a scan of /proc: one read per process), argv[0]
 * excepted. A process in the middle of its exec reads an empty command line for a moment (a vfork-based
 * posix_spawn returns to its caller before the kernel has set it): such processes are read again until it
 * appears (at most ~200 ms); kernel threads and zombies, empty for good, are skipped.
 */
export function procsWithArg(arg: string): number[] {
  const needle = Buffer.from(`\0${arg}\0`);
  const found: number[] = [];
  const execing: number[] = [];
  const read = (pid: number): Buffer | undefined => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`);
    } catch {
      return undefined;
    }
  };
  for (const pid of listPids()) {
    const argv = read(pid);
    if (argv === undefined) continue;
    // the last argument ends with a NUL too: `\0arg\0` matches any argument but the first (argv[0])
    if (argv.includes(needle)) found.push(pid);
    else if (argv.length === 0 && procAlive(pid) && !((procStatField(pid, 6) ?? PF_KTHREAD) & PF_KTHREAD)) execing.push(pid);
  }
  for (let i = 0; execing.length && i < 100; i++) {
    sleepSync(2);
    for (const pid of [...execing]) {
      const argv = read(pid);
      if (argv !== undefined && argv.length === 0 && procAlive(pid)) continue;
      execing.splice(execing.indexOf(pid), 1);
      if (argv?.includes(needle)) found.push(pid);
    }
  }
  return found;
}

/** Field `n` of /proc/PID/stat counted from the state (0 = state, 1 = ppid, 2 = process group, 3 = session,
 *  6 = flags), as a number. */
export function procStatField(pid: number, n: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const v = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[n]);
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Every process id in /proc (a snapshot: processes come and go while the caller looks at them). */
export function listPids(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    const c = name.charCodeAt(0);
    if (c >= 48 && c <= 57) pids.push(Number(name));
  }
  return pids;
}

/** Live members of process group `pgid` (zombies excluded). */
export function procGroupMembers(pgid: number): number[] {
  return listPids().filter((pid) => procStatField(pid, 2) === pgid && procAlive(pid));
}

/** Does the process's initial environment hold `entry` (`NAME=value`) exactly? False when it cannot be read. */
export function procEnvironHas(pid: number, entry: string): boolean {
  try {
    const env = readFileSync(`/proc/${pid}/environ`);
    const needle = Buffer.from(`${entry}\0`);
    // the block starts with an entry and every entry ends with a NUL
    return env.subarray(0, needle.length).equals(needle) || env.includes(Buffer.from(`\0${entry}\0`));
  } catch {
    return false;
  }
}

/** Direct children (all threads' children of the main thread's task list are enough for haproxy's master). */
export function procChildren(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Inode of the network namespace a process lives in (undefined when unreadable). */
export function procNetnsInode(pid: number): number | undefined {
  try {
    return statSync(`/proc/${pid}/ns/net`).ino;
  } catch {
    return undefined;
  }
}

/** Inode of a namespace file (/run/netns/NAME bind mount), undefined when it does not exist. */
export function netnsFileInode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

export function readPidFile(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(n) && n > 1 ? n : undefined;
  } catch {
    return undefined;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const napCell = new Int32Array(new SharedArrayBuffer(4));
/** Block the thread for `ms` (for the few-millisecond waits of synchronous status checks). */
export function sleepSync(ms: number): void {
  Atomics.wait(napCell, 0, 0, ms);
}

/** Poll `fn` every `stepMs` until it is true or `ms` elapsed; returns its last value. */
export async function pollUntil(fn: () => boolean, ms: number, stepMs = 10): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fn()) return true;
    await sleep(stepMs);
  }
  return fn();
}

/** Hard RLIMIT_NOFILE of this process (inherited by the haproxy it starts), from /proc/self/limits. */
export function openFilesHardLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const hard = line?.trim().split(/\s+/)[4];
    if (hard === 'unlimited') return Number.MAX_SAFE_INTEGER;
    const n = Number(hard);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}
