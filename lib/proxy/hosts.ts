/**
 * The KVM hosts and SSH credentials of a physical network, read from its extension details
 * (`hosts`, `host`, `port`, `username`, `sshkey`, `password`), and which host a command goes to.
 * Host lists are split exactly like the upstream proxy (`IFS=',' read -ra`, spaces removed) so
 * that list positions — and therefore cksum-based host choices — are the same.
 */
import { canonicalIpv4, canonicalIpv6 } from '../util/ip.js';
import { ProxyConfigError } from './errors.js';

export const DEFAULT_SSH_PORT = 22;
export const DEFAULT_SSH_USER = 'root';

const DETAILS = 'physical-network-extension-details';

/** How we log in: a private key (preferred), a password (through sshpass), or ssh's own defaults. */
export type SshAuth =
  | { kind: 'key'; key: string }
  | { kind: 'password'; password: string }
  | { kind: 'default' };

export interface SshCredentials {
  user: string;
  port: number;
  auth: SshAuth;
}

/**
 * bash `IFS=',' read -ra LIST <<< "$csv"` followed by `${h// /}`: reading stops at the first
 * newline, one trailing empty field is dropped, other empty fields are kept (they count for the
 * modulo), spaces (only spaces) are removed from each entry.
 */
export function splitHostList(csv: string): string[] {
  const line = csv.split('\n', 1)[0];
  if (line === '') return [];
  const fields = line.split(',');
  if (fields.length > 1 && fields[fields.length - 1] === '') fields.pop();
  return fields.map((f) => f.replace(/ /g, ''));
}

const LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** A host name or IP literal that can safely follow `ssh … --` and `scp`'s `host:` (never an option). */
export function isValidHost(host: string): boolean {
  if (host.length === 0 || host.length > 253) return false;
  if (canonicalIpv4(host) !== undefined) return true;
  if (host.includes(':')) return canonicalIpv6(host) !== undefined;
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  return name.split('.').every((l) => LABEL.test(l));
}

function detailString(details: Record<string, unknown>, key: string): string | undefined {
  const v = details[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'number' && (key === 'port')) return String(v);
  if (typeof v !== 'string') throw new ProxyConfigError(`${DETAILS}.${key}: expected a string`, `${DETAILS}.${key}`);
  return v;
}

/** The host list: `hosts` (comma separated), else the single `host`, else empty. */
export function hostListOf(physical: Record<string, unknown>): string[] {
  const csv = detailString(physical, 'hosts');
  const list = csv !== undefined ? splitHostList(csv) : (() => {
    const single = detailString(physical, 'host');
    return single !== undefined ? [single] : [];
  })();
  for (const h of list) {
    if (h !== '' && !isValidHost(h)) {
      throw new ProxyConfigError(`${DETAILS}.${csv !== undefined ? 'hosts' : 'host'}: ${JSON.stringify(h.slice(0, 80))} is not a host name or IP address`, `${DETAILS}.hosts`);
    }
  }
  return list;
}

const USER_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$/;
const PRIVATE_KEY_RE = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]+-----END [A-Z0-9 ]*PRIVATE KEY-----/;

/**
 * A private key as the details hold it → the text ssh expects: CRLF and literal "\n" sequences
 * (a key pasted into a one-line field) become newlines, and the text ends with a newline.
 */
export function normalizePrivateKey(text: string): string {
  let t = text.replace(/\r\n?/g, '\n');
  if (!t.includes('\n') && t.includes('\\n')) t = t.replace(/\\n/g, '\n');
  t = t.trim();
  return `${t}\n`;
}

/** Credentials from the physical-network details; secrets are never quoted in messages. */
export function credentialsOf(physical: Record<string, unknown>): SshCredentials {
  const user = detailString(physical, 'username') ?? DEFAULT_SSH_USER;
  if (!USER_RE.test(user)) throw new ProxyConfigError(`${DETAILS}.username: ${JSON.stringify(user.slice(0, 40))} is not a user name`, `${DETAILS}.username`);
  const portText = detailString(physical, 'port');
  let port = DEFAULT_SSH_PORT;
  if (portText !== undefined) {
    if (!/^[0-9]{1,5}$/.test(portText.trim()) || Number(portText) < 1 || Number(portText) > 65535) {
      throw new ProxyConfigError(`${DETAILS}.port: ${JSON.stringify(portText.slice(0, 20))} is not a port (1-65535)`, `${DETAILS}.port`);
    }
    port = Number(portText);
  }
  const key = detailString(physical, 'sshkey');
  if (key !== undefined) {
    const normalized = normalizePrivateKey(key);
    if (!PRIVATE_KEY_RE.test(normalized)) {
      throw new ProxyConfigError(`${DETAILS}.sshkey: not a PEM/OpenSSH private key (value not shown)`, `${DETAILS}.sshkey`);
    }
    return { user, port, auth: { kind: 'key', key: normalized } };
  }
  const password = detailString(physical, 'password');
  if (password !== undefined) {
    if (password.includes('\n') || password.includes('\0')) {
      throw new ProxyConfigError(`${DETAILS}.password: contains a newline or NUL (value not shown)`, `${DETAILS}.password`);
    }
    return { user, port, auth: { kind: 'password', password } };
  }
  return { user, port, auth: { kind: 'default' } };
}

/**
 * Host a forwarded command goes to, like upstream: the network's remembered `host`
 * (network-extension-details, written by ensure-network-device), else the physical network's
 * single `host`, else the first of `hosts`.
 */
export function forwardHostOf(physical: Record<string, unknown>, network: Record<string, unknown>): string | undefined {
  const remembered = network.host;
  if (typeof remembered === 'string' && remembered !== '') {
    if (!isValidHost(remembered)) {
      throw new ProxyConfigError(`network-extension-details.host: ${JSON.stringify(remembered.slice(0, 80))} is not a host name or IP address`, 'network-extension-details.host');
    }
    return remembered;
  }
  if (remembered !== undefined && remembered !== null && remembered !== '') {
    throw new ProxyConfigError('network-extension-details.host: expected a string', 'network-extension-details.host');
  }
  const single = detailString(physical, 'host');
  if (single !== undefined) {
    if (!isValidHost(single)) throw new ProxyConfigError(`${DETAILS}.host: ${JSON.stringify(single.slice(0, 80))} is not a host name or IP address`, `${DETAILS}.host`);
    return single;
  }
  const list = hostListOf(physical);
  return list.length > 0 && list[0] !== '' ? list[0] : undefined;
}

/** Probe order from the preferred index, wrapping around (empty list entries are skipped). */
export function probeOrder(hosts: readonly string[], preferred: number): Array<{ host: string; index: number }> {
  const out: Array<{ host: string; index: number }> = [];
  for (let p = 0; p < hosts.length; p++) {
    const index = (preferred + p) % hosts.length;
    if (hosts[index] !== '') out.push({ host: hosts[index], index });
  }
  return out;
}
