/**
 * The proxy's command line: the wrapper's own forms (payload file or kebab-case options, see
 * lib/router/contract/parse.ts — they are validated by that same parser, so the proxy accepts
 * and rejects exactly what the wrapper would), plus the proxy-only `ensure-network-device` and a
 * few proxy options:
 *
 *   --known-hosts FILE      (NETNS_ROUTER_PROXY_KNOWN_HOSTS)  default ~/.ssh/netns-router_known_hosts
 *   --remote-wrapper PATH   (CS_NET_SCRIPT_PATH)              default /etc/cloudstack/extensions/<ext>/<ext>-wrapper.sh
 *   --connect-timeout S     (NETNS_ROUTER_PROXY_CONNECT_TIMEOUT) default 5
 *
 * `--extension`, `--timeout`, `--log-file`, `--log-level` are the proxy's own settings (names the
 * default remote wrapper, bounds the whole call, the proxy's log). `--state-dir` and `--host-netns`
 * are settings of the remote wrapper and are passed on to it.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../util/errors.js';
import { decodeDetails, parseJsonText, readTextFile } from '../router/contract/decode.js';
import { commandSpec, isLocalCommand, type CommandName } from '../router/contract/command-specs.js';
import { FIELDS } from '../router/contract/fields.js';
import { DEFAULT_TIMEOUT_SECONDS, parseInvocation, wrapperPathFor } from '../router/contract/parse.js';
import type { HelpDoc } from '../router/contract/help.js';
import type { EngineInvocation, RouterSettings } from '../router/contract/types.js';
import { BadValue } from '../router/contract/values.js';

export const ENSURE_COMMAND = 'ensure-network-device';

export const PROXY_ENV = {
  knownHosts: 'NETNS_ROUTER_PROXY_KNOWN_HOSTS',
  remoteWrapper: 'CS_NET_SCRIPT_PATH',
  connectTimeout: 'NETNS_ROUTER_PROXY_CONNECT_TIMEOUT',
} as const;

export const DEFAULT_CONNECT_TIMEOUT_SECONDS = 5;

/** Options only the proxy knows (removed before the wrapper's parser sees the line), with their help. */
const PROXY_OPTION_DEFS: readonly { name: string; value: string; help: string }[] = [
  { name: 'known-hosts', value: '<file>', help: `known_hosts file of the proxy (default ~/.ssh/netns-router_known_hosts); env ${PROXY_ENV.knownHosts}` },
  { name: 'remote-wrapper', value: '<path>', help: `the wrapper on the hosts (default /etc/cloudstack/extensions/<extension>/<extension>-wrapper.sh); env ${PROXY_ENV.remoteWrapper}` },
  { name: 'connect-timeout', value: '<seconds>', help: `SSH connect timeout (default ${DEFAULT_CONNECT_TIMEOUT_SECONDS}); env ${PROXY_ENV.connectTimeout}` },
];
const PROXY_OPTIONS = new Set(PROXY_OPTION_DEFS.map((o) => o.name));
/** Wrapper settings given on the proxy's line that are passed on to the remote wrapper. */
const FORWARDED_OPTIONS = new Set(['state-dir', 'host-netns']);

/** option name → payload key, for options that carry a payload value (and `--x-file` of documents). */
const FIELD_OPTIONS: ReadonlyMap<string, { key: string; file: boolean }> = (() => {
  const m = new Map<string, { key: string; file: boolean }>();
  for (const f of FIELDS) {
    m.set(f.option, { key: f.key, file: false });
    if (f.document) m.set(`${f.option}-file`, { key: f.key, file: true });
  }
  return m;
})();

export interface ProxySettings {
  knownHostsFile: string;
  remoteWrapper: string;
  connectTimeoutSec: number;
}

/** A payload value given as an option (file options already read). */
export interface FieldOverride {
  key: string;
  value: string;
  source: string;
}

export interface ProxyInvocation {
  kind: 'call';
  command: string;
  form: 'payload-file' | 'options';
  payloadPath?: string;
  /** the payload file's JSON object */
  payloadDoc?: Record<string, unknown>;
  /** custom-action's payload is flat */
  flat: boolean;
  settings: RouterSettings;
  details: { physicalNetwork: Record<string, unknown>; network: Record<string, unknown> };
  networkId?: string;
  vpcId?: string;
  /** ensure-network-device: payload.current_details / --current-details */
  currentDetails: Record<string, unknown>;
  overrides: FieldOverride[];
  /** wrapper options passed on (`--host-netns x`) */
  forwardOptions: string[];
  proxy: ProxySettings;
}

export interface ProxyHelp {
  kind: 'help';
  doc: HelpDoc;
}

interface Token {
  name: string;
  value: string;
}

/** `netns-router proxy --help` and `netns-router help proxy`. */
export function proxyHelp(): HelpDoc {
  return {
    usage: [
      'netns-router proxy <command> <payload-file> [<timeout-seconds>] [options]',
      'netns-router proxy <command> --network-id <value> [--<argument> <value> ...]',
      'netns-router proxy ensure-network-device (<payload-file> | --network-id <value> | --vpc-id <value>) [--current-details <json>]',
    ],
    description: [
      'Runs on the CloudStack management server: picks the KVM host of a network (ensure-network-device: a stable '
        + 'cksum-based choice with failover) and runs the router wrapper there over SSH. <command> is any router '
        + 'command, with the same arguments (netns-router help <command>).',
      'SSH settings come from physical-network-extension-details: hosts (or host), port (22), username (root), '
        + 'sshkey (PEM private key) or password (sshpass).',
    ],
    sections: [
      { title: 'Proxy options', items: PROXY_OPTION_DEFS.map((o) => ({ term: `--${o.name} ${o.value}`, text: o.help })) },
      {
        title: 'Global options',
        items: [
          { term: '--extension <name>', text: 'extension name (names the default remote wrapper)' },
          { term: '--timeout <seconds>', text: `time limit of the whole call (default: 3rd argument, else ${DEFAULT_TIMEOUT_SECONDS})` },
          { term: '--log-file <file>', text: 'the proxy\'s log' },
          { term: '--log-level <level>', text: 'its level' },
          { term: '--state-dir <dir>', text: 'passed on to the remote wrapper' },
          { term: '--host-netns <name>', text: 'passed on to the remote wrapper' },
          { term: '-h, --help', text: 'show this help' },
        ],
      },
    ],
    footer: ['Exit codes: 0 success; 1 bad input or configuration; 2 SSH failure; 3 the remote wrapper failed (its message passed on).'],
  };
}

function checked<T>(label: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof BadValue) throw new UsageError(`${label}: ${e.message}`, label);
    throw e;
  }
}

/** Splits the line into positionals and `--name value` / `--name=value` options (order kept). */
function tokenize(argv: readonly string[]): { positionals: string[]; options: Token[]; help: boolean } {
  const positionals: string[] = [];
  const options: Token[] = [];
  let help = false;
  let onlyPositionals = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (onlyPositionals || !a.startsWith('-') || a === '-') {
      positionals.push(a);
      continue;
    }
    if (a === '--') { onlyPositionals = true; continue; }
    if (a === '-h' || a === '--help') { help = true; continue; }
    if (!a.startsWith('--')) throw new UsageError(`unknown option '${a}'`, a);
    const eq = a.indexOf('=');
    if (eq > 2) {
      options.push({ name: a.slice(2, eq), value: a.slice(eq + 1) });
      continue;
    }
    if (i + 1 >= argv.length) throw new UsageError(`option '${a} <value>' argument missing`, a);
    options.push({ name: a.slice(2), value: argv[++i] });
  }
  return { positionals, options, help };
}

function proxySettings(options: Token[], env: Record<string, string | undefined>, extension: string): ProxySettings {
  const opt = (name: string) => [...options].reverse().find((t) => t.name === name)?.value;
  const pick = (name: string, envName: string): { value: string; label: string } | undefined => {
    const o = opt(name);
    if (o !== undefined) return { value: o, label: `--${name}` };
    const e = env[envName];
    return e ? { value: e, label: envName } : undefined;
  };
  const kh = pick('known-hosts', PROXY_ENV.knownHosts);
  const knownHostsFile = kh ? kh.value : join(env.HOME || homedir(), '.ssh', 'netns-router_known_hosts');
  if (!knownHostsFile.startsWith('/') || /[\s"'\\]/.test(knownHostsFile)) {
    throw new UsageError(`${kh?.label ?? 'HOME'}: known_hosts path must be absolute, without spaces or quotes`, kh?.label ?? '--known-hosts');
  }
  const rw = pick('remote-wrapper', PROXY_ENV.remoteWrapper);
  const remoteWrapper = rw ? rw.value : wrapperPathFor(extension);
  if (remoteWrapper.trim() === '' || /[\x00-\x1f]/.test(remoteWrapper)) {
    throw new UsageError(`${rw?.label ?? '--remote-wrapper'}: not a usable path`, rw?.label ?? '--remote-wrapper');
  }
  const ct = pick('connect-timeout', PROXY_ENV.connectTimeout);
  let connectTimeoutSec = DEFAULT_CONNECT_TIMEOUT_SECONDS;
  if (ct) {
    if (!/^[0-9]+$/.test(ct.value) || Number(ct.value) < 1 || Number(ct.value) > 300) {
      throw new UsageError(`${ct.label}: ${JSON.stringify(ct.value.slice(0, 20))} is not a connect timeout (1-300 seconds)`, ct.label);
    }
    connectTimeoutSec = Number(ct.value);
  }
  return { knownHostsFile, remoteWrapper, connectTimeoutSec };
}

function readPayloadDoc(path: string): Record<string, unknown> {
  const label = `payload file ${JSON.stringify(path)}`;
  const doc = checked(label, () => parseJsonText(readTextFile(path)));
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new UsageError(`${label}: expected a JSON object`, label);
  return doc as Record<string, unknown>;
}

/**
 * Parses and validates a proxy command line (without the leading `proxy`). Throws UsageError
 * (exit 1) like the wrapper would, before any SSH connection is made.
 */
export function parseProxyInvocation(argv: readonly string[], env: Record<string, string | undefined>): ProxyInvocation | ProxyHelp {
  const { positionals, options, help } = tokenize(argv);
  const command = positionals[0];
  if (help || command === undefined || command === 'help') return { kind: 'help', doc: proxyHelp() };
  const ensure = command === ENSURE_COMMAND;
  if (!ensure) {
    const spec = commandSpec(command);
    if (spec && isLocalCommand(spec.name as CommandName)) {
      throw new UsageError(`'${command}' is not a router command; the proxy forwards router commands and ensure-network-device`, command);
    }
  }
  // the wrapper's parser validates everything else; ensure-network-device is parsed as `status`,
  // which takes the same ids (network_id, vpc_id) in both forms
  const wrapperLine: string[] = [ensure ? 'status' : command, ...positionals.slice(1)];
  for (const t of options) if (!PROXY_OPTIONS.has(t.name)) wrapperLine.push(`--${t.name}`, t.value);
  const inv = parseInvocation(wrapperLine, { env });
  if (inv.kind !== 'engine') throw new UsageError(`'${command}' is not a router command`, command);
  const engine: EngineInvocation = inv;
  const req = engine.request as { networkId?: string; vpcId?: string };

  const payloadPath = engine.form === 'payload-file' ? positionals[1] : undefined;
  const payloadDoc = payloadPath !== undefined ? readPayloadDoc(payloadPath) : undefined;
  const flat = !ensure && commandSpec(command)?.flatPayload === true;

  const overrides: FieldOverride[] = [];
  const forwardOptions: string[] = [];
  let currentDetailsOpt: string | undefined;
  for (const t of options) {
    if (FORWARDED_OPTIONS.has(t.name)) {
      forwardOptions.push(`--${t.name}`, t.value);
      continue;
    }
    const f = FIELD_OPTIONS.get(t.name);
    if (!f) continue;
    if (f.key === 'current_details') currentDetailsOpt = t.value;
    const value = f.file ? checked(`--${t.name}`, () => readTextFile(t.value)) : t.value;
    overrides.push({ key: f.key, value, source: `--${t.name}` });
  }

  let currentDetails: Record<string, unknown> = {};
  if (ensure) {
    if (currentDetailsOpt !== undefined) currentDetails = checked('--current-details', () => decodeDetails(currentDetailsOpt));
    else if (payloadDoc) {
      const inner = checked('payload', () => decodeDetails(payloadDoc.payload));
      currentDetails = checked('payload.current_details', () => decodeDetails(inner.current_details));
    }
  }

  return {
    kind: 'call',
    command,
    form: engine.form,
    payloadPath,
    payloadDoc,
    flat,
    settings: engine.settings,
    details: engine.details,
    networkId: req.networkId,
    vpcId: req.vpcId,
    currentDetails,
    overrides,
    forwardOptions,
    proxy: proxySettings(options, env, engine.settings.extension),
  };
}
