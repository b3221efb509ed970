/**
 * `netns-router proxy <command> …` and `netns-router install-proxy --extension NAME`: the
 * management-server side (lib/proxy). Signals end the call cleanly: children are stopped and the
 * call's temp files (key, control sockets, payload) removed before exiting; a second signal
 * removes them synchronously and exits at once.
 */
import { killAllChildren } from '../lib/proxy/child.js';
import { removeAllCallDirs } from '../lib/proxy/call-dir.js';
import { PROXY_EXIT_SSH, describeProxyError, proxyExitCodeOf } from '../lib/proxy/errors.js';
import { installProxy, parseInstallProxy } from '../lib/proxy/install-proxy.js';
import { runProxy } from '../lib/proxy/run.js';
import { renderHelp } from '../lib/router/contract/help.js';
import { describeBakedChanges } from '../lib/router/contract/install-wrapper.js';
import { terminalWidth } from './help.js';

const SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

/** Runs `proxy …` / `install-proxy …` (argv without node and script); returns the exit code. */
export async function proxyMain(argv: readonly string[], invokedAs?: string): Promise<number> {
  if (argv[0] === 'install-proxy') {
    try {
      const req = parseInstallProxy(argv.slice(1), process.env, invokedAs);
      if ('help' in req) {
        process.stdout.write(renderHelp(req.help, terminalWidth()));
        return 0;
      }
      const r = installProxy(req);
      process.stdout.write([`${r.replaced ? 'replaced' : 'installed'} ${r.path}`, ...describeBakedChanges(r.changes), ''].join('\n'));
      return 0;
    } catch (e) {
      process.stderr.write(`netns-router: install-proxy: ${describeProxyError(e)}\n`);
      return proxyExitCodeOf(e);
    }
  }

  const abort = new AbortController();
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) {
      // second signal: no more waiting
      killAllChildren();
      removeAllCallDirs();
      process.exit(PROXY_EXIT_SSH);
    }
    signalled = true;
    process.stderr.write(`netns-router proxy: ${sig}: stopping\n`);
    abort.abort();
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  process.on('exit', () => { killAllChildren(); removeAllCallDirs(); });
  try {
    return await runProxy(argv.slice(1), { signal: abort.signal, helpWidth: terminalWidth() });
  } finally {
    for (const s of SIGNALS) process.off(s, onSignal);
  }
}
