/**
 * UDP peer for the traffic tests (run inside a namespace with nsenter):
 *   server ADDR:PORT [ADDR:PORT…]  answer every datagram with the "ADDR:PORT" it arrived on; prints "ready".
 *   client SRC:SPORT DST:DPORT     for each stdin line, send it from the fixed source and print the answer
 *                                  (or "timeout" after 1 s), so one conntrack entry carries the whole flow.
 */
import { createSocket, type Socket } from 'node:dgram';
import { createInterface } from 'node:readline';

function hostPort(s: string): [string, number] {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i), Number(s.slice(i + 1))];
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'server') {
  let bound = 0;
  for (const spec of rest) {
    const [addr, port] = hostPort(spec);
    const sock = createSocket('udp4');
    sock.on('message', (_msg, rinfo) => sock.send(`${addr}:${port}`, rinfo.port, rinfo.address));
    sock.bind(port, addr, () => {
      if (++bound === rest.length) console.log('ready');
    });
  }
} else if (mode === 'client') {
  const [src, sport] = hostPort(rest[0]);
  const [dst, dport] = hostPort(rest[1]);
  const sock: Socket = createSocket('udp4');
  let waiting: ((s: string) => void) | undefined;
  sock.on('message', (msg) => {
    const w = waiting;
    waiting = undefined;
    w?.(msg.toString());
  });
  sock.bind(sport, src, () => {
    console.log('ready');
    const rl = createInterface({ input: process.stdin });
    let chain = Promise.resolve();
    rl.on('line', (line) => {
      chain = chain.then(() => new Promise<void>((resolve) => {
        const timer = setTimeout(() => { waiting = undefined; console.log('timeout'); resolve(); }, 1000);
        waiting = (s) => { clearTimeout(timer); console.log(s); resolve(); };
        sock.send(line, dport, dst);
      }));
    });
    rl.on('close', () => { void chain.then(() => sock.close()); });
  });
} else {
  console.error('usage: udp-peer server ADDR:PORT… | client SRC:SPORT DST:DPORT');
  process.exit(2);
}
