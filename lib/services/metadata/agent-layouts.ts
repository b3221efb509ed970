/**
 * The layouts guests' own agents read on port 80, beside the CloudStack VR layout (handlers.ts), answered
 * from files the router module generates into the requesting VM's directory (lib/router/vmdata/documents.ts):
 *
 * OpenStack (cloud-init's OpenStack datasource, cloudbase-init, Ignition, network agents):
 *   /openstack[/]                       the versions, one per line ("latest" last), to anyone (no data)
 *   /openstack/<version>[/]             the files of that version this VM has
 *   /openstack/<version>/meta_data.json openstack/meta_data.json          (all versions)
 *   /openstack/<version>/user_data      the user data (the same bytes as /latest/user-data)
 *   /openstack/<version>/password       GET: what this VM POSTed ("" when nothing); POST: store it once
 *                                       (≤ 256 bytes; 409 when one is stored) — Nova's semantics (≥ 2013-04-04)
 *   /openstack/<version>/vendor_data.json, vendor_data2.json  `{}`: CloudStack has no vendor data
 *   /openstack/<version>/network_data.json                   openstack/network_data.json (≥ 2015-10-15)
 * A VM without an identity (no instance-id/vm-id in its data) has no meta_data.json and gets 404 below
 * /openstack/<version>: cloud-init needs the uuid.
 *
 * EC2 (cloud-init's Ec2 datasource asks /2009-04-04/…; scripts curl /latest/meta-data/<ec2 key>):
 *   /<ec2 version>[/]                   "meta-data/" and "user-data" when there is some
 *   /<ec2 version>/user-data            the user data
 *   /<ec2 version>/meta-data[/…]        the EC2 tree (ec2.json): directories list their entries, a
 *                                       directory entry with a trailing "/", public keys as "N=name"
 *   /latest/meta-data/<ec2 path>        the same tree where the CloudStack layout has no such entry
 *                                       (placement/availability-zone, public-keys/0/openssh-key, mac,
 *                                       network/…); the CloudStack listing of /latest/meta-data/ is unchanged
 */
import { link, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { EC2_TREE_FILE, META_DATA_JSON, NETWORK_DATA_JSON, OPENSTACK_DIR, OS_PASSWORD_FILE } from './layout.js';

/** OpenStack metadata versions (cloud-init's OS_VERSIONS, oldest first); "latest" is every one of them. */
export const OPENSTACK_VERSIONS = [
  '2012-08-10', '2013-04-04', '2013-10-17', '2015-10-15', '2016-06-30', '2016-10-06', '2017-02-22', '2018-08-27',
] as const;

/** EC2 metadata API versions (Nova's list; cloud-init's Ec2 datasource needs 2009-04-04). */
export const EC2_VERSIONS = [
  '1.0', '2007-01-19', '2007-03-01', '2007-08-29', '2007-10-10', '2007-12-15', '2008-02-01', '2008-09-01', '2009-04-04',
] as const;

/** The files of an OpenStack version, with the first version that has each (Nova's). */
const OPENSTACK_FILES: ReadonlyArray<[string, string]> = [
  ['meta_data.json', '2012-08-10'],
  ['password', '2013-04-04'],
  ['user_data', '2012-08-10'],
  ['vendor_data.json', '2013-10-17'],
  ['network_data.json', '2015-10-15'],
  ['vendor_data2.json', '2016-10-06'],
];

/** Nova's limit for a posted password. */
export const OS_PASSWORD_MAX = 256;

export type AgentTarget =
  | { kind: 'os-versions' }
  | { kind: 'os-index'; version: string }
  | { kind: 'os-file'; version: string; name: string }
  | { kind: 'ec2-index'; version: string }
  | { kind: 'ec2-user-data' }
  /** A path in the EC2 meta-data tree ([] = its root listing); `fallback`: under /latest/meta-data/. */
  | { kind: 'ec2'; path: string[]; fallback?: true };

/** A segment of an EC2 tree path: names, MAC addresses (":"), "N=name" keys; no "/", no leading ".". */
const EC2_SEGMENT_RE = /^[A-Za-z0-9_][A-Za-z0-9_.:=-]{0,127}$/;

/** The decoded path segments of a request URL, each matching `re`; undefined when one does not. */
export function urlSegments(url: string | undefined, re: RegExp): string[] | undefined {
  const path = (url ?? '/').split('?')[0].split('#')[0];
  const segs: string[] = [];
  for (const raw of path.split('/')) {
    if (raw === '') continue;
    let s: string;
    try {
      s = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    // a decoded segment must still be one plain name (no "..", no "/" smuggled as %2F)
    if (!re.test(s)) return undefined;
    segs.push(s);
  }
  return segs;
}

const isOsVersion = (v: string) => v === 'latest' || (OPENSTACK_VERSIONS as readonly string[]).includes(v);

/** Map a request path to an OpenStack or EC2 target; undefined = none of these layouts. */
export function agentTarget(url: string | undefined): AgentTarget | undefined {
  const segs = urlSegments(url, EC2_SEGMENT_RE);
  if (!segs || segs.length === 0) return undefined;
  const [first, second, ...rest] = segs;
  if (first === 'openstack') {
    if (second === undefined) return { kind: 'os-versions' };
    if (!isOsVersion(second)) return undefined;
    if (rest.length === 0) return { kind: 'os-index', version: second };
    if (rest.length === 1 && fileInVersion(rest[0], second)) return { kind: 'os-file', version: second, name: rest[0] };
    return undefined;
  }
  if ((EC2_VERSIONS as readonly string[]).includes(first)) {
    if (second === undefined) return { kind: 'ec2-index', version: first };
    if (second === 'user-data' && rest.length === 0) return { kind: 'ec2-user-data' };
    if (second === 'meta-data') return { kind: 'ec2', path: rest };
    return undefined;
  }
  // /latest/meta-data/<ec2 path>: where the CloudStack layout has no such entry (the caller decides)
  if (first === 'latest' && second === 'meta-data' && rest.length > 0) return { kind: 'ec2', path: rest, fallback: true };
  return undefined;
}

function fileInVersion(name: string, version: string): boolean {
  const f = OPENSTACK_FILES.find(([n]) => n === name);
  return f !== undefined && (version === 'latest' || version >= f[1]);
}

// ── the EC2 tree ─────────────────────────────────────────────────────────────────────────────────

/** A node of the EC2 meta-data tree as ec2.json holds it: a leaf string or a directory. */
export type Ec2Node = string | { [name: string]: Ec2Node };

/** Walk the tree: a segment names a key, or the index of an "N=name" key (public-keys/0/openssh-key). */
export function ec2Lookup(tree: Ec2Node, path: string[]): Ec2Node | undefined {
  let node: Ec2Node = tree;
  for (const seg of path) {
    if (typeof node === 'string') return undefined;
    const dir: Record<string, Ec2Node> = node;
    const key = Object.hasOwn(dir, seg) ? seg : Object.keys(dir).find((k) => k.startsWith(`${seg}=`) && /^\d+$/.test(seg));
    if (key === undefined) return undefined;
    node = dir[key];
  }
  return node;
}

/** A directory's listing: one entry per line, directories with a trailing "/", "N=name" entries as they are. */
export function ec2Listing(dir: Record<string, Ec2Node>): string {
  return Object.keys(dir).map((k) => (typeof dir[k] === 'string' || k.includes('=') ? k : `${k}/`)).join('\n');
}

// ── answers ──────────────────────────────────────────────────────────────────────────────────────

type Send = (status: number, body: Buffer | string, type?: string, extra?: Record<string, string>) => void;

function isMissing(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

async function readOptional(p: string): Promise<Buffer | undefined> {
  try {
    return await readFile(p);
  } catch (e) {
    if (isMissing(e)) return undefined;
    throw e;
  }
}

/** The VM's EC2 tree, or undefined when it has none (no identity). */
export async function readEc2Tree(root: string): Promise<Ec2Node | undefined> {
  const b = await readOptional(join(root, EC2_TREE_FILE));
  return b ? (JSON.parse(b.toString('utf8')) as Ec2Node) : undefined;
}

/** Answer an EC2 tree path (ec2 target) from the VM's tree; false when there is no such entry. */
export async function answerEc2(root: string, path: string[], send: Send): Promise<boolean> {
  const tree = await readEc2Tree(root);
  const node = tree === undefined ? undefined : ec2Lookup(tree, path);
  if (node === undefined) return false;
  if (typeof node === 'string') send(200, node);
  else send(200, ec2Listing(node));
  return true;
}

/**
 * Answer an OpenStack or EC2 target for the VM directory `root` (undefined: the requester has no data here
 * — 404, like every VM-specific path). `send` writes the response.
 */
export async function answerAgent(req: IncomingMessage, t: AgentTarget, root: string | undefined, send: Send): Promise<void> {
  const notFound = () => send(404, 'Not Found\n');
  if (t.kind === 'os-versions') return send(200, [...OPENSTACK_VERSIONS, 'latest'].join('\n'));
  if (!root) return notFound();
  const osDir = join(root, OPENSTACK_DIR);
  switch (t.kind) {
    case 'os-index': {
      const meta = await readOptional(join(osDir, META_DATA_JSON));
      if (!meta) return notFound();
      const hasUserData = (await readOptional(join(root, 'user-data'))) !== undefined;
      const names = OPENSTACK_FILES.filter(([n]) => fileInVersion(n, t.version) && (n !== 'user_data' || hasUserData)).map(([n]) => n);
      return send(200, names.join('\n'));
    }
    case 'os-file': {
      const meta = await readOptional(join(osDir, META_DATA_JSON));
      if (!meta) return notFound();
      switch (t.name) {
        case 'meta_data.json': return send(200, meta, 'application/json');
        case 'network_data.json': {
          const b = await readOptional(join(osDir, NETWORK_DATA_JSON));
          return b ? send(200, b, 'application/json') : notFound();
        }
        case 'vendor_data.json':
        case 'vendor_data2.json':
          return send(200, '{}', 'application/json');
        case 'user_data': {
          const b = await readOptional(join(root, 'user-data'));
          return b ? send(200, b, 'application/octet-stream') : notFound();
        }
        case 'password':
          return req.method === 'POST' ? postPassword(req, root, send) : send(200, (await readOptional(join(root, OS_PASSWORD_FILE))) ?? '');
        default:
          return notFound();
      }
    }
    case 'ec2-index': {
      if ((await readEc2Tree(root)) === undefined) return notFound();
      const hasUserData = (await readOptional(join(root, 'user-data'))) !== undefined;
      return send(200, hasUserData ? 'meta-data/\nuser-data' : 'meta-data/');
    }
    case 'ec2-user-data': {
      if ((await readEc2Tree(root)) === undefined) return notFound();
      const b = await readOptional(join(root, 'user-data'));
      return b ? send(200, b, 'application/octet-stream') : notFound();
    }
    case 'ec2':
      if (!(await answerEc2(root, t.path, send))) notFound();
      return undefined;
  }
}

/** The request body, at most `max` bytes; undefined when it is longer (the rest is not read). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > max) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > max) {
        req.off('data', onData);
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

/**
 * POST /openstack/<version>/password, Nova's semantics: the guest stores a value (its password encrypted with
 * its SSH key, for an administrator to fetch) once; 409 when a non-empty one is stored, 400 above 256 bytes.
 * Created without a window (temporary file linked into place), so two concurrent POSTs cannot both win.
 */
async function postPassword(req: IncomingMessage, root: string, send: Send): Promise<void> {
  const body = await readBody(req, OS_PASSWORD_MAX);
  if (body === undefined) return send(400, 'Request is too large.\n', undefined, { Connection: 'close' });
  const target = join(root, OS_PASSWORD_FILE);
  const tmp = join(root, `.os-password-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
  await writeFile(tmp, body, { mode: 0o600 });
  try {
    try {
      await link(tmp, target);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const cur = await readOptional(target);
      if (cur && cur.length > 0) return send(409, 'Conflict\n');
      await rename(tmp, target); // an empty value may be replaced (Nova: only a set password conflicts)
    }
    send(200, '');
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}
