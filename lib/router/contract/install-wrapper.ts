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

/**
 * The shim (bash). With a resident engine running (`netns-router serve`) it hands the command line to the
 * engine's loopback port itself, so a command costs no node start-up (cli/shim-wire.ts has the wire format);
 * without one, or when the engine refuses (another installation, an upgrade in progress, a bad token), it
 * runs netns-router as before. Once the engine has accepted a command, a lost connection is exit 2, never
 * a second run.
 */
export function shimText(req: InstallWrapperRequest): string {
  const args = ['--extension', req.extension, ...req.extraArgs].map(shQuote).join(' ');
  return [
    '#!/bin/bash',
    SHIM_MARKER,
    `# CloudStack Network-Namespace extension "${req.extension}": runs netns-router instead of the bash wrapper.`,
    '# Regenerate with: netns-router install-wrapper --extension <name>',
    `nr_node=${shQuote(req.node)}`,
    `nr_script=${shQuote(req.script)}`,
    `set -- ${args} "$@"`,
    'nr_fallback=1',
    'nr_resident() {',
    '  local LC_ALL=C sock=${NETNS_ROUTER_ENGINE_SOCKET-/run/netns-router/engine.sock} port token pid start stat rest n line code olen elen out err',
    '  local -a names=() f=()',
    '  case $sock in ""|off) return;; esac',
    '  { read -r port token pid start < "${sock%/*}/engine.tcp"; } 2>/dev/null || return',
    '  case $port in ""|*[!0-9]*) return;; esac',
    '  case $pid in ""|*[!0-9]*) return;; esac',
    '  # only while the engine that wrote the file is alive (pid and start time): it then still holds the port',
    '  { read -r stat < "/proc/$pid/stat"; } 2>/dev/null || return',
    '  rest=${stat##*) }; f=($rest)',
    '  [ -n "$start" ] && [ "${f[19]}" = "$start" ] || return',
    '  { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return',
    '  for n in ${!NETNS_ROUTER_@} ${!CS_@}; do [ "$n" = NETNS_ROUTER_ENGINE_SOCKET ] || names+=("$n"); done',
    "  { printf '%s\\0' netns-router-shim-1 \"$token\" \"$nr_script\" \"$PWD\" \"$0\" \"$#\" \"$@\" \"${#names[@]}\"",
    "    for n in \"${names[@]}\"; do printf '%s=%s\\0' \"$n\" \"${!n}\"; done; } >&3 2>/dev/null || { exec 3>&-; return; }",
    '  IFS= read -r line <&3 && [ "$line" = ok ] || { exec 3>&-; return; }',
    '  nr_fallback=0',
    '  if ! IFS=" " read -r code olen elen <&3; then',
    '    exec 3>&-',
    '    echo "netns-router: the resident engine closed the connection while running the command; it may or may not have been applied: run it again" >&2',
    '    return 2',
    '  fi',
    '  out= err=',
    '  [ "$olen" -gt 0 ] && IFS= read -r -N "$olen" out <&3',
    '  [ "$elen" -gt 0 ] && IFS= read -r -N "$elen" err <&3',
    '  exec 3>&-',
    '  printf %s "$out"; printf %s "$err" >&2',
    '  return "$code"',
    '}',
    'nr_resident "$@"; nr_rc=$?',
    '[ "$nr_fallback" = 0 ] && exit "$nr_rc"',
    'exec "$nr_node" "$nr_script" "$@"',
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
