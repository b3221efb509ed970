/**
 * What the router tables hold, as proven by our last commit: for a router, the model text (its hash) the
 * tables were compiled from and the stamp fingerprint that commit left (lib/nft/table-sync.ts). A command that
 * changes nothing (its model is the stored one, e.g. the same 10,000 firewall rules sent again) then needs no
 * compile: confirming the stamp — which fails if anything committed nftables in the namespace since — proves the
 * tables hold exactly that. A cache, not state: a missing, stale or unreadable proof only means the command
 * compiles. Keyed with this build's identity too, so an upgrade (other rules for the same model) compiles.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { routerRunDir } from '../router-module.js';

let build: string | undefined;
function buildId(): string {
  if (build === undefined) {
    try {
      const st = statSync(fileURLToPath(import.meta.url));
      build = `${st.ino}:${st.size}:${Math.floor(st.mtimeMs)}`;
    } catch {
      build = 'unknown';
    }
  }
  return build;
}

/** In the router's run directory: gone with the router (engine `committed`). */
const proofPath = (stateDir: string, ns: string): string => join(routerRunDir(stateDir, ns), 'table-proof.json');
const modelHash = (modelText: string): string => createHash('sha256').update(buildId()).update('\0').update(modelText).digest('base64');

/** The stamp fingerprint our last commit left for this exact model text, if recorded. */
export function provenFingerprint(stateDir: string, ns: string, modelText: string): number | undefined {
  try {
    const p = JSON.parse(readFileSync(proofPath(stateDir, ns), 'utf8')) as { model?: unknown; fingerprint?: unknown };
    return p.model === modelHash(modelText) && typeof p.fingerprint === 'number' ? p.fingerprint : undefined;
  } catch {
    return undefined;
  }
}

/** Record (best effort) that the tables hold `modelText`'s compile, stamped `fingerprint`. */
export function recordProof(stateDir: string, ns: string, modelText: string, fingerprint: number): void {
  const path = proofPath(stateDir, ns);
  try {
    mkdirSync(routerRunDir(stateDir, ns), { recursive: true, mode: 0o700 });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ model: modelHash(modelText), fingerprint }), { mode: 0o600 });
    renameSync(tmp, path);
  } catch {
    /* a cache */
  }
}
