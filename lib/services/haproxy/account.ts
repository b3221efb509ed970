/**
 * The unprivileged account haproxy switches to once its listeners are bound (the Debian package creates
 * `haproxy:haproxy`). Each reload is a new process started as root (it binds what is new), which switches too.
 */
import { readFileSync } from 'node:fs';

function hasEntry(file: string, name: string): boolean {
  try {
    return readFileSync(file, 'utf8').split('\n').some((l) => l.split(':')[0] === name);
  } catch {
    return false;
  }
}

/** `{user, group}` when both exist in /etc/passwd and /etc/group, else undefined (workers then stay root). */
export function workerAccount(name = 'haproxy'): { user: string; group: string } | undefined {
  return hasEntry('/etc/passwd', name) && hasEntry('/etc/group', name) ? { user: name, group: name } : undefined;
}
