/**
 * The engine's seam to the kernel: everything reconcile changes or reads — namespaces, links, addresses, routes,
 * sysctls (through namespace handles), the nft executor of a namespace and its generation, conntrack deletions,
 * gratuitous ARPs, the daemons (a router's dnsmasq and haproxy, the host's metadata daemon) — goes through one
 * RouterKernel. `realKernel()` is the machine's (rtnetlink, libnftables
 * or the nft CLI, ctnetlink); `FakeKernel` (fake-kernel.ts) is an in-memory kernel with the same semantics for
 * what netns-router uses, which also records every change: tests run the engine on it without a kernel, and a
 * plan (plan.ts) runs the command on one seeded from the real kernel.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { NetnsHandle } from '../netns/handle.js';
import { validateNetnsName } from '../sys/setns.js';
import { overwriteInPlace } from '../util/atomic-file.js';
import { addNetns, deleteNetns, netnsExists, netnsIdentity } from '../netns/namespaces.js';
import type { NetlinkHandle } from '../netlink/handle.js';
import type { NftExecutor } from '../nft/executor.js';
import { namespaceExecutor, type NamespaceExecutorOptions } from '../nft/namespace-executor.js';
import { nftGeneration } from '../nft/generation.js';
import type { NftObject } from '../nft/objects.js';
import type { NatPlan } from './router-table.js';
import { deleteConntrackFlows, deleteNatConntrack, type MirrorGuard } from './nat-flow-cleanup.js';
import type { ConntrackFilter } from '../nft/ctnetlink.js';
import { closeGratuitousArpSockets, sendGratuitousArps } from './garp.js';
import { announce } from './arp-responder.js';
import { markCurrentNamespace } from './ownership.js';
import { DnsmasqInstance, type DnsmasqControl } from '../services/dnsmasq/supervisor.js';
import { DaemonControl, type MetadataControl } from '../services/metadata/control.js';
import { RouterHaproxy, type HaproxyControl } from '../services/haproxy/control.js';

/** What the router's code asks of rtnetlink in one namespace (a subset of NetlinkHandle). */
export type NetOps = Pick<NetlinkHandle,
  | 'linkFind' | 'linkGet' | 'linkList' | 'indexOf' | 'linkAdd' | 'linkSet' | 'linkSetUp' | 'linkDel' | 'netnsIdOf'
  | 'addrList' | 'addrReplace' | 'addrDel' | 'routeList' | 'routeReplace' | 'routeDel' | 'ruleList' | 'ruleAdd' | 'ruleDel'>;

/** One namespace as the router's code uses it (a subset of NetnsHandle). */
export interface NsOps {
  /** What identifies the namespace to a link creation (IFLA_NET_NS_FD). */
  readonly fd: number;
  readonly netlink: NetOps;
  sysctlGet(key: string): string;
  sysctlSet(key: string, value: string | number): void;
  close(): void;
}

/** The kernel the engine reconciles (see the header). */
export interface RouterKernel {
  /** "kernel", "fake" or "plan". */
  readonly name: string;
  /** The namespace of host-side plumbing (the caller's, or --host-netns). */
  host(): NsOps;
  /** A named namespace (NetnsError ENOENT when it does not exist). */
  open(ns: string): NsOps;
  netnsExists(ns: string): boolean;
  /** Create a router namespace, its `lo` marked as netns-router's (NetnsError EEXIST when it exists). */
  addNetns(ns: string): void;
  /** Delete a namespace (nothing when it does not exist). */
  deleteNetns(ns: string): void;
  /**
   * Optional: delete a namespace by name at once, then the links `links` in it (a veth's peer goes with it)
   * through a socket that keeps the namespace until then; the promise is that second part, started after the
   * caller's current turn (the machine's link deletes return when the kernel announces the links gone:
   * NetlinkHandle.linkDel). Without it, links are deleted first, then the namespace.
   */
  deleteNetnsThenLinks?(ns: string, links: readonly string[]): Promise<void>;
  /** What identifies the namespace now behind a name (the nsfs inode; undefined: none, or not known). */
  netnsIdentity(ns: string): string | undefined;
  /** The nft executor of a namespace (undefined: the host-side one) and how to give it back. */
  nft(ns: string | undefined): { ex: NftExecutor; release: () => Promise<void> };
  /** The namespace's nftables generation id (the stamp's guard, lib/nft/table-sync.ts). */
  nftGeneration(ns: string): number;
  /**
   * Delete the conntrack entries of NAT mappings that went from `before` to `after` (nat-flow-cleanup.ts), after
   * `guard` put their reverses' mirror guards into the router table (without it, or when it fails, their mirrors
   * are swept instead).
   */
  deleteNatConntrack(ns: string, before: NatPlan, after: NatPlan, guard?: MirrorGuard): Promise<void>;
  /** Delete the conntrack entries (and their mirrors) any of `filters` matches (a module's translations gone). */
  deleteConntrack(ns: string, filters: ConntrackFilter[]): Promise<void>;
  /** Gratuitous ARPs for addresses just put on `dev` (best effort: never throws). */
  gratuitousArps(ns: NsOps, dev: string, ips: readonly string[]): void;
  /** Gratuitous ARPs for the addresses the ARP responder table starts answering (arp-responder.ts). */
  announceArp(ns: string, want: readonly NftObject[], before: readonly NftObject[] | undefined): void;
  /**
   * Close the handles kept for later commands whose release takes long (the gratuitous-ARP packet sockets: an RCU
   * grace period each), off the event loop: for a process that exits after its command (EngineOptions.oneShot).
   */
  releaseKept?(): void;
  /**
   * A namespace's configuration file `/etc/netns/<ns>/<path>` (what `ip netns exec` shows the namespace's programs,
   * e.g. iproute2/rt_tables); `content` undefined removes `/etc/netns/<ns>` as a whole.
   */
  netnsEtc(ns: string, path: string, content: string | undefined): void;
  /** The dnsmasq of router namespace `ns` with its runtime directory `dir` (the DHCP/DNS module's daemon). */
  dnsmasq(ns: string, dir: string): DnsmasqControl;
  /** The metadata daemon of state directory `stateDir` (one for the host: every router's VM data). */
  metadata(stateDir: string): MetadataControl;
  /** The haproxy of router namespace `ns` with its runtime directory `runDir` (the load-balancing module's daemon). */
  haproxy(ns: string, runDir: string): HaproxyControl;
}

/** `/etc/netns/<ns>`: what `ip netns exec` bind-mounts over /etc for the namespace's programs. */
export function netnsEtcDir(ns: string): string {
  validateNetnsName(ns);
  return join('/etc/netns', ns);
}

/** The machine's kernel; `hostNetns`: host-side plumbing inside that named namespace. */
export function realKernel(opts: { hostNetns?: string | undefined; nft?: NamespaceExecutorOptions } = {}): RouterKernel {
  return {
    name: 'kernel',
    host: () => (opts.hostNetns ? NetnsHandle.open(opts.hostNetns) : NetnsHandle.current()),
    open: (ns) => NetnsHandle.open(ns),
    netnsExists,
    addNetns: (ns) => addNetns(ns, { init: () => markCurrentNamespace(ns) }),
    deleteNetns: (ns) => deleteNetns(ns, { ifExists: true }),
    deleteNetnsThenLinks: (ns, links) => {
      const h = NetnsHandle.open(ns);
      let nl: NetlinkHandle;
      try {
        nl = h.detachedNetlink(); // not closed by deleteNetns: it keeps the namespace until the links are gone
      } finally {
        h.close();
      }
      try {
        deleteNetns(ns, { ifExists: true });
      } catch (e) {
        nl.socket.close();
        throw e;
      }
      // after the caller's current turn (a resident engine answers first: plumbing.ts removeRouterNamespace); each
      // delete returns once the kernel announces the link gone, its RCU wait ends on a worker whose socket
      // (closed when the wait ends) keeps the namespace until then
      return new Promise<void>((resolve, reject) => setImmediate(() => {
        try {
          for (const l of links) nl.linkDel(l, { ifExists: true });
          resolve();
        } catch (e) {
          reject(e);
        } finally {
          nl.socket.close();
        }
      }));
    },
    netnsIdentity,
    nft: (ns) => namespaceExecutor(ns ?? opts.hostNetns, opts.nft ?? {}),
    nftGeneration: (ns) => nftGeneration(ns),
    deleteNatConntrack: async (ns, before, after, guard) => { await deleteNatConntrack(ns, before, after, guard); },
    deleteConntrack: async (ns, filters) => { await deleteConntrackFlows(ns, filters); },
    gratuitousArps: (ns, dev, ips) => {
      try {
        sendGratuitousArps(ns as NetnsHandle, dev, ips);
      } catch {
        // best effort: a missing carrier must not fail the command
      }
    },
    announceArp: (ns, want, before) => { announce(() => NetnsHandle.open(ns), want, before); },
    releaseKept: () => { closeGratuitousArpSockets(); },
    dnsmasq: (ns, dir) => new DnsmasqInstance(ns, dir),
    metadata: (stateDir) => new DaemonControl(stateDir),
    haproxy: (ns, runDir) => new RouterHaproxy(ns, runDir),
    netnsEtc: (ns, path, content) => {
      const root = netnsEtcDir(ns);
      if (content === undefined) {
        if (existsSync(root)) rmSync(root, { recursive: true, force: true });
        return;
      }
      const file = join(root, path);
      // reconciled by every command of the router: rewritten only when it differs, in place (a rename over it
      // costs a flush); iproute2 skips blank lines
      if (readIfExists(file) === content) return;
      mkdirSync(dirname(file), { recursive: true });
      overwriteInPlace(file, content, { what: file, mode: 0o644 });
    },
  };
}

function readIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}
