/**
 * Validation of the VM data documents, before anything is stored:
 *
 * vm_data (save-vm-data, and each VM of restore_data): a JSON array of {dir, file, content}, the rows of
 * CloudStack's NetworkModel.generateVmData with plain UTF-8 content (the extension decodes the user data).
 * Mapping (the upstream wrapper's, which follows the VR):
 *   userdata/user-data (also user_data)          → latest/user-data
 *   metadata/<name> (also meta-data/<name>)      → latest/meta-data/<name>; several public-keys rows are
 *                                                   joined, one key per line
 *   password/vm_password                         → the pending password for the password server (not served
 *                                                   on port 80)
 *   password/vm-password-md5checksum             → latest/meta-data/password-checksum
 * Empty content removes that file (the VR's rule); an empty password is ignored. Any other dir or file, a
 * name that is not a plain file name (no '/', no leading '.', [A-Za-z0-9_.-], ≤ 128), a non-string field
 * or an oversized value is refused. Messages name the argument and entry, never a value.
 *
 * restore_data (restore-network): {dhcp_enabled, dns_enabled, userdata_enabled, vms: [{ip, mac, hostname,
 * default_nic, vm_data, …}]} — see docs/metadata.md. Only the metadata part is read here.
 */
import { UsageError } from '../../util/errors.js';
import { FILE_NAME_RE } from '../../services/metadata/layout.js';
import { isIpv4 } from '../../util/ip.js';
import { BadValue, parseMac } from '../contract/values.js';

export interface VmDataLimits {
  /** Largest user data, measured as its base64 length like CloudStack's vm.userdata.max.length. */
  userdataMaxBase64: number;
  /** Largest other entry (bytes). */
  entryMaxBytes: number;
  /** Most rows in one vm_data document. */
  maxEntries: number;
  /** Longest password (characters). */
  passwordMax: number;
}

export const DEFAULT_LIMITS: VmDataLimits = {
  userdataMaxBase64: 32_768,
  entryMaxBytes: 65_536,
  maxEntries: 512,
  passwordMax: 512,
};

/** What one vm_data document asks for. */
export interface ParsedVmData {
  /** Served path → content; null removes the file. */
  files: Map<string, Buffer | null>;
  /** A new pending password. */
  password?: string;
}

const base64Length = (bytes: number) => 4 * Math.ceil(bytes / 3);

/** The argument as the caller wrote it (`--vm-data`, `payload.vm_data`), for UsageError.argument. */
let currentArgument = '';

function fail(label: string, problem: string): never {
  throw new UsageError(`${label}: ${problem}`, currentArgument || label);
}

/** Run a parser with `argument` named in its errors. */
function withArgument<T>(argument: string, fn: () => T): T {
  const prev = currentArgument;
  currentArgument = argument;
  try {
    return fn();
  } finally {
    currentArgument = prev;
  }
}

/** User data size check (CloudStack counts the base64 form). */
export function checkUserdata(content: Buffer, limits: VmDataLimits, label: string): void {
  if (base64Length(content.length) > limits.userdataMaxBase64) {
    fail(label, `user data is ${content.length} bytes (${base64Length(content.length)} in base64), more than the limit of ${limits.userdataMaxBase64} base64 characters`);
  }
}

/** Password check: bounded, no line breaks or NUL (the guest scripts read it as one line). */
export function checkPassword(pw: string, limits: VmDataLimits, label: string): void {
  if (pw.length > limits.passwordMax) fail(label, `the password is longer than ${limits.passwordMax} characters`);
  if (/[\u0000\r\n]/.test(pw)) fail(label, 'the password contains a line break or NUL character');
}

export function checkEntrySize(content: Buffer, limits: VmDataLimits, label: string): void {
  if (content.length > limits.entryMaxBytes) fail(label, `the value is ${content.length} bytes, more than the limit of ${limits.entryMaxBytes}`);
}

const USERDATA_DIRS = new Set(['userdata', 'user-data', 'user_data']);
const USERDATA_FILES = new Set(['user-data', 'user_data', 'userdata']);
const METADATA_DIRS = new Set(['metadata', 'meta-data']);

/** Parse and check one vm_data document (the whole array); `label` names it in messages. */
export function parseVmData(value: unknown, label: string, limits: VmDataLimits): ParsedVmData {
  return withArgument(currentArgument || label, () => parseVmDataIn(value, label, limits));
}

/** Size and text checks of single values (save-userdata, save-password, save-sshkey), naming `label`. */
export function checkValue(kind: 'userdata' | 'password' | 'entry', content: string, label: string, limits: VmDataLimits): Buffer {
  return withArgument(label, () => {
    const b = Buffer.from(content, 'utf8');
    if (kind === 'userdata') checkUserdata(b, limits, label);
    else if (kind === 'password') checkPassword(content, limits, label);
    else checkEntrySize(b, limits, label);
    return b;
  });
}

function parseVmDataIn(value: unknown, label: string, limits: VmDataLimits): ParsedVmData {
  if (!Array.isArray(value)) fail(label, 'expected a JSON array of {dir, file, content} entries');
  if (value.length > limits.maxEntries) fail(label, `more than ${limits.maxEntries} entries`);
  const files = new Map<string, Buffer | null>();
  const keys: Buffer[] = [];
  let keysSeen = false;
  let password: string | undefined;
  value.forEach((entry: unknown, i: number) => {
    const at = `${label}[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(at, 'expected an object {dir, file, content}');
    const e = entry as Record<string, unknown>;
    for (const k of ['dir', 'file'] as const) {
      if (typeof e[k] !== 'string') fail(at, `"${k}" must be a string`);
      if (!FILE_NAME_RE.test(e[k] as string)) fail(at, `"${k}" is not a plain name (letters, digits, '.', '_', '-'; no '/', no leading '.'; at most 128)`);
    }
    const dir = (e.dir as string).toLowerCase();
    const file = e.file as string;
    if (e.content !== undefined && e.content !== null && typeof e.content !== 'string') fail(at, '"content" must be a string');
    const text = (e.content as string | null | undefined) ?? '';
    const content = Buffer.from(text, 'utf8');
    if (USERDATA_DIRS.has(dir)) {
      if (!USERDATA_FILES.has(file)) fail(at, `unknown user data file (expected "user-data")`);
      checkUserdata(content, limits, at);
      files.set('user-data', content.length ? content : null);
    } else if (METADATA_DIRS.has(dir)) {
      checkEntrySize(content, limits, at);
      if (file === 'public-keys') {
        keysSeen = true;
        if (content.length) keys.push(content);
      } else {
        files.set(`meta-data/${file}`, content.length ? content : null);
      }
    } else if (dir === 'password') {
      if (file === 'vm_password') {
        checkPassword(text, limits, at);
        if (text !== '') password = text;
      } else if (file === 'vm-password-md5checksum') {
        checkEntrySize(content, limits, at);
        files.set('meta-data/password-checksum', content.length ? content : null);
      } else {
        fail(at, 'unknown password file (expected "vm_password" or "vm-password-md5checksum")');
      }
    } else {
      fail(at, 'unknown dir (expected "userdata", "metadata" or "password")');
    }
  });
  if (keysSeen) {
    const joined = keys.length ? Buffer.concat(keys.map((k) => Buffer.concat([k.subarray(0, k.length - (k[k.length - 1] === 0x0a ? 1 : 0)), Buffer.from('\n')]))) : null;
    if (joined) checkEntrySize(joined, limits, `${label} (public-keys)`);
    files.set('meta-data/public-keys', joined);
  }
  const out: ParsedVmData = { files };
  if (password !== undefined) out.password = password;
  return out;
}

/** One VM of restore_data, checked. */
export interface RestoreVm {
  ip: string;
  mac?: string;
  /** undefined: no vm_data given (keep what is stored). */
  data?: ParsedVmData;
  /** NIC fields for the DHCP/DNS part, as given (that part validates them). */
  hostname?: string;
  defaultNic?: boolean;
  ip6Address?: string;
}

export interface ParsedRestoreData {
  dhcpEnabled: boolean;
  dnsEnabled: boolean;
  userdataEnabled: boolean;
  vms: RestoreVm[];
}

function flag(v: unknown, at: string): boolean {
  if (v === undefined || v === null || v === '') return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && /^(true|false)$/i.test(v)) return v.toLowerCase() === 'true';
  fail(at, 'expected true or false');
}

/** Parse and check restore_data's metadata-relevant part; `label` names it in messages. */
export function parseRestoreData(value: unknown, label: string, limits: VmDataLimits): ParsedRestoreData {
  return withArgument(label, () => parseRestoreDataIn(value, label, limits));
}

function parseRestoreDataIn(value: unknown, label: string, limits: VmDataLimits): ParsedRestoreData {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(label, 'expected a JSON object {dhcp_enabled, dns_enabled, userdata_enabled, vms}');
  const d = value as Record<string, unknown>;
  const out: ParsedRestoreData = {
    dhcpEnabled: flag(d.dhcp_enabled, `${label}.dhcp_enabled`),
    dnsEnabled: flag(d.dns_enabled, `${label}.dns_enabled`),
    userdataEnabled: flag(d.userdata_enabled, `${label}.userdata_enabled`),
    vms: [],
  };
  if (d.vms === undefined || d.vms === null) return out;
  if (!Array.isArray(d.vms)) fail(`${label}.vms`, 'expected an array');
  const seen = new Set<string>();
  d.vms.forEach((v: unknown, i: number) => {
    const at = `${label}.vms[${i}]`;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(at, 'expected an object');
    const vm = v as Record<string, unknown>;
    if (!isIpv4(vm.ip)) fail(`${at}.ip`, 'expected an IPv4 address');
    if (seen.has(vm.ip)) fail(`${at}.ip`, 'the same address appears twice');
    seen.add(vm.ip);
    const r: RestoreVm = { ip: vm.ip };
    if (vm.mac !== undefined && vm.mac !== null && vm.mac !== '') {
      if (typeof vm.mac !== 'string') fail(`${at}.mac`, 'expected a MAC address');
      try {
        r.mac = parseMac(vm.mac);
      } catch (e) {
        if (e instanceof BadValue) fail(`${at}.mac`, 'not a MAC address (xx:xx:xx:xx:xx:xx)');
        throw e;
      }
    }
    for (const [k, prop] of [['hostname', 'hostname'], ['ip6_address', 'ip6Address']] as const) {
      const x = vm[k];
      if (x === undefined || x === null || x === '') continue;
      if (typeof x !== 'string') fail(`${at}.${k}`, 'expected a string');
      r[prop] = x;
    }
    if (vm.default_nic !== undefined && vm.default_nic !== null && vm.default_nic !== '') r.defaultNic = flag(vm.default_nic, `${at}.default_nic`);
    if (vm.vm_data !== undefined && vm.vm_data !== null && !(Array.isArray(vm.vm_data) && vm.vm_data.length === 0)) {
      r.data = parseVmDataIn(vm.vm_data, `${at}.vm_data`, limits);
    }
    out.vms.push(r);
  });
  return out;
}
