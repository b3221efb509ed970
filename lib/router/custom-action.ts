/**
 * custom-action: upstream's built-ins (reboot-device, dump-config, list-firewall-rules, pbr-*: each declared by
 * the core or its module in the action table) and operator hooks (<state>/hooks/custom-action-<name>.sh).
 *
 * Everything a successful action prints is one JSON line in the envelope CloudStack reads:
 * `{"status":"success","printmessage":"true","message":…}`. NetworkExtensionElement merges the script's
 * stdout and stderr, and fails an action whose output is a JSON object with a `status` other than "success";
 * the whole output becomes the API result's `details`. CloudStack's UI shows `message` only when
 * `printmessage` is "true" and `message` is a list of rows (or one row object): a table whose columns are
 * the first row's keys and whose cells are `String(value)` — so list actions give rows of plain strings.
 * The shapes follow upstream's wrapper (docs/contract.md 1.6, 3): where upstream prints text, the message is
 * upstream's text.
 */
import { accessSync, constants as fsConstants, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { childEnv } from '../sys/children.js';
import { runHook } from './hook-runner.js';
import { routerKeyOf } from './state/lock.js';
import type { CommandContext, CommandOutput } from './contract/router-api.js';
import type * as T from './contract/types.js';
import type { CommandEnv, CustomAction } from './command-table.js';
import { SystemError, UsageError } from '../util/errors.js';

/** The success envelope, as one line. */
export function envelope(message: unknown): string {
  return `${JSON.stringify({ status: 'success', printmessage: 'true', message })}\n`;
}

/**
 * A hook's stdout as CloudStack gets it: a JSON object with a `status` is the hook speaking the envelope (or
 * reporting its own failure) and passes unchanged; anything else becomes the envelope's message — parsed
 * when it is JSON (a list of rows shows as a table in the UI), else the text, else `<action>: OK`.
 */
export function hookOutput(action: string, stdout: string): string {
  const text = stdout.trim();
  if (text === '') return envelope(`${action}: OK`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return envelope(text);
  }
  if (typeof doc === 'object' && doc !== null && !Array.isArray(doc) && 'status' in doc) return `${text}\n`;
  return envelope(doc);
}

/**
 * custom-action: a built-in action through the action table (lib/router/command-table.ts; an action that
 * changes the router is one engine change, named `custom-action <name>` in refusals), anything else a hook.
 */
export async function runCustomAction(req: T.CustomActionRequest, env: CommandEnv): Promise<CommandOutput> {
  const b = req.builtin;
  const action = b ? env.actions[b.name] as CustomAction<typeof b> | undefined : undefined;
  // a plan runs the engine's changes only: an operator's hook or an action that is more than a change cannot be
  // run without doing it
  if (env.engine.plan && !action?.change) {
    throw new UsageError(`custom action ${req.action} cannot be planned (--dry-run plans built-in actions that change a router's state)`, 'action');
  }
  if (!b) return runHookAction(req, env.ctx);
  if (action?.change) {
    const mutate = action.change(b, req);
    let message = '';
    await env.engine.changeFor({ ...req, command: `custom-action ${b.name}`, ...(action.scope ? { scope: action.scope } : {}) }, (m) => { message = mutate(m); });
    return { stdout: envelope(message) };
  }
  if (action?.run) return { stdout: envelope(await action.run(b, req, env)) };
  throw new SystemError(`custom action ${b.name}: no module of this engine handles it`);
}

/**
 * Operator hook: `<state>/hooks/custom-action-<name>.sh --network-id <id> --action <name> --action-params
 * <json>` — upstream's arguments (an empty network id for a VPC action) — with the environment of hookEnv.
 * A hook file that is not executable is a SystemError naming it.
 */
async function runHookAction(req: T.CustomActionRequest, ctx: CommandContext): Promise<CommandOutput> {
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(req.action)) throw new UsageError(`invalid custom action name ${JSON.stringify(req.action)}`, 'action');
  const hook = join(ctx.settings.stateDir, 'hooks', `custom-action-${req.action}.sh`);
  if (!existsSync(hook)) throw new UsageError(`unknown custom action "${req.action}" (no built-in and no hook ${hook})`, 'action');
  if (!isExecutable(hook)) throw new SystemError(`hook ${hook} is not executable`);
  // asynchronously: a resident engine keeps serving other routers while an operator's script runs
  const r = await runHook({
    file: hook, args: ['--network-id', req.networkId ?? '', '--action', req.action, '--action-params', JSON.stringify(req.actionParams)],
    timeoutMs: Math.max(1000, ctx.deadline - Date.now()), signal: ctx.signal,
    env: hookEnv(req, ctx.settings.stateDir), stateDir: ctx.settings.stateDir, router: routerKeyOf(req),
  });
  if (r.status !== 0) throw new SystemError(`custom action ${req.action} failed (exit ${r.status ?? r.signal}): ${r.stderr.trim().split('\n').pop() ?? ''}`);
  return { stdout: hookOutput(req.action, r.stdout) };
}

/** A regular file this process may execute. */
function isExecutable(file: string): boolean {
  try {
    accessSync(file, fsConstants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * A hook's whole environment (docs/daemons.md): the minimal child environment (PATH, LC_ALL) and the router it
 * acts on. Never the caller's: that holds the extension details (passwords, SSH keys).
 */
export function hookEnv(req: T.CustomActionRequest, stateDir: string): Record<string, string> {
  return childEnv({
    NETNS_ROUTER_ACTION: req.action, NETNS_ROUTER_NAMESPACE: req.namespace, NETNS_ROUTER_NETWORK_ID: req.networkId ?? '',
    NETNS_ROUTER_VPC_ID: req.vpcId ?? '', NETNS_ROUTER_STATE_DIR: stateDir,
  });
}
