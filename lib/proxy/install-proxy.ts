/**
 * install-proxy: puts the management-server entry of the extension in place —
 * /usr/share/cloudstack-management/extensions/<ext>/<ext>.sh, which CloudStack runs as
 * `<ext>.sh <command> <payload-file> <timeout>` — as a shell shim that execs
 * `netns-router proxy --extension <ext> [baked options] "$@"`. Written atomically; an existing file
 * not written by us (the upstream network-namespace.sh) is only replaced with --force.
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { bakedOptionsOf, installShimFile, mergeBakedOptions, shQuote, type BakedChanges } from '../router/contract/install-wrapper.js';
import { didYouMean, type HelpDoc } from '../router/contract/help.js';
import { ENV } from '../router/contract/parse.js';
import { LOG_LEVELS } from '../router/contract/types.js';
import { BadValue, parseExtensionName } from '../router/contract/values.js';
import { UsageError } from '../util/errors.js';

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
  /** forget the options baked into an existing shim (by default those not given again are kept) */
  reset?: boolean;
}

/** Options of install-proxy; `baked` ones are written into the shim as options of `netns-router proxy`. */
const OPTIONS: readonly { name: string; value?: string; help: string; baked?: true }[] = [
  { name: 'extension', value: '<name>', help: 'extension name (required): the file is .../extensions/<name>/<name>.sh' },
  { name: 'root', value: '<dir>', help: `install under this root instead of / (env ${ENV.installRoot})` },
  { name: 'node', value: '<path>', help: 'node binary the shim runs (default: this node)' },
  { name: 'script', value: '<path>', help: 'netns-router entry script the shim runs (default: this one)' },
  { name: 'force', help: 'overwrite an existing file that was not installed by netns-router (the upstream network-namespace.sh)' },
  { name: 'reset', help: 'forget the options baked into an existing shim (by default they are kept unless given again)' },
  { name: 'known-hosts', value: '<file>', help: 'baked in: the proxy\'s known_hosts file', baked: true },
  { name: 'remote-wrapper', value: '<path>', help: 'baked in: the wrapper on the hosts', baked: true },
  { name: 'connect-timeout', value: '<seconds>', help: 'baked in: SSH connect timeout', baked: true },
  { name: 'log-file', value: '<file>', help: 'baked in: the proxy\'s log', baked: true },
  { name: 'log-level', value: '<level>', help: 'baked in: its level', baked: true },
  { name: 'state-dir', value: '<dir>', help: 'baked in: passed on to the remote wrapper', baked: true },
  { name: 'host-netns', value: '<name>', help: 'baked in: passed on to the remote wrapper', baked: true },
];
const BAKED = OPTIONS.filter((o) => o.baked).map((o) => o.name);

/** `netns-router install-proxy --help` and `netns-router help install-proxy`. */
export function installProxyHelp(): HelpDoc {
  return {
    usage: ['netns-router install-proxy --extension <name> [options]'],
    description: [
      'Writes /usr/share/cloudstack-management/extensions/<name>/<name>.sh, the entry CloudStack\'s management server runs '
        + 'for the extension, as a shell shim that runs \'netns-router proxy --extension <name>\' with the options marked '
        + '"baked in" written into it.',
    ],
    sections: [{
      title: 'Options',
      items: [...OPTIONS.map((o) => ({ term: o.value ? `--${o.name} ${o.value}` : `--${o.name}`, text: o.help })), { term: '-h, --help', text: 'show this help' }],
    }],
  };
}

/** Parses `install-proxy` options (argv without the leading `install-proxy`). */
export function parseInstallProxy(
  argv: readonly string[], env: Record<string, string | undefined>, invokedAs?: string, nodePath?: string,
): InstallProxyRequest | { help: HelpDoc } {
  const opts = new Map<string, string>();
  let force = false;
  let reset = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') return { help: installProxyHelp() };
    if (a === '--force') { force = true; continue; }
    if (a === '--reset') { reset = true; continue; }
    if (!a.startsWith('--')) throw new UsageError(`install-proxy: unexpected argument '${a}'`, a);
    const eq = a.indexOf('=');
    const name = eq > 2 ? a.slice(2, eq) : a.slice(2);
    if (name === 'force' || name === 'reset') throw new UsageError(`install-proxy: --${name} takes no value`, `--${name}`);
    if (!OPTIONS.some((o) => o.name === name)) {
      throw new UsageError(`install-proxy: unknown option '--${name}'${didYouMean(`--${name}`, OPTIONS.map((o) => `--${o.name}`))}`, `--${name}`);
    }
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
    reset,
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

/** Installs the shim; re-installing keeps the options of the previous shim not given again (unless reset). */
export function installProxy(req: InstallProxyRequest): { path: string; replaced: boolean; changes: BakedChanges } {
  const path = proxyPathFor(req.extension, req.root);
  const previous = bakedOptionsOf(path, PROXY_SHIM_MARKER, 'exec ', [undefined, undefined, 'proxy', '--extension', req.extension], req.reset);
  const { args, changes } = mergeBakedOptions(previous, req.extraArgs, req.reset === true);
  return { ...installShimFile(path, proxyShimText({ ...req, extraArgs: args }), PROXY_SHIM_MARKER, req.force, 'the upstream proxy?'), changes };
}
