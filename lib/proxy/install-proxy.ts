/**
 * install-proxy: puts the management-server entry of the extension in place —
 * /usr/share/cloudstack-management/extensions/<ext>/<ext>.sh, which CloudStack runs as
 * `<ext>.sh <command> <payload-file> <timeout>` — as a shell shim that execs
 * `netns-router proxy --extension <ext> [baked options] "$@"`. Written atomically; an existing file
 * not written by us (the upstream network-namespace.sh) is only replaced with --force.
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { installShimFile, shQuote } from '../router/contract/install-wrapper.js';
import { ENV } from '../router/contract/parse.js';
import { LOG_LEVELS } from '../router/contract/types.js';
import { BadValue, parseExtensionName } from '../router/contract/values.js';
import { UsageError } from '../router/errors.js';

export const PROXY_SHIM_MARKER = '# netns-router proxy shim';

export const proxyPathFor = (ext: string, root = '/') => resolve(root, `usr/share/cloudstack-management/extensions/${ext}/${ext}.sh`);

export interface InstallProxyRequest {
  extension: string;
  root: string;
  node: string;
  script: string;
  /** baked proxy options (`--known-hosts F`, …) */
  extraArgs: string[];
  force: boolean;
}

const BAKED = ['known-hosts', 'remote-wrapper', 'connect-timeout', 'log-file', 'log-level', 'state-dir', 'host-netns'];

export const INSTALL_PROXY_USAGE = `Usage: netns-router install-proxy --extension NAME [--root DIR] [--node PATH] [--script PATH] [--force]
         [--known-hosts FILE] [--remote-wrapper PATH] [--connect-timeout S] [--log-file FILE] [--log-level L]
         [--state-dir DIR] [--host-netns NAME]
Writes /usr/share/cloudstack-management/extensions/NAME/NAME.sh (under --root or ${ENV.installRoot}),
which runs 'netns-router proxy --extension NAME' with the given options baked in.
`;

/** Parses `install-proxy` options (argv without the leading `install-proxy`). */
export function parseInstallProxy(
  argv: readonly string[], env: Record<string, string | undefined>, invokedAs?: string, nodePath?: string,
): InstallProxyRequest | { help: string } {
  const opts = new Map<string, string>();
  let force = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') return { help: INSTALL_PROXY_USAGE };
    if (a === '--force') { force = true; continue; }
    if (!a.startsWith('--')) throw new UsageError(`install-proxy: unexpected argument '${a}'`, a);
    const eq = a.indexOf('=');
    const name = eq > 2 ? a.slice(2, eq) : a.slice(2);
    if (!['extension', 'root', 'node', 'script', ...BAKED].includes(name)) throw new UsageError(`install-proxy: unknown option '--${name}'`, `--${name}`);
    let value: string;
    if (eq > 2) value = a.slice(eq + 1);
    else {
      if (i + 1 >= argv.length) throw new UsageError(`option '--${name} <value>' argument missing`, `--${name}`);
      value = argv[++i];
    }
    opts.set(name, value);
  }
  const extText = opts.get('extension');
  if (extText === undefined) throw new UsageError('install-proxy: --extension is required', '--extension');
  let extension: string;
  try {
    extension = parseExtensionName(extText);
  } catch (e) {
    if (e instanceof BadValue) throw new UsageError(`--extension: ${e.message}`, '--extension');
    throw e;
  }
  const level = opts.get('log-level');
  if (level !== undefined && !(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new UsageError(`--log-level: ${JSON.stringify(level)} is not a log level (${LOG_LEVELS.join(', ')})`, '--log-level');
  }
  const scriptOpt = opts.get('script') ?? invokedAs;
  if (!scriptOpt) throw new UsageError('--script is required (cannot tell where netns-router is installed)', '--script');
  let script: string;
  try {
    script = realpathSync(resolve(scriptOpt));
  } catch {
    throw new UsageError(`--script: ${JSON.stringify(scriptOpt)} does not exist`, '--script');
  }
  const extraArgs: string[] = [];
  for (const name of BAKED) {
    const v = opts.get(name);
    if (v === undefined) continue;
    extraArgs.push(`--${name}`, ['known-hosts', 'log-file', 'state-dir'].includes(name) ? resolve(v) : v);
  }
  return {
    extension,
    root: resolve(opts.get('root') ?? (env[ENV.installRoot] || '/')),
    node: opts.has('node') ? resolve(opts.get('node')!) : nodePath ?? process.execPath,
    script,
    extraArgs,
    force,
  };
}

export function proxyShimText(req: InstallProxyRequest): string {
  const args = [req.node, req.script, 'proxy', '--extension', req.extension, ...req.extraArgs].map(shQuote).join(' ');
  return [
    '#!/bin/sh',
    PROXY_SHIM_MARKER,
    `# CloudStack Network-Namespace extension "${req.extension}" (management server): netns-router's SSH proxy`,
    '# instead of network-namespace.sh. Regenerate with: netns-router install-proxy --extension <name>',
    `exec ${args} "$@"`,
    '',
  ].join('\n');
}

export function installProxy(req: InstallProxyRequest): { path: string; replaced: boolean } {
  return installShimFile(proxyPathFor(req.extension, req.root), proxyShimText(req), PROXY_SHIM_MARKER, req.force, 'the upstream proxy?');
}
