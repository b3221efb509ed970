/**
 * Plan before apply: a command run as a plan (`--dry-run` on the CLI, `plan: true` in the library) goes through
 * exactly the code of the real command — parse, lock, load, mutate, reconcile — with two differences: the
 * engine's kernel is an overlay of the real one (FakeKernel.overlay: reads the machine's namespaces, links,
 * addresses, routes, sysctls and nft tables; applies every change in memory and records it), and nothing is
 * written (no state file, no runtime file, no daemon started, reloaded or stopped: the modules describe those
 * changes, RouterModule.plan). The plan is what was recorded, in order: a readable text and JSON.
 *
 * A plan fails where the command would fail, the same way (the same error, so the same exit code and message):
 * bad input before anything, a refused name or foreign link in plumbing, an nft transaction the kernel's rules
 * refuse (the nft fake enforces them). Not in a plan: packets (gratuitous ARPs) and what can only be known by
 * doing it (a daemon that fails to start, conntrack entries that exist when the command runs).
 */
import type { JsonCommand } from '../nft/json.js';
import type { RouterModule } from './router-module.js';
import type { FakeKernel } from './fake-kernel.js';

/** One change of a plan. */
export interface PlanStep {
  /** What is changed. */
  kind: 'netns' | 'link' | 'address' | 'route' | 'rule' | 'sysctl' | 'nft' | 'conntrack' | 'service' | 'file' | 'state' | 'segment-pool';
  /** create, delete, change, add, replace, set, transaction, start, reload, restart, stop, write, save, … */
  action: string;
  /** Where: "host" (host-side namespace), a router namespace's name, or a path. */
  where: string;
  /** One line saying what. */
  what: string;
  /** Machine-readable details (the link spec, the nft commands, the route, …). */
  detail?: unknown;
  /** Lines shown under the step in the text form (the nft commands; a configuration's diff). */
  lines?: string[];
}

/** A plan: the command, and what it would change. */
export interface Plan {
  command: string;
  /** The changes, in the order the command would make them; empty: the command changes nothing. */
  changes: PlanStep[];
}

/** Collects a plan: the kernel overlay's changes and what the engine and the modules add, in one order. */
export class PlanRecorder {
  constructor(readonly kernel: FakeKernel) {}

  get steps(): PlanStep[] {
    return this.kernel.changes;
  }

  add(...steps: PlanStep[]): void {
    this.kernel.changes.push(...steps);
  }

  /** The router's stored state: created, saved (changed), deleted or unchanged (nothing recorded). */
  state(ns: string, action: 'create' | 'save' | 'delete' | 'unchanged', before: string | undefined, after: string): void {
    if (action === 'unchanged') return;
    // the state file is one line of JSON: diffed as indented JSON, so that the lines say which fields change
    const readable = (text: string | undefined): string => (text === undefined ? '' : JSON.stringify(JSON.parse(text), null, 1));
    const lines = action === 'delete' ? [] : diffLines(readable(before), readable(after));
    this.add({ kind: 'state', action, where: ns, what: `the stored state of router ${ns}`, ...(lines.length ? { lines } : {}) });
  }

  /**
   * A module's part: the steps it described (RouterModule.plan), or — for a module that has a reconcile but no
   * plan and keeps state in this router — a step saying so.
   */
  module(ns: string, mod: RouterModule, steps: PlanStep[] | undefined, acts: boolean, phase: 'reconcile' | 'teardown' = 'reconcile'): void {
    if (steps) this.add(...steps);
    else if (acts) {
      this.add({ kind: 'service', action: phase, where: ns, what: `module ${mod.name} (its changes are not described by plans yet)` });
    }
  }
}

/** `git diff`-like lines from one text to another (only changed lines and their neighbours, marked - / +). */
export function diffLines(before: string, after: string, context = 1): string[] {
  const a = before === '' ? [] : before.replace(/\n$/, '').split('\n');
  const b = after === '' ? [] : after.replace(/\n$/, '').split('\n');
  // longest common subsequence on lines (configurations are small; state files are diffed by line too)
  const n = a.length;
  const m = b.length;
  if (n * m > 4_000_000) return [`- (${n} lines)`, `+ (${m} lines)`];
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const ops: Array<[' ' | '-' | '+', string]> = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    // (a removed line before the line that replaces it)
    if (i < n && j < m && a[i] === b[j]) { ops.push([' ', a[i]]); i++; j++; } else if (i < n && (j >= m || lcs[i + 1][j] >= lcs[i][j + 1])) { ops.push(['-', a[i]]); i++; } else { ops.push(['+', b[j]]); j++; }
  }
  const keep = ops.map((o, k) => o[0] !== ' ' || ops.slice(Math.max(0, k - context), k + context + 1).some((x) => x[0] !== ' '));
  const out: string[] = [];
  ops.forEach((o, k) => {
    if (keep[k]) out.push(`${o[0]} ${o[1]}`);
    else if (k > 0 && keep[k - 1]) out.push('  …');
  });
  return out;
}

/** One nft command of a transaction as a line: verb, object, table, name, then the rest as JSON. */
export function nftCommandText(cmd: JsonCommand): string {
  const [verb, obj] = Object.entries(cmd as unknown as Record<string, Record<string, Record<string, unknown>>>)[0];
  const [kind, body] = Object.entries(obj)[0];
  const { family, table, name, chain, ...rest } = body as Record<string, unknown>;
  const head = [verb, kind, family, kind === 'table' ? name : table, kind === 'rule' ? chain : kind === 'table' ? undefined : name ?? chain]
    .filter((x) => x !== undefined).join(' ');
  if (kind === 'rule') delete rest.chain;
  return Object.keys(rest).length ? `${head} ${JSON.stringify(rest)}` : head;
}

/** The plan as text: one line per change, its details indented below it. */
export function planText(p: Plan): string {
  if (!p.changes.length) return `plan of ${p.command}: no changes\n`;
  const out = [`plan of ${p.command}: ${p.changes.length} change${p.changes.length === 1 ? '' : 's'} (nothing was changed)`];
  for (const s of p.changes) {
    out.push(`${s.where}: ${s.action} ${s.kind === 'state' || s.kind === 'service' || s.kind === 'nft' || s.kind === 'file' ? '' : `${s.kind} `}${s.what}`);
    for (const l of s.lines ?? []) out.push(`    ${l}`);
  }
  return `${out.join('\n')}\n`;
}

/** The plan as JSON (one document). */
export function planJson(p: Plan): string {
  return `${JSON.stringify({ plan: p.command, changes: p.changes })}\n`;
}
