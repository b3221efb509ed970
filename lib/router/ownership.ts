/**
 * Ownership marks: netns-router changes or deletes only what it made. Every link it creates carries a mark in
 * its alias (IFLA_IFALIAS, shown by `ip link`), and every router namespace a mark on its loopback device:
 *
 *   netns-router:router <namespace> <role>       a router's veth ends ("guest 42 vlan://100 eth1", "shared …", "public …")
 *   netns-router:namespace <namespace>           `lo` of a router namespace (lives and dies with the namespace)
 *   netns-router:segment <segment> <device>      a host VLAN/VXLAN device or bridge made for a segment (shared)
 *   netns-router:l2 <network> <segment> <device> the same, made for an L2 network (removed with it when unused)
 *
 * A namespace is a router's when its `lo` carries the mark for its own name, or when netns-router's state
 * records a router there (made by a version without marks, or restored after a reboot): it is then marked. Any
 * other namespace is refused unless the request asks to adopt it. A link is a router's when its mark names
 * the router's namespace, or — unmarked — when it is exactly the peer of the router's own veth end inside
 * its namespace (plumbing.ts: links of a version without marks, or of a run interrupted before marking).
 */
import { NetlinkHandle } from '../netlink/handle.js';
import type { Link } from '../netlink/link.js';
import type { RouterKernel } from './kernel.js';
import { segmentText, type Segment } from './segment.js';

const PREFIX = 'netns-router:';

export type Mark =
  | { kind: 'router'; namespace: string; role: string }
  | { kind: 'namespace'; namespace: string }
  | { kind: 'segment'; segment: string; device: string }
  | { kind: 'l2'; networkId: string; segment: string; device: string };

/** A command met an object netns-router does not own (exit 2: the host's state, not the input, is in the way). */
export class OwnershipError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OwnershipError';
  }
}

export const routerMark = (namespace: string, role: string): string => `${PREFIX}router ${namespace} ${role}`;
export const namespaceMark = (namespace: string): string => `${PREFIX}namespace ${namespace}`;
export const segmentMark = (device: string, seg: Segment): string => `${PREFIX}segment ${segmentText(seg)} ${device}`;
export const l2Mark = (networkId: string, device: string, seg: Segment): string => `${PREFIX}l2 ${networkId} ${segmentText(seg)} ${device}`;

export function parseMark(alias: string | undefined): Mark | undefined {
  if (!alias?.startsWith(PREFIX)) return undefined;
  const [kind, a, ...rest] = alias.slice(PREFIX.length).split(' ');
  if (kind === 'router' && a && rest.length) return { kind, namespace: a, role: rest.join(' ') };
  if (kind === 'namespace' && a && !rest.length) return { kind, namespace: a };
  if (kind === 'segment' && a && rest.length === 1) return { kind, segment: a, device: rest[0] };
  if (kind === 'l2' && a && rest.length === 2) return { kind, networkId: a, segment: rest[0], device: rest[1] };
  return undefined;
}

/** Who a link belongs to, for messages (a foreign alias is quoted, escaped and cut). */
export function ownerText(alias: string | undefined): string {
  const m = parseMark(alias);
  if (m?.kind === 'router') return `router ${m.namespace} (${m.role})`;
  if (m?.kind === 'namespace') return `the namespace mark of ${m.namespace}`;
  if (m?.kind === 'segment') return `the ${m.segment} segment on ${m.device}`;
  if (m?.kind === 'l2') return `L2 network ${m.networkId} (${m.segment} on ${m.device})`;
  if (!alias) return 'nobody known: it has no netns-router mark, so it was not created by netns-router';
  return `someone else: its alias is ${JSON.stringify(alias.slice(0, 64))}, not a netns-router mark`;
}

/** True when `link` carries the mark of router `namespace`. */
export function markedFor(link: Pick<Link, 'alias'>, namespace: string): boolean {
  const m = parseMark(link.alias);
  return m?.kind === 'router' && m.namespace === namespace;
}

/** Marks `lo` of the calling thread's namespace (run inside a namespace being created: addNetns `init`). */
export function markCurrentNamespace(namespace: string): void {
  const nl = NetlinkHandle.open();
  try {
    nl.linkSet('lo', { alias: namespaceMark(namespace) });
  } finally {
    nl.close();
  }
}

export type NamespaceClaim = 'absent' | 'marked' | 'adopted';

/**
 * Decide whether a command may act on router namespace `ns` before anything is changed: yes when it does not
 * exist (it will be made, marked) or carries our mark; when unmarked, only if our state records the router
 * (`stored`: a router of a version without marks, kept across upgrade) or the request adopts it (`adopt`) —
 * the namespace is marked then. Anything else throws OwnershipError and nothing is touched.
 */
export function claimNamespace(k: Pick<RouterKernel, 'netnsExists' | 'open'>, ns: string, may: { stored: boolean; adopt: boolean }): NamespaceClaim {
  if (!k.netnsExists(ns)) return 'absent';
  const h = k.open(ns);
  try {
    const lo = h.netlink.linkGet('lo');
    if (lo.alias === namespaceMark(ns)) return 'marked';
    if (!may.stored && !may.adopt) {
      const mark = parseMark(lo.alias);
      const why = mark?.kind === 'namespace' ? `it carries the mark of ${mark.namespace}` : 'it carries no netns-router mark';
      throw new OwnershipError(`network namespace "${ns}" was not created by netns-router (${why} and no router state is stored for it); `
        + 'refusing to change or delete it: remove it, or adopt it with network-extension-details {"adopt-namespace": "true"}');
    }
    h.netlink.linkSet(lo.index, { alias: namespaceMark(ns) });
    return 'adopted';
  } finally {
    h.close();
  }
}
