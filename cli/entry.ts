/**
 * What a CLI process does with its command line (both entry points, netns-router.cjs and main.js, end here):
 * the SSH proxy side, the resident engine itself (`serve`), or a router command — forwarded to the resident
 * engine when one is listening, else run in this process.
 */
import { runViaResident } from './resident.cjs';

export async function runMain(argv: readonly string[], opts: { tryResident: boolean }): Promise<number> {
  // the management-server side (SSH proxy) never loads the router engine
  if (argv[0] === 'proxy' || argv[0] === 'install-proxy') return (await import('./proxy.js')).proxyMain(argv, process.argv[1]);
  if (argv[0] === 'serve') return (await import('./serve.js')).serveMain(argv.slice(1));
  const forwarded = opts.tryResident ? await runViaResident(argv) : undefined;
  if (forwarded !== undefined) return forwarded;
  const [{ loadRouterApi }, { runCli }] = await Promise.all([import('./engine.js'), import('./run.js')]);
  // one command per process: the engine keeps nothing warm for a next one (the resident engine does, cli/serve.ts),
  // and a NAT change reconciles what it touches (docs/reconcile.md "Cold NAT commands")
  return runCli(argv, { api: () => loadRouterApi({ fastNat: false, natScope: true, oneShot: true }), invokedAs: process.argv[1] });
}
