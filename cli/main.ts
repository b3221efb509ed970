#!/usr/bin/env node
// netns-router entry point: `netns-router <command> <payload-file> <timeout-seconds>` (or options).
import { loadRouterApi } from './engine.js';
import { runCli } from './run.js';

const argv = process.argv.slice(2);
// the management-server side (SSH proxy) never loads the router engine
const code = argv[0] === 'proxy' || argv[0] === 'install-proxy'
  ? await (await import('./proxy.js')).proxyMain(argv, process.argv[1])
  : await runCli(argv, { api: loadRouterApi, invokedAs: process.argv[1] });
// exit now: after a timeout the engine may still be running; its transactions are atomic
process.exit(code);
