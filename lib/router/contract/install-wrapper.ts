/**
 * install-wrapper: puts /etc/cloudstack/extensions/<ext>/<ext>-wrapper.sh in place — where the
 * upstream proxy (network-namespace.sh) runs the KVM-host wrapper over SSH — as a small shell shim
 * that execs netns-router with --extension <ext>. Written atomically; an existing file not written
 * by us (the upstream bash wrapper) is only replaced with --force. Re-installing over our own shim keeps
 * the options baked into it that are not given again (unless `reset`), and reports what it kept and changed.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { SystemError, UsageError } from '../../util/errors.js';
import { writeFileAtomic } from '../../util/atomic-file.js';
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
    '  local LC_ALL=C sock=${NETNS_ROUTER_ENGINE_SOCKET-/run/netns-router/engine.sock} dir port token pid start stat rest n line code olen elen out err wait rc whole=1',
    '  local -a names=() f=()',
    '  case $sock in ""|off) return;; esac',
    '  dir=${sock%/*}',
    '  # only a port file of this user (root) in a directory of its own: never one another user put there',
    '  [ -O "$dir" ] && [ -O "$dir/engine.tcp" ] && [ ! -L "$dir/engine.tcp" ] || return',
    '  { read -r port token pid start < "$dir/engine.tcp"; } 2>/dev/null || return',
    '  case $port in ""|*[!0-9]*) return;; esac',
    '  case $pid in ""|*[!0-9]*) return;; esac',
    '  # only while the engine that wrote the file is alive (pid and start time): it then still holds the port',
    '  { read -r stat < "/proc/$pid/stat"; } 2>/dev/null || return',
    '  rest=${stat##*) }; f=($rest)',
    '  [ -n "$start" ] && [ "${f[19]}" = "$start" ] || return',
    '  { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return',
    '  for n in ${!NETNS_ROUTER_@} ${!CS_@}; do [ "$n" = NETNS_ROUTER_ENGINE_SOCKET ] || names+=("$n"); done',
    "  { printf '%s\\0' netns-router-shim-3 \"$token\" \"$nr_script\" \"$PWD\" \"$0\" \"$#\" \"$@\" \"${#names[@]}\"",
    "    for n in \"${names[@]}\"; do printf '%s=%s\\0' \"$n\" \"${!n}\"; done; } >&3 2>/dev/null || { exec 3>&-; return; }",
    '  # an engine that does not answer within 5 s (stopped, overloaded): run the command here; it never runs it then',
    '  IFS= read -r -t 5 line <&3 && [ "$line" = ok ] || { exec 3>&-; return; }',
    '  # the go: from here on the command is the engine\'s, never run here',
    "  printf 'go\\n' >&3 2>/dev/null || { exec 3>&-; return; }",
    '  nr_fallback=0',
    '  # "run SECONDS" once the engine has taken the command (what is left of its time limit), then the answer within',
    '  # that: an engine that does not keep to it (hung) is exit 2 after 10 s more, not a wait as long as CloudStack\'s',
    '  wait=30',
    '  IFS=" " read -r -t "$wait" code olen elen <&3; rc=$?',
    '  if [ "$rc" = 0 ] && [ "$code" = run ]; then',
    '    case $olen in ""|*[!0-9]*) olen=0;; esac',
    '    wait=$((olen + 10))',
    '    IFS=" " read -r -t "$wait" code olen elen <&3; rc=$?',
    '  fi',
    '  if [ "$rc" != 0 ]; then',
    '    exec 3>&-',
    '    if [ "$rc" -gt 128 ]; then',
    '      echo "netns-router: the resident engine did not answer within ${wait} s; the command may or may not have been applied: run it again" >&2',
    '    else',
    '      echo "netns-router: the resident engine closed the connection while running the command; it may or may not have been applied: run it again" >&2',
    '    fi',
    '    return 2',
    '  fi',
    '  case $code$olen$elen in ""|*[!0-9]*) exec 3>&-; echo "netns-router: the resident engine answered something else than an answer; the command may or may not have been applied: run it again" >&2; return 2;; esac',
    '  out= err=',
    '  [ "$olen" -gt 0 ] && { IFS= read -r -N "$olen" -t 10 out <&3 || whole=0; }',
    '  [ "$elen" -gt 0 ] && { IFS= read -r -N "$elen" -t 10 err <&3 || whole=0; }',
    '  exec 3>&-',
    '  printf %s "$out"; printf %s "$err" >&2',
    '  if [ "$whole" = 0 ]; then',
    '    echo "netns-router: the resident engine closed the connection before its whole answer; the command may or may not have been applied: run it again" >&2',
    '    return 2',
    '  fi',
    '  return "$code"',
    '}',
    '# (a write to an engine that closed the connection fails instead of killing the shim)',
    "trap '' PIPE",
    'nr_resident "$@"; nr_rc=$?',
    'trap - PIPE',
    '[ "$nr_fallback" = 0 ] && exit "$nr_rc"',
    'exec "$nr_node" "$nr_script" "$@"',
    '',
  ].join('\n');
}

export interface InstallResult {
  path: string;
  replaced: boolean;
}

/** What happened to the options baked into a shim that was there before. */
export interface BakedChanges {
  /** kept from the previous shim (not given again) */
  kept: { option: string; value: string }[];
  /** given again with another value */
  changed: { option: string; previous: string; value: string }[];
  /** in the previous shim, dropped by `reset` */
  dropped: { option: string; value: string }[];
}

/** The words of a line of shQuote'd words (what the shims are written with); undefined if it is not one. */
export function unquoteWords(text: string): string[] | undefined {
  const word = /'[^']*'(?:\\''[^']*')*/y;
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    if (text[i] === ' ') { i++; continue; }
    word.lastIndex = i;
    const m = word.exec(text);
    if (!m) return undefined;
    out.push(m[0].slice(1, -1).replace(/'\\''/g, "'"));
    i = word.lastIndex;
  }
  return out;
}

/** `--flag value` pairs of a baked argument list (every baked option takes a value). */
function pairs(args: readonly string[]): [string, string][] | undefined {
  if (args.length % 2 !== 0) return undefined;
  const out: [string, string][] = [];
  for (let i = 0; i < args.length; i += 2) {
    if (!args[i].startsWith('--')) return undefined;
    out.push([args[i], args[i + 1]]);
  }
  return out;
}

/**
 * The options to bake into a re-installed shim: those given now, plus those of the previous shim (`previous`,
 * undefined when there was none) that are not given again — unless `reset`.
 */
export function mergeBakedOptions(previous: readonly string[] | undefined, given: readonly string[], reset: boolean): { args: string[]; changes: BakedChanges } {
  const changes: BakedChanges = { kept: [], changed: [], dropped: [] };
  const now = pairs(given) ?? [];
  const before = previous ? pairs(previous) ?? [] : [];
  const args = [...given];
  for (const [option, value] of before) {
    const again = now.find(([o]) => o === option);
    if (again) {
      if (again[1] !== value) changes.changed.push({ option, previous: value, value: again[1] });
    } else if (reset) {
      changes.dropped.push({ option, value });
    } else {
      changes.kept.push({ option, value });
      args.push(option, value);
    }
  }
  return { args, changes };
}

/** Reads a shim file: its text, or undefined when there is none. */
export function readShim(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw SystemError.from(e, `reading ${path}`);
  }
}

/**
 * The options baked into our own shim at `path` (the words after `prefix` on its line starting with `lead`), or
 * undefined if there is no shim of ours there. A shim of ours that cannot be read (edited by hand) is refused:
 * silently dropping its options is what re-installing must never do — unless `reset` says to drop them anyway.
 */
export function bakedOptionsOf(
  path: string, marker: string, lead: string, prefix: readonly (string | undefined)[], reset = false,
): string[] | undefined {
  const text = readShim(path);
  if (text === undefined || !text.includes(marker)) return undefined;
  const line = text.split('\n').find((l) => l.startsWith(lead));
  const words = line === undefined ? undefined : unquoteWords(line.slice(lead.length).replace(/ "\$@"$/, ''));
  const rest = words?.slice(prefix.length);
  // (undefined in `prefix`: any word, e.g. the node binary)
  if (!words || words.length < prefix.length || prefix.some((p, i) => p !== undefined && words[i] !== p) || !rest || !pairs(rest)) {
    if (reset) return undefined;
    throw new UsageError(`cannot read the options baked into ${path} (edited by hand?); run again with --reset and every option it should have`, '--reset');
  }
  return rest;
}

const SET_LEAD = 'set -- ';

/** Installs the shim; `bakedArgs` are the options it now carries (given and kept). */
export function installWrapper(req: InstallWrapperRequest): InstallResult & { changes: BakedChanges; bakedArgs: string[] } {
  const path = wrapperPathFor(req.extension, req.root);
  const previous = bakedOptionsOf(path, SHIM_MARKER, SET_LEAD, ['--extension', req.extension], req.reset);
  const { args, changes } = mergeBakedOptions(previous, req.extraArgs, req.reset === true);
  const r = installShimFile(path, shimText({ ...req, extraArgs: args }), SHIM_MARKER, req.force, 'the upstream wrapper?');
  return { ...r, changes, bakedArgs: args };
}

/** Lines telling what a re-install did with the previous shim's options (none when nothing was baked in). */
export function describeBakedChanges(c: BakedChanges): string[] {
  return [
    ...c.kept.map((k) => `  kept     ${k.option} ${shQuote(k.value)} (from the previous shim; --reset drops what is not given again)`),
    ...c.changed.map((k) => `  changed  ${k.option} ${shQuote(k.previous)} -> ${shQuote(k.value)}`),
    ...c.dropped.map((k) => `  dropped  ${k.option} ${shQuote(k.value)} (--reset)`),
  ];
}

/**
 * Write an executable shim atomically (temp file, fsync, rename). A file that does not carry `marker` was
 * not written by netns-router and is replaced only with `force` (`foreignHint` names what it probably is).
 */
export function installShimFile(path: string, text: string, marker: string, force: boolean, foreignHint: string): InstallResult {
  const existing = readShim(path);
  if (existing !== undefined && !existing.includes(marker) && !force) {
    throw new UsageError(`${path} exists and was not installed by netns-router (${foreignHint}); use --force to replace it`, '--force');
  }
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  } catch (e) {
    throw SystemError.from(e, `installing ${path}`);
  }
  writeFileAtomic(path, text, { what: path, mode: 0o755 });
  return { path, replaced: existing !== undefined };
}
