/**
 * The two HTTP protocols guests speak to their virtual router, answered from the per-VM directory chosen by
 * the connection's source address (the caller resolves it; `root` is undefined for an unknown VM):
 *
 * Port 80, CloudStack VR layout (what cloud-init's CloudStack datasource and CloudStack guest scripts read):
 *   /latest/user-data            the user data, raw bytes (404 when none)
 *   /latest/meta-data[/]         listing of the meta-data entries, one name per line
 *   /latest/meta-data/NAME       one entry (service-offering, availability-zone, local-ipv4, local-hostname,
 *                                public-ipv4, public-hostname, instance-id, vm-id, public-keys, cloud-identifier,
 *                                hypervisor-host-name, …)
 *   /latest/NAME                 the same entry (the VR's legacy rewrite, still used by old templates)
 *   /latest[/], /                index lines ("user-data", "meta-data/"), ("latest")
 *
 * Port 8080, the VR password server (passwd_server_ip.py; its clients cloud-set-guest-password and cloud-init's
 * CloudStackPasswordServerClient both `wget --header "DomU_Request: …"` and read the body), any path:
 *   GET, `DomU_Request: send_my_password` → 200, the pending password, or `saved_password` when there is none
 *   GET, `DomU_Request: saved_password`   → 200 `saved_password`; the pending password is marked delivered
 *                                            (never served again)
 *   GET, any other value or no header     → 200 `bad_request` (the VR's status too: its 400 is never sent)
 *   any other method (HEAD included)      → 501 (the VR's HTTP server knows GET only; its POST is the
 *                                            router-local save_password, which guests are not allowed)
 * The first DomU_Request header counts, as in the VR (Python's headers.get).
 *
 * Port 80 also answers the OpenStack and EC2 layouts guests' own agents read (agent-layouts.ts); the
 * CloudStack layout above is unchanged by them (its listings, its answers).
 */
import { readFile, readdir, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FILE_NAME_RE, PASSWORD_PREFIX, DELIVERED_PREFIX } from './layout.js';
import { agentTarget, answerAgent, answerEc2, urlSegments } from './agent-layouts.js';

type Target =
  | { kind: 'file'; rel: string }
  | { kind: 'list' }
  | { kind: 'index' }
  | { kind: 'root' };

/** Map a request path to what it asks for in the CloudStack layout; undefined = not part of it. */
export function metadataTarget(url: string | undefined): Target | undefined {
  const segs = urlSegments(url, FILE_NAME_RE);
  if (!segs) return undefined;
  if (segs.length === 0) return { kind: 'root' };
  if (segs[0] !== 'latest') return undefined;
  if (segs.length === 1) return { kind: 'index' };
  if (segs.length === 2) {
    if (segs[1] === 'user-data') return { kind: 'file', rel: 'user-data' };
    if (segs[1] === 'meta-data') return { kind: 'list' };
    return { kind: 'file', rel: join('meta-data', segs[1]) };
  }
  if (segs.length === 3 && segs[1] === 'meta-data') return { kind: 'file', rel: join('meta-data', segs[2]) };
  return undefined;
}

function send(req: IncomingMessage, res: ServerResponse, status: number, body: Buffer | string, extra: Record<string, string> = {}, type = 'text/plain; charset=utf-8'): void {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': String(b.length),
    'Cache-Control': 'no-store',
    ...extra,
  });
  res.end(req.method === 'HEAD' ? undefined : b);
}

const notFound = (req: IncomingMessage, res: ServerResponse) => send(req, res, 404, 'Not Found\n');

function isMissing(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Port 80: the CloudStack layout, and the OpenStack and EC2 layouts (agent-layouts.ts). `root` is the
 * requesting VM's directory, undefined when the requester has no data here.
 */
export async function handleMetadata(req: IncomingMessage, res: ServerResponse, root: string | undefined): Promise<void> {
  const t = metadataTarget(req.url);
  const agent = agentTarget(req.url);
  // POST only where the OpenStack protocol has it: the guest storing its (encrypted) password
  const postable = agent?.kind === 'os-file' && agent.name === 'password';
  if (req.method !== 'GET' && req.method !== 'HEAD' && !(req.method === 'POST' && postable)) {
    send(req, res, 405, 'Method Not Allowed\n', { Allow: postable ? 'GET, HEAD, POST' : 'GET, HEAD' });
    return;
  }
  const answer = (status: number, body: Buffer | string, type?: string, extra: Record<string, string> = {}) => send(req, res, status, body, extra, type);
  if (!t) {
    if (!agent) return notFound(req, res);
    return answerAgent(req, agent, root, answer);
  }
  if (t.kind === 'root') return send(req, res, 200, 'latest');
  if (!root) return notFound(req, res);
  try {
    if (t.kind === 'file') {
      let body: Buffer;
      try {
        body = await readFile(join(root, t.rel));
      } catch (e) {
        // /latest/meta-data/<name> that the CloudStack layout lacks: an EC2 entry (mac, hostname, …)
        if (isMissing(e) && agent?.kind === 'ec2' && (await answerEc2(root, agent.path, answer))) return undefined;
        throw e;
      }
      return send(req, res, 200, body);
    }
    if (t.kind === 'list') {
      const names = (await readdir(join(root, 'meta-data'))).filter((n) => FILE_NAME_RE.test(n)).sort();
      return send(req, res, 200, names.join('\n'));
    }
    const lines: string[] = [];
    if (await exists(join(root, 'user-data'))) lines.push('user-data');
    if (await exists(join(root, 'meta-data'))) lines.push('meta-data/');
    if (lines.length === 0) return notFound(req, res);
    return send(req, res, 200, lines.join('\n'));
  } catch (e) {
    if (isMissing(e)) return notFound(req, res);
    throw e;
  }
}

/** Serial numbers of a VM directory's files named `<prefix><N>`, highest first. */
async function serials(root: string, prefix: string): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch (e) {
    if (isMissing(e)) return [];
    throw e;
  }
  return names
    .filter((n) => n.startsWith(prefix) && /^\d{1,15}$/.test(n.slice(prefix.length)))
    .map((n) => Number(n.slice(prefix.length)))
    .sort((a, b) => b - a);
}

/** The pending password of a VM directory, if any. */
export async function pendingPassword(root: string): Promise<string | undefined> {
  for (const n of await serials(root, PASSWORD_PREFIX)) {
    try {
      return await readFile(join(root, `${PASSWORD_PREFIX}${n}`), 'utf8');
    } catch (e) {
      if (!isMissing(e)) throw e; // acknowledged meanwhile: try the next one
    }
  }
  return undefined;
}

/**
 * Mark every pending password of a VM directory delivered: an empty `delivered-N` marker first (what the
 * router module reads), then the password link goes. The password file is a hard link to a blob that other
 * VMs may share, so it is unlinked, never truncated.
 */
export async function acknowledgePassword(root: string): Promise<void> {
  for (const n of await serials(root, PASSWORD_PREFIX)) {
    try {
      await writeFile(join(root, `${DELIVERED_PREFIX}${n}`), '', { mode: 0o600 });
      await unlink(join(root, `${PASSWORD_PREFIX}${n}`));
    } catch (e) {
      if (!isMissing(e)) throw e;
    }
  }
}

const PW_HEADERS = { Server: 'CloudStack Password Server' };

/** Port 8080. `root` as for handleMetadata. */
export async function handlePassword(req: IncomingMessage, res: ServerResponse, root: string | undefined): Promise<void> {
  // HEAD too: a request without a body must not acknowledge a password either
  if (req.method !== 'GET') return send(req, res, 501, 'bad_request', { ...PW_HEADERS, Allow: 'GET' });
  const kind = req.headersDistinct['domu_request']?.[0];
  if (kind === 'send_my_password') {
    const pw = root ? await pendingPassword(root) : undefined;
    return send(req, res, 200, pw ?? 'saved_password', PW_HEADERS);
  }
  if (kind === 'saved_password') {
    if (root) await acknowledgePassword(root);
    return send(req, res, 200, 'saved_password', PW_HEADERS);
  }
  return send(req, res, 200, 'bad_request', PW_HEADERS);
}
