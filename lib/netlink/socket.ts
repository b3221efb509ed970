/**
 * A netlink socket: request/ACK, dumps (NLM_F_MULTI … NLMSG_DONE, restarted on NLM_F_DUMP_INTR), batches,
 * extended ACK and strict checking always on. Synchronous: a request+ACK round trip costs microseconds, far
 * less than any event-loop hop. The socket belongs to the network namespace the thread was in when it was
 * created (see lib/netns for creating one inside another namespace).
 */
import { libc } from '../sys/index.js';
import { SysError } from '../sys/errors.js';
import {
  NETLINK_ROUTE, NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP,
  NETLINK_DROP_MEMBERSHIP,
  NLMSG_DONE, NLMSG_ERROR, NLMSG_OVERRUN, NLMSG_NOOP, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP,
  NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSGERR_ATTR_MSG, NLMSGERR_ATTR_OFFS,
} from './constants.js';
import { NetlinkError, NetlinkProtocolError } from './errors.js';
import { parseAttrs } from './attrs.js';
import { runInNetnsFd } from '../sys/setns.js';
import { monotonicMs } from '../util/clock.js';

/** Length of a netlink message header (struct nlmsghdr). */
export const NLMSG_HDRLEN = 16;

/** One received netlink message. `payload` excludes the 16-byte header. */
export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Buffer;
}

/** A request to send: message type, extra flags (NLM_F_REQUEST/ACK are added), body, and its description. */
export interface NlRequest {
  type: number;
  flags?: number;
  body: Uint8Array;
  /** Human description used in errors, e.g. "RTM_NEWLINK vh-100-2a (veth)". */
  operation: string;
}

/** Options of a netlink socket: receive buffer, receive timeout, dump retries. */
export interface NetlinkSocketOptions {
  /** Receive buffer in bytes (SO_RCVBUFFORCE as root, else SO_RCVBUF). Default 8 MiB. */
  rcvbuf?: number;
  /** Receive timeout in ms so that a lost reply can never hang the process. Default 30 s. */
  timeoutMs?: number;
  /** Dump restarts on NLM_F_DUMP_INTR before giving up. Default 10. */
  dumpRetries?: number;
}

const RECV_BUF = 1 << 18; // 256 KiB: larger than any rtnetlink datagram (dump skbs are ≤ 32 KiB)
const MSG_TRUNC = 0x20;
const EINTR = 4;
const EAGAIN = 11;
const ENOBUFS = 105;
const ETIMEDOUT = 110;
/**
 * A batch is sent in datagrams of at most this many bytes / requests: one datagram must fit the socket's send
 * buffer (EMSGSIZE otherwise), and the ACKs of one datagram must fit the receive buffer (they are queued before
 * we read any; an overflow drops them and reports ENOBUFS).
 */
const BATCH_MAX_BYTES = 64 * 1024;
const BATCH_MAX_MSGS = 256;
/** Idle sockets kept for off-thread requests (each in-flight request needs its own). */
const ASYNC_IDLE_MAX = 2;
/** requestUntilAnnounced's sends still on a worker, in the whole process, and at most how many. */
let tailsInFlight = 0;
const TAILS_MAX = 64;

function netlinkSockaddr(): Buffer {
  const sa = Buffer.alloc(12);
  sa.writeUInt16LE(libc.AF_NETLINK, 0);
  return sa;
}

function encodeRequest(r: NlRequest, seq: number, extraFlags: number): Buffer {
  const len = NLMSG_HDRLEN + r.body.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt32LE(len, 0);
  out.writeUInt16LE(r.type, 4);
  out.writeUInt16LE(NLM_F_REQUEST | extraFlags | (r.flags ?? 0), 6);
  out.writeUInt32LE(seq, 8);
  out.set(r.body, NLMSG_HDRLEN);
  return out;
}

/** Split a datagram into netlink messages. */
export function parseMessages(buf: Buffer, len: number): NlMessage[] {
  const out: NlMessage[] = [];
  let p = 0;
  while (p + NLMSG_HDRLEN <= len) {
    const mlen = buf.readUInt32LE(p);
    if (mlen < NLMSG_HDRLEN || p + mlen > len) throw new NetlinkProtocolError(`malformed netlink message at ${p} (length ${mlen})`);
    out.push({
      type: buf.readUInt16LE(p + 4),
      flags: buf.readUInt16LE(p + 6),
      seq: buf.readUInt32LE(p + 8),
      pid: buf.readUInt32LE(p + 12),
      payload: Buffer.from(buf.subarray(p + NLMSG_HDRLEN, p + mlen)), // copy: the receive buffer is reused
    });
    p += (mlen + 3) & ~3;
  }
  return out;
}

/** Decode an NLMSG_ERROR payload: errno (positive, 0 = ACK) and extended-ACK text/offset. */
export function decodeError(m: NlMessage): { errno: number; extAck?: string; offset?: number } {
  const err = m.payload.readInt32LE(0);
  const errno = -err;
  if (!(m.flags & NLM_F_ACK_TLVS)) return { errno };
  // After the errno comes the original header; the original payload too unless the ACK is capped.
  const origLen = m.payload.readUInt32LE(4);
  const tlvStart = 4 + (m.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : (origLen + 3) & ~3);
  if (tlvStart > m.payload.length) return { errno };
  const attrs = parseAttrs(m.payload, tlvStart);
  const text = attrs.string(NLMSGERR_ATTR_MSG);
  const offs = attrs.u32(NLMSGERR_ATTR_OFFS);
  const r: { errno: number; extAck?: string; offset?: number } = { errno };
  if (text) r.extAck = text;
  if (offs !== undefined) r.offset = offs;
  return r;
}

type Result = { replies: NlMessage[]; error?: NetlinkError };

/**
 * A netlink socket of one protocol in the namespace it was opened in: synchronous request/ACK,
 * dumps (restarted on NLM_F_DUMP_INTR), batches; extended ACK and strict checking on. Errors: NetlinkError.
 */
export class NetlinkSocket {
  readonly fd: number;
  readonly protocol: number;
  private seq: number;
  private closed = false;
  private readonly rbuf = Buffer.alloc(RECV_BUF);
  private readonly dumpRetries: number;
  private readonly opts: NetlinkSocketOptions;
  /** Sockets in the same namespace for off-thread requests: idle ones, and those a worker is using. */
  private readonly asyncIdle: NetlinkSocket[] = [];
  private readonly asyncBusy = new Set<NetlinkSocket>();
  /** A socket of the same namespace that joins a multicast group during requestUntilAnnounced. */
  private watcher: NetlinkSocket | undefined;
  /** Kernel work of requestUntilAnnounced still running on a worker after the call returned. */
  private readonly tails = new Set<Promise<void>>();

  private constructor(fd: number, protocol: number, opts: NetlinkSocketOptions) {
    this.fd = fd;
    this.protocol = protocol;
    this.seq = (Math.random() * 0x7fffffff) >>> 0;
    this.dumpRetries = opts.dumpRetries ?? 10;
    this.opts = opts;
  }

  /** Open a netlink socket in the calling thread's current network namespace. */
  static open(protocol = NETLINK_ROUTE, opts: NetlinkSocketOptions = {}): NetlinkSocket {
    const fd = libc.socket(libc.AF_NETLINK, libc.SOCK_RAW, protocol);
    try {
      const rcvbuf = opts.rcvbuf ?? 8 << 20;
      try {
        libc.setsockoptInt(fd, libc.SOL_SOCKET, libc.SO_RCVBUFFORCE, rcvbuf);
      } catch {
        libc.setsockoptInt(fd, libc.SOL_SOCKET, libc.SO_RCVBUF, rcvbuf);
      }
      libc.setsockoptInt(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
      libc.setsockoptInt(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
      if (protocol === NETLINK_ROUTE) libc.setsockoptInt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1);
      const tv = Buffer.alloc(16);
      const ms = opts.timeoutMs ?? 30_000;
      tv.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
      tv.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
      libc.setsockopt(fd, libc.SOL_SOCKET, libc.SO_RCVTIMEO, tv);
      libc.bind(fd, netlinkSockaddr());
    } catch (e) {
      libc.close(fd);
      throw e;
    }
    return new NetlinkSocket(fd, protocol, opts);
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0 || 1;
    return this.seq;
  }

  private ensureOpen(): void {
    if (this.closed) throw new NetlinkProtocolError('netlink socket is closed', 'EBADF');
  }

  private sendRaw(buf: Buffer): void {
    // no address: an unconnected netlink socket sends to the kernel (port 0)
    libc.sendto(this.fd, buf, null);
  }

  private recvBatch(operation: string): NlMessage[] {
    for (;;) {
      const n = libc.recvRaw(this.fd, this.rbuf, MSG_TRUNC);
      if (n < 0) {
        const errno = -n;
        // A signal (e.g. SIGCHLD of a child process) interrupts recv: with SO_RCVTIMEO set it is not restarted.
        if (errno === EINTR) continue;
        if (errno === EAGAIN) throw new NetlinkError(ETIMEDOUT, `${operation}: no reply from the kernel within the timeout`);
        if (errno === ENOBUFS) throw new NetlinkError(ENOBUFS, `${operation}: receive buffer overrun (ENOBUFS)`);
        throw new SysError('recv', errno, operation);
      }
      if (n > this.rbuf.length) throw new NetlinkProtocolError(`${operation}: reply of ${n} bytes truncated`);
      return parseMessages(this.rbuf, n);
    }
  }

  /**
   * Send one request with NLM_F_ACK and wait for its ACK. Returns the reply messages that came before the
   * ACK (for GET requests or NLM_F_ECHO). Throws NetlinkError with the kernel's errno and extended ACK.
   */
  request(req: NlRequest): NlMessage[] {
    const [r] = this.batch([req]);
    if (r.error) throw r.error;
    return r.replies;
  }

  /**
   * Send several requests (each with its own seq and ACK) and collect per-request results, in order. They go
   * out in as few datagrams as the socket buffers allow; the kernel processes them in order and does not stop
   * at a failure. With `stopOnError` the first failure is thrown after all ACKs are read.
   */
  batch(reqs: NlRequest[], opts: { stopOnError?: boolean } = {}): Result[] {
    this.ensureOpen();
    const results: Result[] = [];
    let i = 0;
    while (i < reqs.length) {
      const chunk: NlRequest[] = [];
      const seqs: number[] = [];
      const parts: Buffer[] = [];
      let bytes = 0;
      while (i < reqs.length && chunk.length < BATCH_MAX_MSGS) {
        const seq = this.nextSeq();
        const m = encodeRequest(reqs[i], seq, NLM_F_ACK);
        if (chunk.length > 0 && bytes + m.length > BATCH_MAX_BYTES) break;
        chunk.push(reqs[i]);
        seqs.push(seq);
        parts.push(m);
        bytes += m.length;
        i++;
      }
      this.sendRaw(parts.length === 1 ? parts[0] : Buffer.concat(parts, bytes));
      const opName = reqs.length === 1 ? reqs[0].operation : `batch of ${reqs.length}`;
      results.push(...this.collect(chunk, seqs, opName));
    }
    if (opts.stopOnError) {
      const failed = results.find((r) => r.error);
      if (failed) throw failed.error;
    }
    return results;
  }

  /** Read until every request of `seqs` has its ACK (or NLMSG_DONE); replies with other seqs are stale. */
  private collect(reqs: NlRequest[], seqs: number[], opName: string): Result[] {
    const bySeq = new Map<number, number>();
    seqs.forEach((s, i) => bySeq.set(s, i));
    const results: Array<Result & { done: boolean }> = reqs.map(() => ({ replies: [], done: false }));
    let pending = reqs.length;
    while (pending > 0) {
      for (const m of this.recvBatch(opName)) {
        const i = bySeq.get(m.seq);
        if (i === undefined) continue; // stale reply of an earlier, abandoned request
        const res = results[i];
        if (res.done) continue;
        if (m.type === NLMSG_ERROR) {
          const { errno, extAck, offset } = decodeError(m);
          if (errno !== 0) res.error = new NetlinkError(errno, reqs[i].operation, extAck, offset);
          res.done = true;
          pending--;
        } else if (m.type === NLMSG_DONE) {
          res.done = true;
          pending--;
        } else if (m.type !== NLMSG_NOOP && m.type !== NLMSG_OVERRUN) {
          res.replies.push(m);
        }
      }
    }
    return results.map((r) => (r.error ? { replies: r.replies, error: r.error } : { replies: r.replies }));
  }

  /**
   * `request()` with the kernel's work done off the event loop: rtnetlink executes a request inside the
   * sender's sendto(), so a slow one (deleting a link waits for an RCU grace period, ~20 ms) would block the
   * thread. The send runs on koffi's worker pool through a second socket of the same namespace (sockets are
   * bound to their namespace at creation, so a worker thread may use them; this socket stays free for
   * synchronous use meanwhile). Concurrent calls each get their own socket.
   */
  async requestAsync(req: NlRequest): Promise<NlMessage[]> {
    this.ensureOpen();
    const s = this.asyncIdle.pop() ?? this.openSibling();
    this.asyncBusy.add(s);
    let healthy = true;
    try {
      const seq = s.nextSeq();
      const msg = encodeRequest(req, seq, NLM_F_ACK);
      for (let turns = 0; ; turns++) {
        let sent: Promise<number>;
        try {
          sent = libc.sendtoAsync(s.fd, msg, null);
        } catch (e) {
          // koffi's calls in flight at their limit (a synchronous stretch queued many): their completions, queued
          // on the event loop, free slots — wait a turn of it (a few, then give up with koffi's text)
          if (turns >= 100) throw e;
          await new Promise((r) => setImmediate(r));
          continue;
        }
        await sent;
        break;
      }
      // the kernel has answered inside sendto: the ACK is queued, this receive does not wait
      const [r] = s.collect([req], [seq], req.operation);
      if (r.error) throw r.error;
      return r.replies;
    } catch (e) {
      if (!(e instanceof NetlinkError) || e.errno === ETIMEDOUT || e.errno === ENOBUFS) healthy = false;
      throw e;
    } finally {
      this.releaseAsync(s, healthy);
    }
  }

  /**
   * `request()` that returns as soon as the kernel announces on multicast group `group` that the request took
   * effect (`announced` picks the announcement out), or at its ACK, whichever comes first; an error ACK is thrown.
   * Why: rtnetlink runs a request inside the sender's sendto(), and for a link delete the kernel announces
   * RTM_DELLINK once the link is unregistered (no longer listed) but then, still inside sendto, waits for RCU
   * callbacks and the device's last references (rcu_barrier, 10–30 ms) before it ACKs. The send runs on koffi's
   * worker pool (libuv's) through a socket of the pool (as in requestAsync); this thread waits in poll(2) on the
   * announcement and the ACK. After an early return the worker finishes the kernel's wait and its socket returns
   * to the pool. An announcement lost to a receive overrun means waiting for the ACK.
   *
   * 'stalled': neither came within `stallMs` — the pool has not run the send yet (its threads busy), or the kernel
   * is slow. The request stays queued and may still run (it cannot be withdrawn): only a request that is harmless
   * when repeated after it took effect by other means may be sent this way (a delete by index: ENODEV then,
   * ignored). When koffi refuses to queue the call (its limit of calls in flight), the request runs here,
   * synchronously: 'acked'.
   */
  requestUntilAnnounced(req: NlRequest, group: number, announced: (m: NlMessage) => boolean, opts: { stallMs?: number } = {}): 'announced' | 'acked' | 'stalled' {
    this.ensureOpen();
    const w = (this.watcher ??= this.openSibling());
    const s = this.asyncIdle.pop() ?? this.openSibling();
    this.asyncBusy.add(s);
    const seq = s.nextSeq();
    let acked = false;
    let healthy = true;
    let tail: Promise<void> | undefined;
    try {
      w.receiveNow(); // drop the announcements of an earlier watch
      libc.setsockoptInt(w.fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group);
      try {
        let sent: Promise<number> | undefined;
        // at most TAILS_MAX of these in flight in the process: koffi's slots (256) are shared with every other
        // asynchronous call (nft, waitpid, close), and a slot frees only when its completion runs on the event loop
        if (tailsInFlight < TAILS_MAX) {
          try {
            sent = libc.sendtoAsync(s.fd, encodeRequest(req, seq, NLM_F_ACK), null);
          } catch {
            sent = undefined; // not queued (koffi's limit of calls in flight)
          }
        }
        if (!sent) {
          this.request(req); // here and now, the kernel's wait included
          return 'acked';
        }
        tailsInFlight++;
        // the kernel has queued the ACK by the time sendto returns: reading it then does not wait
        const t: Promise<void> = sent
          .then(() => { if (!acked) s.collect([req], [seq], req.operation); }, () => { healthy = false; })
          .catch(() => { healthy = false; })
          .finally(() => { tailsInFlight--; this.tails.delete(t); this.releaseAsync(s, healthy && !s.closed); });
        tail = t;
        this.tails.add(t);
        const deadline = monotonicMs() + (opts.stallMs ?? this.opts.timeoutMs ?? 30_000);
        for (;;) {
          const left = deadline - monotonicMs();
          if (left <= 0) return 'stalled';
          const ready = libc.pollReadable([w.fd, s.fd], left);
          if (ready.includes(s.fd)) {
            acked = true;
            const [r] = s.collect([req], [seq], req.operation);
            if (r.error) throw r.error;
            return 'acked';
          }
          if (ready.includes(w.fd) && w.receiveNow().some(announced)) return 'announced';
        }
      } finally {
        libc.setsockoptInt(w.fd, SOL_NETLINK, NETLINK_DROP_MEMBERSHIP, group);
      }
    } finally {
      // no send queued: the pool's socket is free again at once (a queued one frees it when the worker is done)
      if (!tail) this.releaseAsync(s, healthy);
    }
  }

  /** Settles when the kernel work that requestUntilAnnounced left running on workers has ended. */
  async whenIdle(): Promise<void> {
    while (this.tails.size) await Promise.all([...this.tails]);
  }

  /** A socket of requestAsync/requestUntilAnnounced is done: back to the idle pool, or closed. */
  private releaseAsync(s: NetlinkSocket, healthy: boolean): void {
    this.asyncBusy.delete(s);
    if (this.closed || !healthy || this.asyncIdle.length >= ASYNC_IDLE_MAX) s.close();
    else this.asyncIdle.push(s);
  }

  /** Whatever is queued, without waiting; a receive overrun (lost messages) reads as nothing. */
  private receiveNow(): NlMessage[] {
    const out: NlMessage[] = [];
    for (;;) {
      const n = libc.recvRaw(this.fd, this.rbuf, MSG_TRUNC | libc.MSG_DONTWAIT);
      if (n === -EINTR || n === -ENOBUFS) continue;
      if (n < 0) return out;
      if (n <= this.rbuf.length) out.push(...parseMessages(this.rbuf, n));
    }
  }

  /** A new socket with the same protocol and options in this socket's namespace (which may not be ours). */
  openSibling(): NetlinkSocket {
    const ns = this.netnsFd();
    try {
      return runInNetnsFd(ns, () => NetlinkSocket.open(this.protocol, this.opts));
    } finally {
      libc.close(ns);
    }
  }

  /** An fd on the network namespace this socket belongs to (the caller closes it). */
  netnsFd(): number {
    this.ensureOpen();
    return libc.socketNetns(this.fd);
  }

  /** A dump (NLM_F_DUMP): all messages up to NLMSG_DONE; restarted when the kernel flags NLM_F_DUMP_INTR. */
  dump(req: NlRequest): NlMessage[] {
    this.ensureOpen();
    for (let attempt = 0; ; attempt++) {
      const seq = this.nextSeq();
      this.sendRaw(encodeRequest(req, seq, NLM_F_DUMP));
      const out: NlMessage[] = [];
      let interrupted = false;
      let done = false;
      while (!done) {
        for (const m of this.recvBatch(req.operation)) {
          if (m.seq !== seq) continue;
          if (m.flags & NLM_F_DUMP_INTR) interrupted = true;
          if (m.type === NLMSG_DONE) {
            // NLMSG_DONE carries an int: a negative errno if the dump failed midway
            if (m.payload.length >= 4) {
              const err = m.payload.readInt32LE(0);
              if (err < 0) {
                // NLMSG_DONE: the int is followed directly by extended-ACK TLVs (no echoed header)
                const tl = m.flags & NLM_F_ACK_TLVS ? parseAttrs(m.payload, 4) : undefined;
                throw new NetlinkError(-err, req.operation, tl?.string(NLMSGERR_ATTR_MSG), tl?.u32(NLMSGERR_ATTR_OFFS));
              }
            }
            done = true;
            break;
          }
          if (m.type === NLMSG_ERROR) {
            const { errno, extAck, offset } = decodeError(m);
            if (errno !== 0) throw new NetlinkError(errno, req.operation, extAck, offset);
            done = true;
            break;
          }
          if (m.type === NLMSG_NOOP || m.type === NLMSG_OVERRUN) continue;
          out.push(m);
        }
      }
      if (!interrupted) return out;
      if (attempt >= this.dumpRetries) throw new NetlinkError(EINTR, `${req.operation}: dump kept being interrupted (NLM_F_DUMP_INTR)`);
    }
  }

  /** Close the socket. Off-thread requests still running finish on their own sockets, closed afterwards. */
  /**
   * Close the socket (its idle siblings and watcher too). `offThread`: its own descriptor on a worker thread — a
   * NETLINK_NETFILTER socket's release waits for nf_tables' clean-up after a commit that deleted anything (5-20 ms,
   * libc.closeAsync); the event loop goes on.
   */
  close(opts: { offThread?: boolean } = {}): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.asyncIdle.splice(0)) s.close();
    this.watcher?.close();
    if (opts.offThread) void libc.closeAsync(this.fd).catch(() => { /* EBADF cannot happen: ours alone */ });
    else libc.close(this.fd);
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
