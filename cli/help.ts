/**
 * What the CLI layer adds to the help of lib/router/contract/help.ts: the width of the user's terminal, and the
 * help of the commands that run as processes of their own (their options live in their own modules, loaded only
 * when such a help is asked for: a router command's start-up does not pay for them).
 */
import { DEFAULT_HELP_WIDTH, type HelpDoc } from '../lib/router/contract/help.js';

/** Columns of the terminal the help goes to; 80 when output is not a terminal. */
export function terminalWidth(stream: NodeJS.WriteStream = process.stdout): number {
  return stream.isTTY && stream.columns > 0 ? stream.columns : DEFAULT_HELP_WIDTH;
}

export type FrontEndHelp = (name: string) => HelpDoc | undefined;

/** The help of serve, proxy and install-proxy, by command name. */
export async function loadFrontEndHelp(): Promise<FrontEndHelp> {
  const [{ serveHelp }, { proxyHelp }, { installProxyHelp }] = await Promise.all([
    import('./serve-args.js'), import('../lib/proxy/invocation.js'), import('../lib/proxy/install-proxy.js'),
  ]);
  const docs: Record<string, () => HelpDoc> = { serve: serveHelp, proxy: proxyHelp, 'install-proxy': installProxyHelp };
  return (name) => docs[name]?.();
}
