/**
 * What the router tables hold, as proven by our last commit: for a router, the model text (its hash) the
 * tables were compiled from and the stamp fingerprint that commit left (lib/nft/table-sync.ts). A command that
 * changes nothing (its model is the stored one, e.g. the same 10,000 firewall rules sent again) then needs no
 * compile: confirming the stamp — which fails if anything committed nftables in the namespace since — proves the
 * tables hold exactly that. A cache, not state: a missing, stale or unreadable proof only means the command
 * compiles. Keyed with this build's identity too, so an upgrade (other rules for the same model) compiles.
 */
import { createHash } from 'node:crypto';
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { routerRunDir } from '../router-module.js';
import { buildId } from './build-id.js';

/** In the router's run directory: gone with the router (engine `committed`). */
const proofPath = (stateDir: string, ns: string): string => join(routerRunDir(stateDir, ns), 'table-proof.json');
/** The last text hashed and its hash: a command asks for its model's proof, then records it (~2 ms per MB). */
let lastHash: { text: string; hash: string } | undefined;
function modelHash(modelText: string): string {
  if (lastHash?.text === modelText) return lastHash.hash;
  const hash = createHash('sha256').update(buildId()).update('\0').update(modelText).digest('base64');
  lastHash = { text: modelText, hash };
  return hash;
}

/**
 * What our last commit left for a model: the stamp's fingerprint and, when it was recorded, the stamp's generation
 * and the identity of the namespace it was read in (`netnsIdentity`). Current generation equal to it (in the same
 * namespace): nothing committed nftables there since, so the tables are exactly what that commit left.
 */
export interface TableProof {
  fingerprint: number;
  generation?: number;
  netns?: string;
}

/** The proof our last commit recorded for this exact model text, if any. */
export function provenStamp(stateDir: string, ns: string, modelText: string): TableProof | undefined {
  try {
    const p = JSON.parse(readFileSync(proofPath(stateDir, ns), 'utf8')) as { model?: unknown; fingerprint?: unknown; generation?: unknown; netns?: unknown };
    if (p.model !== modelHash(modelText) || typeof p.fingerprint !== 'number') return undefined;
    return {
      fingerprint: p.fingerprint,
      ...(typeof p.generation === 'number' && typeof p.netns === 'string' ? { generation: p.generation, netns: p.netns } : {}),
    };
  } catch {
    return undefined;
  }
}

/** The stamp fingerprint our last commit left for this exact model text, if recorded. */
export function provenFingerprint(stateDir: string, ns: string, modelText: string): number | undefined {
  return provenStamp(stateDir, ns, modelText)?.fingerprint;
}

/**
 * Record (best effort) that the tables hold `modelText`'s compile, stamped `fingerprint`. Overwritten in place:
 * neither renamed over nor truncated to zero first, which makes ext4 flush the file at once (~1 ms per command
 * on a busy disk). One small write can only be torn by a crash, and after one the namespace and its stamp are
 * gone, so no proof can be confirmed.
 */
export function recordProof(stateDir: string, ns: string, modelText: string, fingerprint: number, at?: { generation: number; netns: string }): void {
  let fd: number | undefined;
  try {
    mkdirSync(routerRunDir(stateDir, ns), { recursive: true, mode: 0o700 });
    const text = Buffer.from(JSON.stringify({ model: modelHash(modelText), fingerprint, ...at }));
    try {
      fd = openSync(proofPath(stateDir, ns), 'r+');
    } catch {
      fd = openSync(proofPath(stateDir, ns), 'w', 0o600);
    }
    writeSync(fd, text, 0, text.length, 0);
    ftruncateSync(fd, text.length);
  } catch {
    /* a cache */
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
