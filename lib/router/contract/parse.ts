/**
 * Command line → Invocation. Three forms give the same typed request:
 *
 *   netns-router <command> <payload-file> [<timeout-seconds>]      (what CloudStack runs)
 *   netns-router <command> --network-id 42 --vlan 100 …            (older CLI form, manual use)
 *   either of them plus global options anywhere on the line:
 *     --state-dir DIR --log-file FILE --host-netns NAME --extension NAME --timeout S --log-level L
 *     --physical-network-extension-details JSON --network-extension-details JSON
 *
 * Precedence: explicit option > payload file > environment (NETNS_ROUTER_*, CS_*) > default.
 * commander tokenizes; every value is validated here and in build.ts, and every problem is a
 * UsageError naming the argument.
 */
import { realpathSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { UsageError } from '../../util/errors.js';
import { BUILDERS } from './build.js';
import { COMMANDS, COMMAND_NAMES, commandSpec, isFrontEndCommand, isLocalCommand, type CommandName, type CommandSpec } from './command-specs.js';
import { decodeDetails, parseJsonText, readTextFile } from './decode.js';
import { FIELDS, FIELD_BY_KEY, fieldOfPayloadKey, optionAttr } from './fields.js';
import { DEFAULT_HELP_WIDTH, didYouMean, renderHelp, type HelpDoc, type HelpItem } from './help.js';
import { FieldBag, FieldReader } from './reader.js';
import type { EngineCommand, GuestIsolation, HostDevices, Invocation, LocalRequest, LogLevel, RouterSettings } from './types.js';
import { LOG_LEVELS } from './types.js';
import {
  BadValue, parseExtensionName, parseIfName, parseNamespaceName, parseSegmentKind, parseSegmentRanges, parseTimeoutSeconds,
} from './values.js';

export const DEFAULT_EXTENSION = 'network-namespace';
/** A command's time limit unless given (seconds). */
export const DEFAULT_TIMEOUT_SECONDS = 60;
/** The host device of guest and public segments unless the physical-network details name one. */
export const DEFAULT_DEVICE = 'eth1';

export const ENV = {
  stateDir: 'NETNS_ROUTER_STATE_DIR',
  logFile: 'NETNS_ROUTER_LOG_FILE',
  hostNetns: 'NETNS_ROUTER_HOST_NETNS',
  extension: 'NETNS_ROUTER_EXTENSION',
  timeout: 'NETNS_ROUTER_TIMEOUT',
  logLevel: 'NETNS_ROUTER_LOG_LEVEL',
  installRoot: 'NETNS_ROUTER_INSTALL_ROOT',
  physicalDetails: 'CS_PHYSICAL_NETWORK_EXTENSION_DETAILS',
  networkDetails: 'CS_NETWORK_EXTENSION_DETAILS',
} as const;

export const stateDirFor = (ext: string) => `/var/lib/cloudstack/${ext}`;
export const logFileFor = (ext: string) => `/var/log/cloudstack/extensions/${ext}/${ext}.log`;
export const wrapperPathFor = (ext: string, root = '/') => resolve(root, `etc/cloudstack/extensions/${ext}/${ext}-wrapper.sh`);

/** What parseInvocation needs besides the command line: environment, how the process was started, help width. */
export interface ParseEnvironment {
  env: Record<string, string | undefined>;
  /** Path the process was started as (argv[1]); a …/extensions/<name>/<name>-wrapper.sh path names the extension like upstream. */
  invokedAs?: string;
  /** Interpreter for install-wrapper's shim (default process.execPath). */
  nodePath?: string;
  /** Text printed by -V/--version. */
  version?: string;
  /** Columns the help text is wrapped to (default 80); a function is asked only when help is rendered (the CLI's
   *  terminal width: asking for it makes Node set up process.stdout, ~3 ms of a cold command that prints nothing). */
  helpWidth?: number | (() => number);
  /** Help of the commands that run as processes of their own (serve, proxy, install-proxy): the CLI layer
   *  knows their options. */
  frontEndHelp?: (name: string) => HelpDoc | undefined;
}

interface Captured {
  name: CommandName;
  args: string[];
  opts: Record<string, unknown>;
}

const GLOBAL_OPTIONS: readonly { flags: string; help: string; env?: string }[] = [
  { flags: '--state-dir <dir>', help: 'state directory (default /var/lib/cloudstack/<extension>)', env: ENV.stateDir },
  { flags: '--log-file <file>', help: 'log file (default /var/log/cloudstack/extensions/<extension>/<extension>.log)', env: ENV.logFile },
  { flags: '--host-netns <name>', help: 'do host-side plumbing inside this network namespace', env: ENV.hostNetns },
  { flags: '--extension <name>', help: `extension name (default ${DEFAULT_EXTENSION}); names state dir and log`, env: ENV.extension },
  { flags: '--timeout <seconds>', help: `time limit of the command (default: 3rd argument, else ${DEFAULT_TIMEOUT_SECONDS})`, env: ENV.timeout },
  { flags: '--log-level <level>', help: `log level: ${LOG_LEVELS.join(', ')} (default info)`, env: ENV.logLevel },
  { flags: '--physical-network-extension-details <json>', help: 'physical-network extension details (JSON object)', env: ENV.physicalDetails },
  { flags: '--network-extension-details <json>', help: 'per-network extension details (JSON object)', env: ENV.networkDetails },
  // no environment variable: a plan is asked for on the command line only (CloudStack never asks for one)
  { flags: '--dry-run [format]', help: 'plan only: print what the command would change (text, or one JSON document with --dry-run=json) and change nothing' },
];

const INSTALL_WRAPPER_OPTIONS: readonly { flags: string; help: string }[] = [
  { flags: '--root <dir>', help: `install under this root instead of / (env ${ENV.installRoot}); everything install-wrapper writes, its log included, stays under it` },
  { flags: '--node <path>', help: 'node binary the shim runs (default: this node)' },
  { flags: '--script <path>', help: 'netns-router entry script the shim runs (default: this one)' },
  { flags: '--force', help: 'overwrite an existing wrapper that was not installed by netns-router' },
  { flags: '--reset', help: 'forget the options baked into an existing shim (by default they are kept unless given again)' },
];

const HELP_FLAG: HelpItem = { term: '-h, --help', text: 'show this help' };
const globalOptionItems = (): HelpItem[] => [
  ...GLOBAL_OPTIONS.map((g) => ({ term: g.flags, text: g.env ? `${g.help}; env ${g.env}` : g.help })),
  HELP_FLAG,
];
const EXIT_CODES = 'Exit codes: 0 success; 1 bad input (one line naming the argument; nothing was changed); 2 failure '
  + '(with the kernel\'s or the system\'s message), a busy lock or the time limit.';

/** A field's option and, for a document, its -file twin. */
const optionsOfField = (key: string): string[] => {
  const f = FIELD_BY_KEY.get(key);
  if (!f) return [`--${key.replace(/_/g, '-')}`];
  return f.document ? [`--${f.option}`, `--${f.option}-file`] : [`--${f.option}`];
};

/** "--public-ip <value>", "(--network-id <value> | --vpc-id <value>)": the required arguments as a synopsis. */
function requiredSynopsis(spec: CommandSpec): string {
  const one = (key: string) => `${optionsOfField(key)[0]} <value>`;
  return (spec.required ?? []).map((r) => (typeof r === 'string' ? one(r) : `(${r.map(one).join(' | ')})`)).join(' ');
}

/** " (required)", " (required, or --vpc-id)" for a field's option; "" if it is optional. */
function requiredNote(spec: CommandSpec, option: string): string {
  for (const r of spec.required ?? []) {
    const group = typeof r === 'string' ? [r] : r;
    const names = group.flatMap(optionsOfField);
    if (!names.includes(option)) continue;
    const others = names.filter((n) => n !== option);
    return others.length ? ` (required, or ${others.join(' or ')})` : ' (required)';
  }
  return '';
}

function programDoc(): HelpDoc {
  return {
    usage: [
      'netns-router <command> <payload-file> [<timeout-seconds>]',
      'netns-router <command> [--<argument> <value> ...]',
      'netns-router help [<command>]',
    ],
    description: ['Virtual router for CloudStack guest networks: a drop-in for the wrapper of the Network-Namespace '
      + 'extension (the same commands, arguments and exit codes).'],
    sections: [
      { title: 'Commands', items: COMMANDS.map((c) => ({ term: c.name, text: c.summary })) },
      { title: 'Global options', items: [...globalOptionItems(), { term: '-V, --version', text: 'print the version' }] },
    ],
    footer: ["'netns-router help <command>' or 'netns-router <command> --help' shows a command's arguments.", EXIT_CODES],
  };
}

function commandDoc(spec: CommandSpec, cmd: Command, penv: ParseEnvironment): HelpDoc {
  const name = `netns-router ${spec.name}`;
  if (spec.frontEnd) {
    return penv.frontEndHelp?.(spec.name) ?? {
      usage: [`${name} ...`], description: [spec.summary], sections: [], footer: [`'${name} --help' describes its options.`],
    };
  }
  const options = cmd.options.filter((o) => !o.hidden && o.long !== '--help')
    .map((o) => ({ term: o.flags, text: `${o.description}${requiredNote(spec, o.long ?? '')}` }))
    .sort((a, b) => Number(b.text.includes('(required')) - Number(a.text.includes('(required'))); // stable: required first
  const sections = [{ title: 'Options', items: options }, { title: 'Global options', items: globalOptionItems() }];
  if (spec.name === 'help') {
    return { usage: [`${name} [<command>]`], description: [spec.summary], sections: [{ title: 'Global options', items: [HELP_FLAG] }] };
  }
  if (spec.name === 'version') return { usage: [name], description: [spec.summary], sections: [] };
  if (spec.name === 'install-wrapper') {
    return {
      usage: [`${name} [--extension <name>] [options]`],
      description: [`${spec.summary}.`, 'The global options given here (--state-dir, --log-file, --host-netns, --log-level) are '
        + 'baked into the shim. Re-running keeps those of the existing shim unless they are given again (it says which it '
        + 'kept and which it replaced); --reset drops them.'],
      sections,
    };
  }
  const req = requiredSynopsis(spec);
  return {
    usage: [`${name} <payload-file> [<timeout-seconds>] [options]`, `${name}${req ? ` ${req}` : ''} [options]`],
    description: [spec.summary],
    sections: [
      {
        title: 'Arguments',
        items: [
          { term: 'payload-file', text: `JSON file written by CloudStack; its "payload" object holds the arguments below${spec.flatPayload ? ' (custom-action: at the top level)' : ''} by their payload names (public_port for --public-port)` },
          { term: 'timeout-seconds', text: `time limit (default ${DEFAULT_TIMEOUT_SECONDS})` },
        ],
      },
      ...sections,
    ],
    footer: ['An option given with a payload file overrides the file\'s value. Other arguments CloudStack sends are accepted and ignored.', EXIT_CODES],
  };
}

/**
 * The commands a command line can reach: its first word that is not an option (global options before it are
 * skipped with their values), and for `help` the command it asks about. Undefined when that cannot be told (an
 * unknown option before the command): then every command gets its options.
 */
function commandsNamed(argv: readonly string[]): Set<string> | undefined {
  const valued = new Set(GLOBAL_OPTIONS.map((g) => g.flags.split(' ')[0]));
  const out = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('-')) {
      if (a.includes('=') || ['-h', '--help', '-V', '--version'].includes(a)) continue;
      if (a === '--dry-run') {
        i++; // parseInvocation left it bare only before its format
        continue;
      }
      if (!valued.has(a)) return undefined;
      i++;
      continue;
    }
    out.add(a);
    if (a === 'help' && argv[i + 1] !== undefined) out.add(argv[i + 1]);
    return out;
  }
  return out;
}

/**
 * Builds a fresh commander program (commander keeps option values between parses). Only the commands `argv`
 * names get their field options: commander checks every option it adds against those already there, so the
 * ~100 field options of ~40 commands cost ~10 ms of a cold process's start; the other commands are there for
 * the dispatch and the listings — and only when they can be needed: a command line that names one engine command
 * and asks for no help or version gets that command alone (~1 ms less of a cold start).
 */
function buildProgram(out: { text: string }, onAction: (c: Captured) => void, penv: ParseEnvironment, argv?: readonly string[]): Command {
  const named = argv && commandsNamed(argv);
  const only = named?.size === 1 && !argv!.some((a) => a === '-h' || a === '--help' || a === '-V' || a === '--version')
    ? [...named].map((n) => commandSpec(n)).find((s) => s !== undefined && !isLocalCommand(s.name) && !isFrontEndCommand(s.name)) : undefined;
  const width = (): number => (typeof penv.helpWidth === 'function' ? penv.helpWidth() : penv.helpWidth ?? DEFAULT_HELP_WIDTH);
  const program = new Command('netns-router')
    .exitOverride()
    .showSuggestionAfterError(false)
    .configureOutput({ writeOut: (s) => { out.text += s; }, writeErr: (s) => { out.text += s; } })
    .helpOption('-h, --help', 'show this help')
    .helpCommand(false);
  // set before the commands are added: they inherit it
  program.configureHelp({
    formatHelp: (cmd) => {
      const spec = cmd === program ? undefined : commandSpec(cmd.name());
      return renderHelp(spec ? commandDoc(spec, cmd, penv) : programDoc(), width());
    },
  });
  if (penv.version !== undefined) program.version(penv.version, '-V, --version', 'print the version');
  for (const g of GLOBAL_OPTIONS) program.option(g.flags, g.help);

  for (const spec of only !== undefined ? [only] : COMMANDS) {
    const cmd = program.command(spec.name).description(spec.summary).allowExcessArguments(false);
    if (spec.frontEnd) {
      // only listed here (cli/entry.ts runs them); reaching the parser with one is refused below
      cmd.allowUnknownOption().allowExcessArguments(true).helpOption(false);
    } else if (spec.name === 'help') {
      cmd.argument('[command]', 'command to describe');
    } else if (spec.name === 'install-wrapper') {
      for (const o of INSTALL_WRAPPER_OPTIONS) cmd.option(o.flags, o.help);
    } else if (spec.name !== 'version') {
      cmd.argument('[payload-file]', 'JSON payload file written by CloudStack')
        .argument('[timeout-seconds]', `time limit (default ${DEFAULT_TIMEOUT_SECONDS})`);
      if (!named || named.has(spec.name)) addFieldOptions(cmd, spec);
    }
    cmd.action((...a: unknown[]) => {
      const c = a[a.length - 1] as Command;
      onAction({ name: spec.name, args: c.args, opts: c.opts() });
    });
  }
  return program;
}

function addFieldOptions(cmd: Command, spec: CommandSpec): void {
  const shown = new Set(spec.fields);
  for (const f of FIELDS) {
    const o = new Option(`--${f.option} <value>`, f.help);
    if (!shown.has(f.key)) o.hideHelp();
    cmd.addOption(o);
    if (f.document) {
      const of = new Option(`--${f.option}-file <path>`, `file holding ${f.option} (JSON or base64)`);
      if (!shown.has(f.key)) of.hideHelp();
      cmd.addOption(of);
    }
  }
}

/** Every long option the parser knows (for "did you mean"). */
const KNOWN_OPTIONS: readonly string[] = [
  ...GLOBAL_OPTIONS.map((g) => g.flags.split(' ')[0]), ...INSTALL_WRAPPER_OPTIONS.map((o) => o.flags.split(' ')[0]),
  ...FIELDS.flatMap((f) => optionsOfField(f.key)), '--help', '--version',
];

/** `unknown option '--public-ports' (did you mean '--public-port'?)`: the CLI's and the library's (plain-values.ts) refusal. */
export function unknownOptionError(option: string): UsageError {
  return new UsageError(`unknown option '${option}'${didYouMean(option.replace(/=.*$/, ''), KNOWN_OPTIONS)}`, option);
}

function usageFromCommander(e: CommanderError): UsageError {
  const msg = e.message.replace(/^error:\s*/, '');
  const opt = /option '([^' ]+)/.exec(msg)?.[1] ?? /'(--[^']+)'/.exec(msg)?.[1];
  if (e.code === 'commander.unknownOption' && opt && msg === `unknown option '${opt}'`) return unknownOptionError(opt);
  if (e.code === 'commander.unknownOption' && opt) {
    return new UsageError(`${msg}${didYouMean(opt.replace(/=.*$/, ''), KNOWN_OPTIONS)}`, opt);
  }
  return new UsageError(msg, opt);
}

/** One line, like git's: what was not found, the closest names, where the list is. */
function unknownCommand(name: string): UsageError {
  return new UsageError(`unknown command '${name}'${didYouMean(name, COMMAND_NAMES)}; 'netns-router help' lists the commands`, name);
}

/** Value of a global option wherever it was given (program level or after the command). */
function globalOpt(program: Command, captured: Captured | undefined, attr: string): string | undefined {
  const v = program.opts()[attr];
  return typeof v === 'string' ? v : (captured?.opts[attr] as string | undefined);
}

function checked<T>(label: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof BadValue) throw new UsageError(`${label}: ${e.message}`, label);
    throw e;
  }
}

/** Extension name from a wrapper path like upstream: /etc/cloudstack/extensions/<ext>/<ext>-wrapper.sh. */
export function extensionFromPath(path: string | undefined): string | undefined {
  if (!path) return undefined;
  const dir = basename(dirname(path));
  const base = basename(path);
  if (base === `${dir}-wrapper.sh` && basename(dirname(dirname(path))) === 'extensions') {
    try {
      return parseExtensionName(dir);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function settingsOf(
  program: Command, captured: Captured | undefined, penv: ParseEnvironment, positionalTimeout: string | undefined,
): RouterSettings {
  const env = penv.env;
  const g = (attr: string) => globalOpt(program, captured, attr);
  const extOpt = g('extension');
  const extension = extOpt !== undefined
    ? checked('--extension', () => parseExtensionName(extOpt))
    : env[ENV.extension] !== undefined && env[ENV.extension] !== ''
      ? checked(ENV.extension, () => parseExtensionName(env[ENV.extension]!))
      : extensionFromPath(penv.invokedAs) ?? DEFAULT_EXTENSION;
  const pathOpt = (attr: string, flag: string, envName: string, dflt: string): string => {
    const v = g(attr) ?? (env[envName] || undefined);
    if (v === undefined) return dflt;
    if (v.trim() === '' || v.includes('\0')) throw new UsageError(`${g(attr) !== undefined ? flag : envName}: empty path`, flag);
    return resolve(v);
  };
  const settings: RouterSettings = {
    extension,
    stateDir: pathOpt('stateDir', '--state-dir', ENV.stateDir, stateDirFor(extension)),
    logFile: pathOpt('logFile', '--log-file', ENV.logFile, logFileFor(extension)),
    logLevel: 'info',
    timeoutSeconds: DEFAULT_TIMEOUT_SECONDS,
  };
  const hostNetns = g('hostNetns') ?? (env[ENV.hostNetns] || undefined);
  if (hostNetns !== undefined) {
    settings.hostNetns = checked(g('hostNetns') !== undefined ? '--host-netns' : ENV.hostNetns, () => parseNamespaceName(hostNetns));
  }
  const level = g('logLevel') ?? (env[ENV.logLevel] || undefined);
  if (level !== undefined) {
    if (!LOG_LEVELS.includes(level as LogLevel)) {
      const label = g('logLevel') !== undefined ? '--log-level' : ENV.logLevel;
      throw new UsageError(`${label}: ${JSON.stringify(level)} is not a log level (${LOG_LEVELS.join(', ')})`, label);
    }
    settings.logLevel = level as LogLevel;
  }
  const tOpt = g('timeout');
  if (tOpt !== undefined) settings.timeoutSeconds = checked('--timeout', () => parseTimeoutSeconds(tOpt));
  else if (positionalTimeout !== undefined) settings.timeoutSeconds = checked('timeout-seconds', () => parseTimeoutSeconds(positionalTimeout));
  else if (env[ENV.timeout]) settings.timeoutSeconds = checked(ENV.timeout, () => parseTimeoutSeconds(env[ENV.timeout]!));
  const dry = program.opts().dryRun ?? captured?.opts.dryRun;
  if (dry !== undefined) settings.dryRun = parseDryRun(dry);
  return settings;
}

/** `--dry-run` (text) or `--dry-run=text|json`. */
export function parseDryRun(v: unknown): 'text' | 'json' {
  if (v === true || v === 'text') return 'text';
  if (v === 'json') return 'json';
  throw new UsageError(`--dry-run: ${JSON.stringify(v)} is not a plan format (text, json; give it as --dry-run=json)`, '--dry-run');
}

/** Reads and checks the payload file's outer JSON object. */
function readPayloadFile(path: string): Record<string, unknown> {
  const label = `payload file ${JSON.stringify(path)}`;
  const text = checked(label, () => readTextFile(path));
  const doc = checked(label, () => parseJsonText(text, 'JSON'));
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new UsageError(`${label}: expected a JSON object`, label);
  }
  return doc as Record<string, unknown>;
}

function fillBagFromPayload(bag: FieldBag, obj: Record<string, unknown>, prefix: string): void {
  for (const [k, v] of Object.entries(obj)) {
    const f = fieldOfPayloadKey(k);
    if (!f) continue; // CloudStack sends more keys than we use (zone details, …): ignored like upstream
    // the canonical spelling wins over an alias when both are present
    if (k !== f.key && bag.get(f.key)) continue;
    bag.set(f.key, { value: v, source: `${prefix}${k}`, origin: { kind: 'payload' } });
  }
}

function fillBagFromOptions(bag: FieldBag, opts: Record<string, unknown>): void {
  for (const f of FIELDS) {
    const v = opts[optionAttr(f.option)];
    const fileV = f.document ? opts[optionAttr(`${f.option}-file`)] : undefined;
    if (v !== undefined && fileV !== undefined) {
      throw new UsageError(`give either --${f.option} or --${f.option}-file, not both`, `--${f.option}`);
    }
    if (v !== undefined) bag.set(f.key, { value: v, source: `--${f.option}`, origin: { kind: 'option' } });
    if (typeof fileV === 'string') {
      bag.set(f.key, { value: fileV, source: `--${f.option}-file`, origin: { kind: 'option-file', path: fileV } });
    }
  }
}

/** physical/network extension details with their precedence; errors name the source used. */
function detailsOf(
  program: Command, captured: Captured, penv: ParseEnvironment, payload: Record<string, unknown> | undefined,
  which: 'physical' | 'network',
): Record<string, unknown> {
  const flag = which === 'physical' ? 'physical-network-extension-details' : 'network-extension-details';
  const underscore = flag.replace(/-/g, '_');
  const opt = globalOpt(program, captured, optionAttr(flag));
  if (opt !== undefined) return checked(`--${flag}`, () => decodeDetails(opt));
  if (payload) {
    if (payload[flag] !== undefined) return checked(`${flag} (payload file)`, () => decodeDetails(payload[flag]));
    if (payload[underscore] !== undefined) return checked(`${underscore} (payload file)`, () => decodeDetails(payload[underscore]));
  }
  const envName = which === 'physical' ? ENV.physicalDetails : ENV.networkDetails;
  const env = penv.env[envName];
  if (env !== undefined) return checked(envName, () => decodeDetails(env));
  return {};
}

/** The host devices named by the physical-network details (`guest.network.device`, `public.network.device`; default eth1). */
export function devicesOf(details: Record<string, unknown>): HostDevices {
  const dev = (key: string): string => {
    const label = `physical-network-extension-details.${key}`;
    const v = details[key];
    if (v === undefined || v === null || v === '') return DEFAULT_DEVICE;
    if (typeof v !== 'string') throw new UsageError(`${label}: expected a string`, label);
    return checked(label, () => parseIfName(v.trim()));
  };
  return { guest: dev('guest.network.device'), public: dev('public.network.device') };
}

/** Physical-network detail keys of the guest isolation (docs/contract.md 2.7). */
export const ISOLATION_DETAIL = 'guest.network.isolation';
export const ISOLATION_RANGE_DETAIL = 'guest.network.isolation.range';

/** The guest isolation named by the physical-network details (docs/contract.md 2.7). */
export function isolationOf(details: Record<string, unknown>): GuestIsolation {
  const text = (key: string): string | undefined => {
    const label = `physical-network-extension-details.${key}`;
    const v = details[key];
    if (v === undefined || v === null || (typeof v === 'string' && v.trim() === '')) return undefined;
    if (typeof v !== 'string' && typeof v !== 'number') throw new UsageError(`${label}: expected a string`, label);
    return String(v);
  };
  const kindText = text(ISOLATION_DETAIL);
  const kind = kindText === undefined ? 'vlan' : checked(`physical-network-extension-details.${ISOLATION_DETAIL}`, () => parseSegmentKind(kindText));
  const rangeText = text(ISOLATION_RANGE_DETAIL);
  if (rangeText === undefined) return { kind };
  const ranges = checked(`physical-network-extension-details.${ISOLATION_RANGE_DETAIL}`, () => parseSegmentRanges(rangeText, kind));
  return { kind, range: { ranges, text: rangeText.trim() } };
}

function helpText(program: Command, topic: string | undefined): string {
  if (topic === undefined) return program.helpInformation();
  const sub = program.commands.find((c) => c.name() === topic);
  if (!sub) throw unknownCommand(topic);
  return sub.helpInformation();
}

function localRequest(
  captured: Captured, program: Command, settings: RouterSettings, penv: ParseEnvironment,
): LocalRequest {
  switch (captured.name) {
    case 'version':
      return { command: 'version' };
    case 'help':
      return { command: 'help', text: helpText(program, captured.args[0]), error: false };
    case 'install-wrapper': {
      const o = captured.opts;
      const rootOpt = typeof o.root === 'string' ? o.root : penv.env[ENV.installRoot] || '/';
      const scriptOpt = typeof o.script === 'string' ? o.script : penv.invokedAs;
      if (!scriptOpt) throw new UsageError('--script is required (cannot tell where netns-router is installed)', '--script');
      let script = resolve(scriptOpt);
      try {
        script = realpathSync(script);
      } catch {
        throw new UsageError(`--script: ${JSON.stringify(scriptOpt)} does not exist`, '--script');
      }
      const extraArgs: string[] = [];
      for (const [attr, flag] of [['stateDir', '--state-dir'], ['logFile', '--log-file'], ['hostNetns', '--host-netns'], ['logLevel', '--log-level']] as const) {
        if (globalOpt(program, captured, attr) !== undefined) extraArgs.push(flag, String(settings[attr]));
      }
      return {
        command: 'install-wrapper',
        extension: settings.extension,
        root: resolve(rootOpt),
        node: typeof o.node === 'string' ? resolve(o.node) : penv.nodePath ?? process.execPath,
        script,
        extraArgs,
        force: o.force === true,
        reset: o.reset === true,
      };
    }
    default:
      throw new Error(`not a local command: ${captured.name}`);
  }
}

/**
 * Parses a full command line (without node and script). Throws UsageError for every bad input.
 */
export function parseInvocation(given: readonly string[], penv: ParseEnvironment): Invocation {
  // `--dry-run` takes an optional format: a bare one followed by anything but a format (the command's name, a
  // payload file) is the text plan, not that word as its format
  const argv = given.map((a, i) => (a === '--dry-run' && given[i + 1] !== 'text' && given[i + 1] !== 'json' ? '--dry-run=text' : a));
  const out = { text: '' };
  let captured: Captured | undefined;
  const program = buildProgram(out, (c) => { captured = c; }, penv, argv);

  if (argv.length === 0) {
    return { kind: 'local', request: { command: 'help', text: program.helpInformation(), error: true }, settings: settingsOf(program, undefined, penv, undefined) };
  }
  try {
    program.parse([...argv], { from: 'user' });
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version') {
      return {
        kind: 'local',
        request: { command: 'help', text: out.text, error: e.exitCode !== 0 },
        settings: settingsOf(program, captured, penv, undefined),
      };
    }
    if (e.code === 'commander.unknownCommand') throw unknownCommand(/'([^']*)'/.exec(e.message)?.[1] ?? '');
    throw usageFromCommander(e);
  }
  if (!captured) {
    // only global options were given
    return { kind: 'local', request: { command: 'help', text: program.helpInformation(), error: true }, settings: settingsOf(program, undefined, penv, undefined) };
  }
  const c: Captured = captured;
  const spec = commandSpec(c.name)!;
  if (isFrontEndCommand(c.name)) {
    throw new UsageError(`'${c.name}' runs as a process of its own (netns-router ${c.name} ...), not through the wrapper, the resident engine or the proxy`, c.name);
  }

  if (isLocalCommand(c.name)) {
    const settings = settingsOf(program, c, penv, undefined);
    return { kind: 'local', request: localRequest(c, program, settings, penv), settings };
  }

  const [payloadPath, positionalTimeout] = c.args;
  const settings = settingsOf(program, c, penv, positionalTimeout);
  let payloadDoc: Record<string, unknown> | undefined;
  let bag: FieldBag;
  if (payloadPath !== undefined) {
    payloadDoc = readPayloadFile(payloadPath);
    if (spec.flatPayload) {
      bag = new FieldBag('flat-payload');
      fillBagFromPayload(bag, payloadDoc, '');
    } else {
      bag = new FieldBag('payload');
      const inner = payloadDoc.payload;
      if (inner !== undefined && inner !== null) {
        const obj = checked(`payload file ${JSON.stringify(payloadPath)}: payload`, () => decodeDetails(inner));
        fillBagFromPayload(bag, obj, 'payload.');
      }
    }
    // explicit options on the line override the file
    fillBagFromOptions(bag, c.opts);
  } else {
    bag = new FieldBag('options');
    fillBagFromOptions(bag, c.opts);
  }

  const physicalNetwork = detailsOf(program, c, penv, payloadDoc, 'physical');
  const network = detailsOf(program, c, penv, payloadDoc, 'network');
  const devices = devicesOf(physicalNetwork);
  const isolation = isolationOf(physicalNetwork);
  const name = c.name as EngineCommand;
  const request = BUILDERS[name](new FieldReader(name, bag), { networkDetails: network, bareSegment: isolation.kind });
  return {
    kind: 'engine',
    form: payloadPath !== undefined ? 'payload-file' : 'options',
    request,
    settings,
    devices,
    isolation,
    details: { physicalNetwork, network },
  };
}
