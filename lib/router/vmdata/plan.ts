/**
 * What the VM-data module's reconcile would change, for a plan (RouterModule.plan; lib/router/plan.ts): the VMs
 * whose served data change (by file name: never a content, a password, user data or a key), the NICs recorded or
 * released, and what the metadata daemon is told (register, sync or unregister the router; started first when it
 * is not running). Pure on the models and the listen specification: module.ts adds what it reads from disk.
 */
import { isIpv4 } from '../../util/ip.js';
import { compareText } from '../../util/compare.js';
import type { LinkLocalSpec, ListenSpec } from '../../services/metadata/layout.js';
import type { RouterModel } from '../model.js';
import type { PlanStep } from '../plan.js';
import { PASSWORD_PREFIX } from '../../services/metadata/layout.js';
import { recordedMac, vmdataState, type VmRecord } from './state.js';

/** A VM's served view as file names → blob ids (what a change to it is measured by), with its MAC. */
interface Served { tier: string; files: Record<string, string>; mac: string | undefined }

function servedVms(m: RouterModel | undefined): Map<string, Served> {
  const out = new Map<string, Served>();
  if (!m) return out;
  for (const [ip, r] of Object.entries(vmdataState(m).vms)) {
    if (!isIpv4(ip) || !m.tiers[r.tier]) continue; // not served (its tier is gone)
    out.set(ip, { tier: r.tier, files: filesOf(r), mac: recordedMac(m, ip, r) });
  }
  return out;
}

const filesOf = (r: VmRecord): Record<string, string> => ({
  ...r.files, ...(r.password ? { [`${PASSWORD_PREFIX}${r.password.serial}`]: r.password.blob } : {}),
});

const names = (xs: string[]): string => xs.sort(compareText).join(', ');

/** The VMs whose served data change (file names only), one step each, in address order. */
export function vmSteps(previous: RouterModel | undefined, m: RouterModel, dirOf: (ip: string) => string): PlanStep[] {
  const before = servedVms(previous);
  const after = servedVms(m);
  const steps: PlanStep[] = [];
  for (const ip of [...new Set([...before.keys(), ...after.keys()])].sort(compareText)) {
    const a = before.get(ip);
    const b = after.get(ip);
    const where = dirOf(ip);
    if (!b) {
      steps.push({ kind: 'file', action: 'delete', where, what: `the VM data served to ${ip} (tier ${a!.tier}): ${names(Object.keys(a!.files))}` });
      continue;
    }
    if (!a) {
      const macText = b.mac ? `, to MAC ${b.mac} only` : ', by address: no MAC known';
      steps.push({ kind: 'file', action: 'write', where, what: `the VM data served to ${ip} (tier ${b.tier}${macText}): ${names(Object.keys(b.files))}` });
      continue;
    }
    const parts: string[] = [];
    const added = Object.keys(b.files).filter((f) => !(f in a.files));
    const changed = Object.keys(b.files).filter((f) => f in a.files && a.files[f] !== b.files[f]);
    const removed = Object.keys(a.files).filter((f) => !(f in b.files));
    if (added.length) parts.push(`adds ${names(added)}`);
    if (changed.length) parts.push(`changes ${names(changed)}`);
    if (removed.length) parts.push(`removes ${names(removed)}`);
    if (a.mac !== b.mac) parts.push(b.mac ? `served to MAC ${b.mac} only${a.mac ? ` (was ${a.mac})` : ''}` : `served by address (MAC ${a.mac} forgotten)`);
    if (a.tier !== b.tier) parts.push(`moves to tier ${b.tier}`);
    if (parts.length) steps.push({ kind: 'file', action: 'change', where, what: `the VM data served to ${ip}: ${parts.join('; ')}` });
  }
  return steps;
}

/** The NICs recorded (prepare-nic, restore-network) or released. */
export function nicSteps(previous: RouterModel | undefined, m: RouterModel): PlanStep[] {
  const before = (previous && vmdataState(previous).nics) ?? {};
  const after = vmdataState(m).nics ?? {};
  const steps: PlanStep[] = [];
  for (const ip of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort(compareText)) {
    const a = before[ip];
    const b = after[ip];
    if (JSON.stringify(a) === JSON.stringify(b)) continue;
    const what = b ? `NIC ${b.mac} at ${ip} (tier ${b.tier}${b.defaultNic ? ', default' : ''}) for the metadata service${a && a.mac !== b.mac ? ` (was ${a.mac})` : ''}`
      : `NIC ${a!.mac} at ${ip} (tier ${a!.tier}) from the metadata service`;
    steps.push({ kind: 'service', action: b ? 'record' : 'release', where: m.namespace, what });
  }
  return steps;
}

const linkText = (l: LinkLocalSpec[] | undefined): string[] => (l ?? []).map((x) => `[fe80::a9fe:a9fe%${x.ifname}]:80`);
const socketsOf = (spec: ListenSpec | undefined): string[] => [...(spec?.addresses ?? []).flatMap((a) => [`${a}:80`, `${a}:8080`]), ...linkText(spec?.linkLocal)];

/**
 * What the metadata daemon is told: `before` is the listen specification it serves from now, `after` the one the
 * command leaves (undefined: none); `running`: whether the daemon runs.
 */
export function daemonSteps(ns: string, before: ListenSpec | undefined, after: ListenSpec | undefined, running: boolean): PlanStep[] {
  const had = (before?.addresses.length ?? 0) > 0;
  const has = (after?.addresses.length ?? 0) > 0;
  if (!has) {
    return had && running ? [{ kind: 'service', action: 'unregister', where: ns, what: `router ${ns} from the metadata daemon (its sockets and connections there close)` }] : [];
  }
  const steps: PlanStep[] = [];
  if (!running) steps.push({ kind: 'service', action: 'start', where: ns, what: 'the metadata daemon (one for the host)' });
  const want = socketsOf(after);
  const was = socketsOf(before);
  const detail = { addresses: after!.addresses, linkLocal: (after!.linkLocal ?? []).map((l) => l.ifname) };
  if (!had || !running) {
    steps.push({ kind: 'service', action: 'register', where: ns, what: `router ${ns} with the metadata daemon, served on ${want.join(' ')}`, detail });
  } else if (JSON.stringify(before) !== JSON.stringify(after)) {
    const add = want.filter((x) => !was.includes(x));
    const drop = was.filter((x) => !want.includes(x));
    const macs = JSON.stringify(before?.linkLocal ?? []) !== JSON.stringify(after?.linkLocal ?? []) && !add.length && !drop.length;
    const what = [add.length ? `opens ${add.join(' ')}` : '', drop.length ? `closes ${drop.join(' ')}` : '', macs ? 'takes the link-local MACs anew' : ''].filter(Boolean).join('; ');
    steps.push({ kind: 'service', action: 'sync', where: ns, what: `router ${ns} with the metadata daemon: it ${what}`, detail });
  }
  return steps;
}
