/**
 * Isolation allocated by the extension (CloudStack's `network.isolation.method=NetworkExtension`, issue
 * apache/cloudstack#14077): CloudStack then implements a network without a broadcast URI and reads the one
 * the extension chose back from implement-network's stdout (`network.broadcast_uri`,
 * `network.broadcast_domain_type`). The values come from the physical-network detail
 * `guest.network.isolation.range` and are recorded per network in `<stateDir>/segment-pool.json`, changed
 * only under the flock `<stateDir>/lock-segment-pool` (every netns-router process of this state directory
 * takes it), so two networks never get the same value, whatever runs in parallel, and a restart keeps them.
 * A value is handed out on implement, kept across shutdown, and given back on destroy. Values CloudStack
 * sends that lie in the range (a later command, or a network implemented elsewhere first) are recorded as
 * the network's, and refused when another network holds them.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StateError, SystemError, UsageError } from '../util/errors.js';
import { acquireFileLock, type AcquireOptions } from './state/lock.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { diffLines, type PlanRecorder } from './plan.js';
import { segmentText, type Segment } from './segment.js';
import type { GuestIsolation, ImplementNetworkRequest } from './contract/types.js';
import type { CommandContext, CommandOutput } from './contract/router-api.js';

const FILE_VERSION = 1;

/** One network's segment. VLAN ids are per guest device (`<dev>.<id>`); a VNI is unique on the host. */
export interface PoolEntry {
  kind: 'vlan' | 'vxlan';
  id: number;
  /** guest device of a VLAN */
  dev?: string;
  vpcId?: string;
}

interface PoolFile {
  version: number;
  networks: Record<string, PoolEntry>;
}

export type PoolRange = NonNullable<GuestIsolation['range']>;

export interface Claim {
  segment: Segment;
  /** the pool file changed for this network (undo() puts `previous` back if the command then fails) */
  changed: boolean;
  previous?: PoolEntry;
}

const entryOf = (s: Segment, dev: string, vpcId: string | undefined): PoolEntry | undefined => {
  if (s.kind === 'untagged') return undefined;
  const e: PoolEntry = s.kind === 'vlan' ? { kind: 'vlan', id: s.id, dev } : { kind: 'vxlan', id: s.vni };
  if (vpcId !== undefined) e.vpcId = vpcId;
  return e;
};
const segmentOf = (e: PoolEntry): Segment => (e.kind === 'vlan' ? { kind: 'vlan', id: e.id } : { kind: 'vxlan', vni: e.id });
const sameSegment = (a: PoolEntry, b: PoolEntry): boolean => a.kind === b.kind && a.id === b.id && (a.kind === 'vxlan' || a.dev === b.dev);
const kindName = (k: PoolEntry['kind']): string => (k === 'vlan' ? 'VLAN id' : 'VXLAN VNI');
const RANGE_LABEL = 'physical-network-extension-details.guest.network.isolation.range';

export class SegmentPool {
  readonly file: string;
  readonly lockFile: string;

  /** `plan`: a plan's pool (plan.ts): locked and read as usual, its writes recorded instead of made. */
  constructor(readonly stateDir: string, private readonly plan?: PlanRecorder) {
    this.file = join(stateDir, 'segment-pool.json');
    this.lockFile = join(stateDir, 'lock-segment-pool');
  }

  /** The recorded allocations by network id (no lock: a snapshot). */
  read(): Record<string, PoolEntry> {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw SystemError.from(e, `reading ${this.file}`);
    }
    let doc: PoolFile;
    try {
      doc = JSON.parse(text) as PoolFile;
    } catch (e) {
      throw new StateError(this.file, 'not valid JSON', e);
    }
    if (typeof doc !== 'object' || doc === null || typeof doc.networks !== 'object' || doc.networks === null) {
      throw new StateError(this.file, 'not a segment pool');
    }
    if (doc.version !== FILE_VERSION) throw new StateError(this.file, `unknown version ${String(doc.version)}`);
    return doc.networks;
  }

  private write(networks: Record<string, PoolEntry>): void {
    const text = `${JSON.stringify({ version: FILE_VERSION, networks } satisfies PoolFile, null, 1)}\n`;
    if (this.plan) {
      let before = '';
      try { before = readFileSync(this.file, 'utf8'); } catch { /* none yet */ }
      this.plan.add({ kind: 'segment-pool', action: 'write', where: this.file, what: 'the segment pool', lines: diffLines(before, text) });
      return;
    }
    try {
      mkdirSync(this.stateDir, { recursive: true, mode: 0o750 });
    } catch (e) {
      throw SystemError.from(e, `creating state directory ${this.stateDir}`);
    }
    writeFileAtomic(this.file, text, { what: this.file });
  }

  private async locked<T>(lock: AcquireOptions, fn: () => T): Promise<T> {
    const release = await acquireFileLock(this.lockFile, 'the segment pool\'s lock', lock);
    try {
      return fn();
    } finally {
      release();
    }
  }

  /**
   * The segment of `networkId`: `given` (CloudStack's) when there is one — recorded as the network's when it
   * lies in the range, refused when another network holds it — else the network's recorded one, else the
   * lowest free value of the range. Exhaustion is a SystemError (exit 2): the request is valid, and the
   * same command succeeds once another network is destroyed.
   */
  async claim(
    req: { networkId: string; vpcId?: string; given?: Segment }, isolation: { kind: PoolEntry['kind']; range: PoolRange },
    dev: string, lock: AcquireOptions,
  ): Promise<Claim> {
    const { networkId, vpcId, given } = req;
    const inRange = (e: PoolEntry) => e.kind === isolation.kind && isolation.range.ranges.some(([a, b]) => e.id >= a && e.id <= b);
    if (given) {
      const want = entryOf(given, dev, vpcId);
      if (!want || !inRange(want)) return { segment: given, changed: false }; // CloudStack's own segment
    }
    return this.locked(lock, () => {
      const networks = this.read();
      const previous = networks[networkId];
      const holderOf = (e: PoolEntry) => Object.entries(networks).find(([id, x]) => id !== networkId && sameSegment(x, e))?.[0];
      let entry: PoolEntry;
      if (given) {
        entry = entryOf(given, dev, vpcId)!;
        const holder = holderOf(entry);
        if (holder !== undefined) {
          throw new UsageError(`vlan: ${segmentText(given)} is allocated to network ${holder} by this host's segment pool (${this.file}); destroy that network first`, 'vlan');
        }
        if (previous && sameSegment(previous, entry)) return { segment: given, changed: false };
      } else if (previous) {
        return { segment: segmentOf(previous), changed: false };
      } else {
        const taken = new Set(Object.values(networks).filter((x) => x.kind === isolation.kind && (x.kind === 'vxlan' || x.dev === dev)).map((x) => x.id));
        let free: number | undefined;
        for (const [a, b] of isolation.range.ranges) {
          for (let v = a; v <= b && free === undefined; v++) if (!taken.has(v)) free = v;
          if (free !== undefined) break;
        }
        if (free === undefined) {
          const holders = Object.keys(networks).filter((id) => inRange(networks[id]));
          throw new SystemError(
            `no free ${kindName(isolation.kind)} left in ${RANGE_LABEL} "${isolation.range.text}": all are allocated (networks ${holders.slice(0, 10).join(', ')}${holders.length > 10 ? ', …' : ''}); destroy a network or widen the range`,
          );
        }
        entry = isolation.kind === 'vlan' ? { kind: 'vlan', id: free, dev } : { kind: 'vxlan', id: free };
        if (vpcId !== undefined) entry.vpcId = vpcId;
      }
      networks[networkId] = entry;
      this.write(networks);
      return { segment: segmentOf(entry), changed: true, ...(previous ? { previous } : {}) };
    });
  }

  /** Puts back what `claim` found (the command that claimed failed). */
  async undo(networkId: string, claim: Claim, lock: AcquireOptions): Promise<void> {
    if (!claim.changed) return;
    await this.locked(lock, () => {
      const networks = this.read();
      if (claim.previous) networks[networkId] = claim.previous;
      else delete networks[networkId];
      this.write(networks);
    });
  }

  /** Gives back the segments of the networks `pick` selects (destroy). No pool file: nothing to do. */
  async release(pick: (id: string, e: PoolEntry) => boolean, lock: AcquireOptions): Promise<PoolEntry[]> {
    if (Object.keys(this.read()).length === 0) return [];
    return this.locked(lock, () => {
      const networks = this.read();
      const gone = Object.keys(networks).filter((id) => pick(id, networks[id]));
      if (gone.length === 0) return [];
      const entries = gone.map((id) => networks[id]);
      for (const id of gone) delete networks[id];
      this.write(networks);
      return entries;
    });
  }
}

/**
 * implement-network's stdout for CloudStack (NetworkExtensionElement.applyNetworkUpdateFromScriptOutput reads
 * the keys `network.broadcast_uri` and `network.broadcast_domain_type`, the type by enum name, any case).
 */
export function broadcastOutput(s: Segment): string {
  const uri = s.kind === 'untagged' ? 'vlan://untagged' : segmentText(s);
  const type = s.kind === 'vlan' ? 'Vlan' : s.kind === 'vxlan' ? 'Vxlan' : 'Native';
  return `${JSON.stringify({ status: 'success', 'network.broadcast_uri': uri, 'network.broadcast_domain_type': type })}\n`;
}

const lockOf = (ctx: CommandContext): AcquireOptions => ({ deadline: ctx.deadline, signal: ctx.signal });

/**
 * implement-network (`implement` makes the change). With `guest.network.isolation.range` set the segment is
 * the pool's (claimed first, put back if the implement fails) and the broadcast URI is printed for CloudStack — on every implement, since
 * CloudStack fails an extension-isolated network whose implement output lacks it.
 */
export async function implementNetworkCommand(
  req: ImplementNetworkRequest, ctx: CommandContext, implement: (req: ImplementNetworkRequest) => Promise<unknown>, plan?: PlanRecorder,
): Promise<CommandOutput> {
  const range = ctx.isolation?.range;
  if (!range) {
    await implement(req);
    return undefined;
  }
  const pool = new SegmentPool(ctx.settings.stateDir, plan);
  const claim = await pool.claim(
    { networkId: req.networkId, ...(req.vpcId !== undefined ? { vpcId: req.vpcId } : {}), ...(req.segment ? { given: req.segment } : {}) },
    { kind: ctx.isolation!.kind, range }, ctx.devices.guest, lockOf(ctx),
  );
  try {
    await implement({ ...req, segment: claim.segment });
  } catch (e) {
    // (after a time-out ctx's deadline has passed: the undo gets its own few seconds)
    try { await pool.undo(req.networkId, claim, { deadline: Date.now() + 5000 }); } catch { /* kept until destroy-network */ }
    throw e;
  }
  return { stdout: broadcastOutput(claim.segment) };
}

/** After destroy-network / destroy-vpc: the destroyed networks give their segments back. */
export async function releaseSegments(ctx: CommandContext, which: { networkId: string } | { vpcId: string }, plan?: PlanRecorder): Promise<void> {
  await new SegmentPool(ctx.settings.stateDir, plan).release(
    (id, e) => ('networkId' in which ? id === which.networkId : e.vpcId === which.vpcId), lockOf(ctx),
  );
}
