/**
 * runCli: one whole invocation — parse, log, lock, dispatch to the RouterApi under the time
 * limit — returning the process exit code (0 ok, 1 usage, 2 system/timeout). Nothing here exits
 * the process, so tests drive it in-process with a recording RouterApi.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RouterApi } from '../lib/router/contract/router-api.js';
import { DEFAULT_HELP_WIDTH } from '../lib/router/contract/help.js';
import { describeBakedChanges, installWrapper } from '../lib/router/contract/install-wrapper.js';
import { parseInvocation } from '../lib/router/contract/parse.js';
import type { EngineInvocation, LocalInvocation, RouterSettings } from '../lib/router/contract/types.js';
import {
  EXIT_OK, EXIT_USAGE, RouterError, SystemError, UsageError, describeError, exitCodeOf,
} from '../lib/util/errors.js';
import { abbreviate, createLogger, type Logger } from '../lib/router/log.js';
import { invokeCommand } from '../lib/router/invoke.js';
import { loadFrontEndHelp, terminalWidth } from './help.js';

export type ApiProvider = RouterApi | (() => RouterApi | Promise<RouterApi>);

export interface CliDeps {
  /** The engine, or a factory called only when an engine command is about to run. */
  api?: ApiProvider;
  env?: Record<string, string | undefined>;
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  /** argv[1] of the process (derives the extension name from an installed wrapper path). */
  invokedAs?: string;
  nodePath?: string;
  /** Directory relative paths of the command line are read against (a resident engine serving another
   *  process's command line); default the process's own. */
  cwd?: string;
  /** Called once the command line is parsed and an engine command is about to run, with its deadline and
   *  settings (the resident engine learns the state directories its watchdog watches from these). */
  onAccepted?: (deadline: number, settings: RouterSettings) => void;
  /** Columns help text is wrapped to; default the terminal's when output goes to this process's stdout, else 80. */
  helpWidth?: number;
}

export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function line(text: string): string {
  return text.endsWith('\n') ? text : `${text}\n`;
}

export async function runCli(argv: readonly string[], deps: CliDeps = {}): Promise<number> {
  const env = deps.env ?? process.env;
  const out = deps.stdout ?? ((s: string) => { process.stdout.write(s); });
  const err = deps.stderr ?? ((s: string) => { process.stderr.write(s); });

  // the terminal's width is asked only if help is rendered (touching process.stdout sets it up)
  const helpWidth = deps.helpWidth ?? (deps.stdout ? DEFAULT_HELP_WIDTH : () => terminalWidth());
  // only `help <command>` can show the help of serve/proxy/install-proxy: their modules are loaded for it alone
  const frontEndHelp = argv.includes('help') ? await loadFrontEndHelp() : undefined;
  let inv;
  // parsing resolves paths and reads the payload files, synchronously: another directory is entered for
  // exactly that long (nothing else of the process can run meanwhile)
  const home = deps.cwd !== undefined ? process.cwd() : undefined;
  try {
    // (a client whose directory is gone: absolute paths still work, relative ones fail as missing files)
    if (deps.cwd !== undefined) { try { process.chdir(deps.cwd); } catch { /* see above */ } }
    inv = parseInvocation(argv, {
      env, invokedAs: deps.invokedAs, nodePath: deps.nodePath, version: `netns-router ${packageVersion()}`, helpWidth, frontEndHelp,
    });
  } catch (e) {
    // a command line that does not parse ran nothing: the message goes to the caller (stderr), not to the log
    // (an operator's typo must not land in the production log; CloudStack keeps the stderr of what it ran)
    err(line(`netns-router: ${describeError(e)}`));
    return exitCodeOf(e);
  } finally {
    if (home !== undefined) process.chdir(home);
  }

  if (inv.kind === 'local') return runLocal(inv, out, err);
  return runEngine(inv, deps, out, err);
}

function runLocal(inv: LocalInvocation, out: (s: string) => void, err: (s: string) => void): number {
  const req = inv.request;
  try {
    switch (req.command) {
      case 'version':
        out(`netns-router ${packageVersion()}\n`);
        return EXIT_OK;
      case 'help':
        (req.error ? err : out)(line(req.text));
        return req.error ? EXIT_USAGE : EXIT_OK;
      case 'install-wrapper': {
        const r = installWrapper(req);
        // recorded in the log the shim will use; under --root everything lands under it, that record included
        const baked = r.bakedArgs.indexOf('--log-file');
        const logFile = baked >= 0 ? r.bakedArgs[baked + 1] : inv.settings.logFile;
        const { logger, close } = createLogger({ file: join(req.root, logFile), level: inv.settings.logLevel, base: { command: req.command } });
        logger.info({ path: r.path, replaced: r.replaced, extension: req.extension, ...r.changes }, 'installed wrapper shim');
        close();
        out([`${r.replaced ? 'replaced' : 'installed'} ${r.path}`, ...describeBakedChanges(r.changes), ''].join('\n'));
        return EXIT_OK;
      }
    }
  } catch (e) {
    err(line(`netns-router: ${req.command}: ${describeError(e)}`));
    return exitCodeOf(e);
  }
}

async function resolveApi(provider: ApiProvider | undefined): Promise<RouterApi> {
  if (provider === undefined) throw new SystemError('no router engine given (runCli without an api)', { code: 'E_ENGINE_MISSING' });
  try {
    return typeof provider === 'function' ? await provider() : provider;
  } catch (e) {
    if (e instanceof RouterError) throw e;
    throw SystemError.from(e, 'loading the router engine');
  }
}

async function runEngine(
  inv: EngineInvocation, deps: CliDeps, out: (s: string) => void, err: (s: string) => void,
): Promise<number> {
  const { request: req, settings } = inv;
  const started = Date.now();
  deps.onAccepted?.(started + Math.round(settings.timeoutSeconds * 1000), settings);
  const created = createLogger({
    file: settings.logFile, level: settings.logLevel,
    base: { extension: settings.extension, command: req.command },
  });
  const log: Logger = created.logger;
  if (created.problem) err(line(`netns-router: warning: ${created.problem}`));
  // the extension details' names only: their values may hold an operator's credentials (the router reads devices,
  // logged apart, and a few switches the model records)
  const detailKeys = { physicalNetwork: Object.keys(inv.details.physicalNetwork), network: Object.keys(inv.details.network) };
  log.info({ form: inv.form, request: abbreviate(req), devices: inv.devices, detailKeys, timeoutSeconds: settings.timeoutSeconds }, 'command start');

  // the router's lock, then the engine call, within the time limit: the same code as the library's
  // (lib/router/invoke.ts), so the two never interleave on one router and time out alike
  const running = invokeCommand(() => resolveApi(deps.api), req, {
    settings, devices: inv.devices, isolation: inv.isolation, details: inv.details, form: inv.form, log,
  }, { timeoutSeconds: settings.timeoutSeconds, startedAt: started });
  try {
    const result = await running.result;
    if (result && typeof result === 'object' && typeof result.stdout === 'string' && result.stdout !== '') {
      out(line(result.stdout));
    }
    log.info({ durationMs: Date.now() - started, exitCode: EXIT_OK }, 'command done');
    return EXIT_OK;
  } catch (e) {
    const code = exitCodeOf(e);
    err(line(`netns-router: ${req.command}: ${describeError(e)}`));
    // a usage error goes to the caller only, at parse time and here alike; the log closes the command it
    // opened ("command start") with the exit code
    if (e instanceof UsageError) log.info({ durationMs: Date.now() - started, exitCode: code }, 'command rejected');
    else log.error({ durationMs: Date.now() - started, exitCode: code, err: e }, 'command failed');
    return code;
  } finally {
    // after a timeout the engine call may still be running (and logging)
    void running.ended.then(created.close);
  }
}
