/**
 * install-wrapper: puts /etc/cloudstack/extensions/<ext>/<ext>-wrapper.sh in place — where the
 * upstream proxy (network-namespace.sh) runs the KVM-host wrapper over SSH — as a small shell shim
 * that execs netns-router with --extension <ext>. Written atomically; an existing file not written
 * by us (the upstream bash wrapper) is only replaced with --force.
 */
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { SystemError, UsageError } from '../errors.js';
import { wrapperPathFor } from './parse.js';
import type { InstallWrapperRequest } from './types.js';

export const SHIM_MARKER = '# netns-router wrapper shim';

/** POSIX shell single-quoting. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function shimText(req: InstallWrapperRequest): string {
  const args = [req.node, req.script, '--extension', req.extension, ...req.extraArgs].map(shQuote).join(' ');
  return [
    '#!/bin/sh',
    SHIM_MARKER,
    `# CloudStack Network-Namespace extension "${req.extension}": runs netns-router instead of the bash wrapper.`,
    '# Regenerate with: netns-router install-wrapper --extension <name>',
    `exec ${args} "$@"`,
    '',
  ].join('\n');
}

export interface InstallResult {
  path: string;
  replaced: boolean;
}

export function installWrapper(req: InstallWrapperRequest): InstallResult {
  return installShimFile(wrapperPathFor(req.extension, req.root), shimText(req), SHIM_MARKER, req.force, 'the upstream wrapper?');
}

/**
 * Write an executable shim atomically (temp file, fsync, rename). A file that does not carry `marker` was
 * not written by netns-router and is replaced only with `force` (`foreignHint` names what it probably is).
 */
export function installShimFile(path: string, text: string, marker: string, force: boolean, foreignHint: string): InstallResult {
  let existing: string | undefined;
  try {
    existing = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw SystemError.from(e, `reading ${path}`);
  }
  if (existing !== undefined && !existing.includes(marker) && !force) {
    throw new UsageError(`${path} exists and was not installed by netns-router (${foreignHint}); use --force to replace it`, '--force');
  }
  const temp = `${path}.tmp-${process.pid}`;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    const fd = openSync(temp, 'w', 0o755);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(temp, 0o755);
    renameSync(temp, path);
  } catch (e) {
    try { unlinkSync(temp); } catch { /* not created */ }
    throw SystemError.from(e, `installing ${path}`);
  }
  return { path, replaced: existing !== undefined };
}
