/**
 * The npm package as a user gets it: `npm pack` on a fresh copy of the project (no dist/: prepack builds), the
 * tarball installed into a new strict TypeScript NodeNext project, every example of docs/library.md compiled
 * against it (together they import every entry point) and run here in the sandbox — each must print what the page
 * says it prints — and the network the router example built checked with packets: source NAT out, the port
 * forward in (opened by the firewall rule CloudStack would send). The installed CLI then destroys it.
 * Offline: the tarball's dependencies are linked from this project's node_modules, tsc is ours.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Scratch, addVm, simulatedHost, tcpAsk, waitFor, whoamiServer } from '../helpers/topo.js';
import { killDaemons } from '../helpers/router-cli.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const modules = realpathSync(join(root, 'node_modules'));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string; version: string; bin: Record<string, string>; exports: Record<string, string | { types: string; default: string }>;
};

/** What a clone does not have: build output, installed packages, caches, git's own files. */
const NOT_IN_A_CLONE = /^(node_modules|dist|\.cache|\.git|bench\/results)(\/|$)|\.log$/;

/** The examples of docs/library.md: fenced ts blocks whose first line is `// example: NAME.ts`. */
function examples(): Array<{ name: string; code: string }> {
  const doc = readFileSync(join(root, 'docs', 'library.md'), 'utf8');
  return [...doc.matchAll(/```ts\n\/\/ example: ([\w-]+\.ts)\n([\s\S]*?)```/g)].map((m) => ({ name: m[1], code: m[2] }));
}

/** What an example says it prints: the `// …` comment after each console.log, in order. */
function promisedOutput(code: string): string[] {
  return code.split('\n').flatMap((l) => {
    const m = /console\.log\(.*\);\s*\/\/ (.*)$/.exec(l);
    return m ? [m[1].trim()] : [];
  });
}

/** The relative links of a markdown text (no URLs, no anchors), without their anchors. */
function relativeLinks(markdown: string): string[] {
  return [...markdown.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1])
    .filter((l) => !/^[a-z]+:/.test(l) && !l.startsWith('#')).map((l) => l.replace(/#.*$/, ''));
}

/** What implementNetwork resolves to with an isolation range, as docs/library.md ("Results") says. */
const SEGMENT_RESULT = '{"status":"success","network.broadcast_uri":"vxlan://6000","network.broadcast_domain_type":"Vxlan"}';

/**
 * Beyond the examples: what a program embedding the router relies on. It compiles only if every type of the
 * kernel seam (RouterKernel and the daemons' controls, FakeKernel.overlay, the engine's mutations) can be named
 * from the package's entry points (no internal path: the exports map forbids one), and implements RouterKernel
 * by delegation to the real kernel, which the engine then runs a network's lifecycle through.
 */
const SURFACE = `import { createRouter } from 'netns-router';
import {
  FakeKernel, RouterEngine, realKernel, requestFromValues, runCommand,
  type ApplyOutcome, type ApplyResult, type CheckResult, type ConfigProblem, type DaemonStatus, type DnsmasqControl,
  type DnsmasqPaths, type HaproxyControl, type HostTable, type Lease, type MetadataControl, type MutationVerdict,
  type NatPlan, type NsOps, type PortForward, type ReconcileScope, type ReleaseGroup, type RenderedDnsmasq,
  type RouterCommand, type RouterKernel, type RouterStatus,
} from 'netns-router/router';
import { NetlinkError, ValidationError } from 'netns-router/netlink';
import * as Root from 'netns-router';
import type { ConntrackFilter, NftExecutor, NftObject } from 'netns-router/nft';

// each exported type is the one the interface uses
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const same: true[] = [
  true as Same<Parameters<RouterKernel['deleteNatConntrack']>[1], NatPlan>,
  true as Same<NatPlan['portForwards'][number], PortForward>,
  true as Same<ReturnType<Parameters<typeof FakeKernel.overlay>[1]['tables']>[number], HostTable>,
  true as Same<Awaited<ReturnType<MetadataControl['status']>>, DaemonStatus | undefined>,
  true as Same<Awaited<ReturnType<MetadataControl['sync']>>, RouterStatus>,
  true as Same<ReturnType<HaproxyControl['check']>, CheckResult>,
  true as Same<CheckResult['problems'][number], ConfigProblem>,
  true as Same<Awaited<ReturnType<HaproxyControl['apply']>>, ApplyOutcome>,
  true as Same<Awaited<ReturnType<DnsmasqControl['apply']>>, ApplyResult>,
  true as Same<Parameters<DnsmasqControl['apply']>[0], RenderedDnsmasq>,
  true as Same<ReturnType<DnsmasqControl['leases']>[number], Lease>,
  true as Same<Parameters<DnsmasqControl['releaseLeases']>[0][number], ReleaseGroup>,
  true as Same<DnsmasqControl['paths'], DnsmasqPaths>,
  true as Same<ReturnType<Parameters<RouterEngine['change']>[2]>, MutationVerdict>,
  true as Same<NonNullable<RouterCommand<unknown>['scope']>, ReconcileScope>,
];
void same;

/** The real kernel, every call counted: a program's own RouterKernel. */
class CountingKernel implements RouterKernel {
  readonly name: string;
  calls = 0;
  constructor(private readonly k: RouterKernel) { this.name = k.name; }
  private n<T>(v: T): T { this.calls++; return v; }
  host(): NsOps { return this.n(this.k.host()); }
  open(ns: string): NsOps { return this.n(this.k.open(ns)); }
  netnsExists(ns: string): boolean { return this.n(this.k.netnsExists(ns)); }
  addNetns(ns: string): void { this.n(this.k.addNetns(ns)); }
  deleteNetns(ns: string): void { this.n(this.k.deleteNetns(ns)); }
  async deleteNetnsThenLinks(ns: string, links: readonly string[]): Promise<void> { this.calls++; await this.k.deleteNetnsThenLinks?.(ns, links); }
  netnsIdentity(ns: string): string | undefined { return this.n(this.k.netnsIdentity(ns)); }
  nft(ns: string | undefined): { ex: NftExecutor; release: () => Promise<void> } { return this.n(this.k.nft(ns)); }
  nftGeneration(ns: string): number { return this.n(this.k.nftGeneration(ns)); }
  deleteNatConntrack(ns: string, before: NatPlan, after: NatPlan): Promise<void> { return this.n(this.k.deleteNatConntrack(ns, before, after)); }
  deleteConntrack(ns: string, filters: ConntrackFilter[]): Promise<void> { return this.n(this.k.deleteConntrack(ns, filters)); }
  gratuitousArps(ns: NsOps, dev: string, ips: readonly string[]): void { this.n(this.k.gratuitousArps(ns, dev, ips)); }
  announceArp(ns: string, want: readonly NftObject[], before: readonly NftObject[] | undefined): void { this.n(this.k.announceArp(ns, want, before)); }
  releaseKept(): void { this.k.releaseKept?.(); }
  netnsEtc(ns: string, path: string, content: string | undefined): void { this.n(this.k.netnsEtc(ns, path, content)); }
  dnsmasq(ns: string, dir: string): DnsmasqControl { return this.n(this.k.dnsmasq(ns, dir)); }
  metadata(stateDir: string): MetadataControl { return this.n(this.k.metadata(stateDir)); }
  haproxy(ns: string, runDir: string): HaproxyControl { return this.n(this.k.haproxy(ns, runDir)); }
}

const stateDir = process.env.STATE_DIR ?? '/var/lib/my-cloud/netns-router';
const hostNetns = process.env.HOST_NETNS;
const devices = { guest: 'eth1', public: 'eth1' };

// a network whose segment the router allocates from its range: implementNetwork resolves to CloudStack's JSON
const router = createRouter({ stateDir, devices, hostNetns, isolation: { kind: 'vxlan', range: '6000-6009' } });
try {
  console.log(await router.implementNetwork({ networkId: 43, gateway: '10.1.3.1', cidr: '10.1.3.0/24' }));
  await router.destroyNetwork({ networkId: 43 });
} finally {
  await router.close();
}

const kernel = new CountingKernel(realKernel(hostNetns !== undefined ? { hostNetns } : {}));
// (exactOptionalPropertyTypes: an optional option may be given as undefined)
const engine = new RouterEngine({ stateDir, devices, kernel, hostNetns, fastNat: { minEntries: undefined } });
const ctx = { networkDetails: {} };
await runCommand(engine, requestFromValues('implement-network', { networkId: 44, vlan: 'vxlan://5044', gateway: '10.1.4.1', cidr: '10.1.4.0/24' }, ctx));
const made = kernel.netnsExists('cs-net-44') && kernel.calls > 0;
await runCommand(engine, requestFromValues('destroy-network', { networkId: 44 }, ctx));
console.log(\`delegating kernel: \${made ? 'implemented' : 'NOT implemented'}, \${kernel.netnsExists('cs-net-44') ? 'NOT destroyed' : 'destroyed'}\`);

// the netlink layer's refusal of bad input is the package's one ValidationError, not a kernel error
console.log(ValidationError === Root.ValidationError && !(new ValidationError('E_INVALID_NAME', 'x', 'x', 'x') instanceof NetlinkError));
`;

function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeout?: number }): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, encoding: 'utf8', timeout: opts.timeout ?? 120_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} (in ${opts.cwd}) failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

test('npm pack ships a working package: installed, type-checked, run, and its router carries packets', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'nr-pkg-'));
  const s = new Scratch();
  const procs: ChildProcess[] = [];
  const stateDir = join(tmp, 'state');
  // npm without the network, the user's cache or its notices
  const npmEnv = {
    ...process.env, npm_config_cache: join(tmp, 'npm-cache'), npm_config_offline: 'true', npm_config_audit: 'false',
    npm_config_fund: 'false', npm_config_update_notifier: 'false',
  };
  try {
    // 1. a fresh copy of the project: no dist/ — only prepack can put it into the tarball
    const copy = join(tmp, 'clone');
    cpSync(root, copy, { recursive: true, filter: (src) => !NOT_IN_A_CLONE.test(relative(root, src)) });
    symlinkSync(modules, join(copy, 'node_modules')); // the build tools (`npm ci` in a real clone)
    // what running the CLI leaves beside its bundle in a developer's tree (cli/bundle.cts: V8's code cache, made
    // for this host's node, and its temporary file): the build keeps the cache file (emptied), npm pack must not take it
    mkdirSync(join(copy, 'dist', 'cli'), { recursive: true });
    writeFileSync(join(copy, 'dist', 'cli', 'netns-router.bundle.cjs.cache'), 'netns-router-code-cache 2\tstale\n');
    writeFileSync(join(copy, 'dist', 'cli', 'netns-router.bundle.cjs.cache.1234.tmp'), '');
    const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: copy, env: npmEnv, timeout: 240_000 })) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = new Set(packed[0].files.map((f) => f.path));
    const tarball = join(tmp, packed[0].filename);
    for (const target of Object.values(pkg.exports)) {
      for (const f of typeof target === 'string' ? [target] : [target.types, target.default]) assert.ok(files.has(f.replace(/^\.\//, '')), `the tarball has ${f}`);
    }
    for (const f of Object.values(pkg.bin)) assert.ok(files.has(f.replace(/^\.\//, '')), `the tarball has the CLI ${f}`);
    // what the README links to travels with it (and what the library page links to)
    for (const [doc, base] of [['README.md', ''], ['docs/library.md', 'docs/']] as const) {
      assert.ok(files.has(doc), `the tarball has ${doc}`);
      for (const link of relativeLinks(readFileSync(join(root, doc), 'utf8'))) {
        const target = relative('.', join(base, link));
        assert.ok(files.has(target) || [...files].some((f) => f.startsWith(`${target}/`)), `${doc} links to ${link}: the tarball has it`);
      }
    }
    assert.equal([...files].filter((f) => /^(test|bench|demo|dist\/(test|bench|demo))\//.test(f)), [], 'no tests or benchmarks');
    // every source map a module names travels with it and carries its sources (the .ts files do not travel)
    for (const f of [...files].filter((f) => f.endsWith('.js'))) {
      const url = /^\/\/# sourceMappingURL=(.+)$/m.exec(readFileSync(join(copy, f), 'utf8'))?.[1];
      if (url === undefined) continue;
      const mapFile = relative('.', join(dirname(f), url));
      assert.ok(files.has(mapFile), `${f} names ${url}: the tarball has it`);
      const map = JSON.parse(readFileSync(join(copy, mapFile), 'utf8')) as { sources: string[]; sourcesContent?: string[] };
      assert.equal(map.sourcesContent?.length, map.sources.length, `${mapFile} carries its sources`);
    }
    assert.equal([...files].filter((f) => /\.(cache|tmp)$/.test(f)), [], 'no code cache of the CLI (nor its temporary file)');

    // 2. a new strict TypeScript NodeNext project installs the tarball (its dependencies linked from ours: offline)
    const app = join(tmp, 'app');
    mkdirSync(join(app, 'src'), { recursive: true });
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'netns-router-user', private: true, type: 'module' }));
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true, skipLibCheck: false, types: ['node'], rootDir: 'src', outDir: 'dist',
      },
      include: ['src'],
    }));
    const deps = ['koffi', 'pino', 'commander', '@types/node'].map((d) => join(modules, d));
    run('npm', ['install', '--no-save', tarball, ...deps], { cwd: app, env: npmEnv });
    const installed = join(app, 'node_modules', pkg.name);
    assert.is(realpathSync(installed), installed, 'the package is installed from the tarball, not linked to this checkout');

    // 3. the examples of docs/library.md, compiled against the installed package
    const ex = examples();
    assert.equal(ex.map((e) => e.name), ['router.ts', 'router-state.ts', 'plan.ts', 'fake-kernel.ts', 'netlink.ts', 'netns.ts', 'nft.ts', 'sys.ts']);
    const imported = new Set(ex.flatMap((e) => [...e.code.matchAll(/from '(netns-router[^']*)'/g)].map((m) => m[1])));
    assert.equal([...imported].sort(), Object.keys(pkg.exports).filter((k) => k !== './package.json').map((k) => `netns-router${k.slice(1)}`).sort(),
      'the examples import every entry point');
    for (const e of ex) writeFileSync(join(app, 'src', e.name), e.code);
    // the README's example is compiled too (not run: it names a real host's devices and state directory)
    const readme = /## Library API\n\n```ts\n([\s\S]*?)```/.exec(readFileSync(join(root, 'README.md'), 'utf8'));
    assert.ok(readme, 'the README has a Library API example');
    writeFileSync(join(app, 'src', 'readme.ts'), readme![1]);
    writeFileSync(join(app, 'src', 'surface.ts'), SURFACE);
    run(process.execPath, [join(modules, 'typescript', 'bin', 'tsc'), '-p', join(app, 'tsconfig.json')], { cwd: app });

    // 4. run them: the router's host is a simulated KVM host (its uplink eth1 leads to an upstream network)
    const { hostNs, upNs, h } = simulatedHost(s);
    s.track('cs-net-42');
    const env = { ...process.env, STATE_DIR: stateDir, HOST_NETNS: hostNs };
    for (const e of ex) {
      const out = run(process.execPath, [join(app, 'dist', e.name.replace(/\.ts$/, '.js'))], { cwd: app, env });
      assert.equal(out.trim().split('\n'), promisedOutput(e.code), `${e.name} prints what docs/library.md says`);
    }
    const surface = run(process.execPath, [join(app, 'dist', 'surface.js')], { cwd: app, env }).trim().split('\n');
    assert.equal(surface, [SEGMENT_RESULT, 'delegating kernel: implemented, destroyed', 'true'], 'surface.ts');
    assert.ok(readFileSync(join(root, 'docs', 'library.md'), 'utf8').includes(`(\`${SEGMENT_RESULT}\`,`), 'docs/library.md states what implementNetwork resolves to with a range');

    // 5. the network the router example built, with packets: a VM behind it, a server upstream
    const vm = addVm(s, h, 'brvx-5001', '10.1.1.10/24', '10.1.1.1');
    procs.push(whoamiServer(vm.ns, 22), whoamiServer(upNs, 9000));
    assert.ok(await waitFor(() => tcpAsk(upNs, '127.0.0.1', 9000) !== '', 5000), 'the upstream server runs');
    assert.ok(await waitFor(() => tcpAsk(vm.ns, '203.0.113.1', 9000) === '203.0.113.10', 5000), 'source NAT: upstream sees the public IP');
    assert.ok(await waitFor(() => tcpAsk(upNs, '203.0.113.10', 2222) === '203.0.113.1', 5000), 'port forward 2222 → the VM\'s 22, opened by the firewall rule');
    assert.is(tcpAsk(upNs, '203.0.113.10', 2223), '', 'control: a port nothing forwards does not answer');

    // 6. the installed CLI takes it down again
    run(join(app, 'node_modules', '.bin', 'netns-router'), ['destroy-network', '--network-id', '42', '--state-dir', stateDir, '--host-netns', hostNs, '--log-file', join(tmp, 'cli.log')], {
      cwd: app, env: { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: 'off' },
    });
    assert.is(tcpAsk(vm.ns, '203.0.113.1', 9000), '', 'after destroy-network the VM reaches nothing');
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    killDaemons({ ns: 'cs-net-42', stateDir });
    s.cleanup();
    rmSync(tmp, { recursive: true, force: true });
  }
});

test.run();
