/**
 * Minimal iperf-like TCP tool for the data-path benchmark (run as its own process inside a namespace):
 *
 *   node tcp-tool.js server PORT                 stream sink on PORT, request/response on PORT+1
 *   node tcp-tool.js stream HOST PORT SECONDS    send as fast as possible; prints {"bytes","seconds","bps"}
 *                                                as counted by the server (received bytes / receive time)
 *   node tcp-tool.js connrate HOST PORT SECONDS CONCURRENCY
 *                                                open short connections (1 byte each way, then close) with
 *                                                CONCURRENCY in flight; prints {"connections","seconds","rate","errors"}
 *
 * Only addresses of the benchmark's own namespaces are used. Bounded by SECONDS; every socket closes.
 */
import { createServer, connect, type Socket } from 'node:net';

const [mode, ...rest] = process.argv.slice(2);
const CHUNK = Buffer.alloc(256 * 1024, 0x61);

function server(port: number): void {
  // stream sink: count bytes; on the client's end, answer with what was received
  createServer((s) => {
    let bytes = 0;
    let first = 0;
    s.on('data', (d: Buffer) => {
      if (!first) first = performance.now();
      bytes += d.length;
    });
    s.on('end', () => {
      const seconds = first ? (performance.now() - first) / 1000 : 0;
      s.end(JSON.stringify({ bytes, seconds }));
    });
    s.on('error', () => s.destroy());
  }).listen(port, '0.0.0.0');
  // request/response: one byte in, one byte out, close
  createServer({ noDelay: true }, (s) => {
    s.once('data', () => s.end('y'));
    s.on('error', () => s.destroy());
  }).listen(port + 1, '0.0.0.0');
  process.stdout.write('ready\n');
}

function stream(host: string, port: number, seconds: number): void {
  const s = connect({ host, port });
  let reply = '';
  let stop = false;
  const write = (): void => {
    while (!stop) {
      if (!s.write(CHUNK)) {
        s.once('drain', write);
        return;
      }
    }
  };
  s.on('connect', () => {
    setTimeout(() => {
      stop = true;
      s.end();
    }, seconds * 1000);
    write();
  });
  s.on('data', (d: Buffer) => { reply += d.toString(); });
  s.on('end', () => {
    const r = JSON.parse(reply) as { bytes: number; seconds: number };
    process.stdout.write(`${JSON.stringify({ bytes: r.bytes, seconds: r.seconds, bps: (r.bytes * 8) / r.seconds })}\n`);
  });
  s.on('error', (e) => {
    process.stdout.write(`${JSON.stringify({ error: e.message })}\n`);
    process.exitCode = 1;
  });
}

function connrate(host: string, port: number, seconds: number, concurrency: number): void {
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let done = 0;
  let errors = 0;
  let inFlight = 0;
  const one = (): void => {
    if (performance.now() >= end) {
      if (inFlight === 0) finish();
      return;
    }
    inFlight++;
    const s: Socket = connect({ host, port: port + 1, noDelay: true });
    let got = false;
    s.on('connect', () => s.write('x'));
    s.on('data', () => { got = true; });
    s.on('close', () => {
      inFlight--;
      if (got) done++;
      else errors++;
      one();
    });
    s.on('error', () => s.destroy());
    s.setTimeout(2000, () => s.destroy());
  };
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    const secs = (performance.now() - t0) / 1000;
    process.stdout.write(`${JSON.stringify({ connections: done, seconds: secs, rate: done / secs, errors })}\n`);
  };
  for (let i = 0; i < concurrency; i++) one();
}

switch (mode) {
  case 'server': server(Number(rest[0])); break;
  case 'stream': stream(rest[0], Number(rest[1]), Number(rest[2])); break;
  case 'connrate': connrate(rest[0], Number(rest[1]), Number(rest[2]), Number(rest[3] ?? 4)); break;
  default:
    process.stderr.write('usage: tcp-tool.js server PORT | stream HOST PORT SECONDS | connrate HOST PORT SECONDS CONCURRENCY\n');
    process.exitCode = 1;
}
