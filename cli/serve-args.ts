/**
 * The command line of `netns-router serve` and its help; kept apart from serve.ts so that the CLI's help can
 * show it without loading the resident engine.
 */
import { didYouMean, type HelpDoc } from '../lib/router/contract/help.js';
import { DEFAULT_EXTENSION, ENV, stateDirFor } from '../lib/router/contract/parse.js';
import { DEFAULT_RESIDENT_SOCKET } from './resident.cjs';

export interface ServeArgs {
  socket: string;
  shimPort: boolean;
  /** The daemon watchdog over these state directories (and those of the commands served); absent: off. */
  watchdog?: { stateDirs: string[] };
}

const OPTIONS = ['--socket', '--no-shim-port', '--state-dir', '--no-watchdog', '--help'];

/** `netns-router serve --help` and `netns-router help serve`. */
export function serveHelp(): HelpDoc {
  return {
    usage: ['netns-router serve [--socket <path>] [--no-shim-port] [--state-dir <dir>]... [--no-watchdog]'],
    description: [
      'Runs the resident engine until SIGTERM or SIGINT (then it finishes the running commands). netns-router '
        + 'commands and the extension\'s wrapper shim hand it their command lines; it runs them exactly as the CLI '
        + 'would (same parser, locks, logs and exit codes) but warm, so a command costs milliseconds instead of a '
        + 'node start-up. See docs/resident.md; a systemd unit is in contrib/.',
    ],
    sections: [{
      title: 'Options',
      items: [
        { term: '--socket <path>', text: `unix socket of the engine (default ${DEFAULT_RESIDENT_SOCKET}); clients find it through NETNS_ROUTER_ENGINE_SOCKET` },
        { term: '--no-shim-port', text: 'no loopback port for the wrapper shim (the shim then starts node for every command)' },
        { term: '--state-dir <dir>', text: `a state directory whose dead dnsmasq/haproxy/metadata daemons the watchdog restarts (repeatable; default $${ENV.stateDir} or ${stateDirFor(DEFAULT_EXTENSION)}); the state directories of the commands served are watched too (docs/daemons.md)` },
        { term: '--no-watchdog', text: 'do not restart dead daemons' },
        { term: '-h, --help', text: 'show this help' },
      ],
    }],
  };
}

/** The options, 'help', or a one-line usage error. */
export function parseServeArgs(argv: readonly string[]): ServeArgs | 'help' | { error: string } {
  let socket = DEFAULT_RESIDENT_SOCKET;
  let shimPort = true;
  let watchdog = true;
  const stateDirs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--socket' && i + 1 < argv.length) socket = argv[++i];
    else if (a.startsWith('--socket=')) socket = a.slice('--socket='.length);
    else if (a === '--no-shim-port') shimPort = false;
    else if (a === '--no-watchdog') watchdog = false;
    else if (a === '--state-dir' && i + 1 < argv.length && argv[i + 1] !== '') stateDirs.push(argv[++i]);
    else if (a.startsWith('--state-dir=') && a.length > '--state-dir='.length) stateDirs.push(a.slice('--state-dir='.length));
    else if (a === '--help' || a === '-h') return 'help';
    else if (a === '--socket') return { error: "option '--socket <path>' argument missing" };
    else if (a === '--state-dir' || a === '--state-dir=') return { error: "option '--state-dir <dir>' argument missing" };
    else return { error: `unknown argument '${a}'${a.startsWith('-') ? didYouMean(a.replace(/=.*$/, ''), OPTIONS) : ''}; 'netns-router help serve' shows the options` };
  }
  if (socket === '' || socket.includes('\0')) return { error: '--socket: empty path' };
  if (!stateDirs.length) stateDirs.push(process.env[ENV.stateDir] || stateDirFor(process.env[ENV.extension] || DEFAULT_EXTENSION));
  return { socket, shimPort, ...(watchdog ? { watchdog: { stateDirs } } : {}) };
}
