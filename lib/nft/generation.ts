/**
 * The nftables generation id of a namespace (NFT_MSG_GETGEN over NETLINK_NETFILTER): a counter the kernel
 * bumps on every committed nftables transaction in that namespace, by anyone. Reading it costs one netlink
 * round trip (no listing), so "has anything changed nftables here since our last commit?" is cheap to ask.
 *
 * Wire format (linux/netfilter/nf_tables.h): type = NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN, body =
 * struct nfgenmsg; the reply NFT_MSG_NEWGEN carries NFTA_GEN_ID (be32).
 */
import { NlWriter, parseAttrs } from '../netlink/attrs.js';
import { NETLINK_NETFILTER } from '../netlink/constants.js';
import { NetlinkSocket } from '../netlink/socket.js';
import { netnsIdentity, onBeforeNetnsDelete, runInNetns } from '../netns/namespaces.js';

const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_NEWGEN = 15;
const NFT_MSG_GETGEN = 16;
const NFTA_GEN_ID = 1;
const NFGENMSG_LEN = 4;

/** A socket reading one namespace's nftables generation; reuse it, then close(). */
export class NftGenerationReader {
  private constructor(private readonly sock: NetlinkSocket) {}

  /** Open in `netns` (a named namespace) or the caller's namespace. */
  static open(netns?: string): NftGenerationReader {
    const make = (): NetlinkSocket => NetlinkSocket.open(NETLINK_NETFILTER);
    return new NftGenerationReader(netns !== undefined ? runInNetns(netns, make) : make());
  }

  read(): number {
    const replies = this.sock.request({
      type: (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN,
      body: new NlWriter(16).u8(0).u8(0).u16(0).finish(),
      operation: 'NFT_MSG_GETGEN',
    });
    for (const m of replies) {
      if ((m.type & 0xff) !== NFT_MSG_NEWGEN) continue;
      const id = parseAttrs(m.payload, NFGENMSG_LEN).be32(NFTA_GEN_ID);
      if (id !== undefined) return id;
    }
    throw new Error('NFT_MSG_GETGEN: no generation id in the reply');
  }

  close(): void {
    this.sock.close();
  }
}

/**
 * Readers kept open per namespace: closing a NETLINK_NETFILTER socket costs ~7 ms on this kernel, which every
 * command paid two or three times. Checked against the namespace's identity before each use (another process
 * may have replaced the namespace), closed before lib/netns deletes a namespace, at most MAX_READERS open.
 */
const readers = new Map<string, { reader: NftGenerationReader; identity: string | undefined }>();
const MAX_READERS = 32;

function drop(key: string): void {
  const e = readers.get(key);
  if (!e) return;
  readers.delete(key);
  e.reader.close();
}

onBeforeNetnsDelete((name) => drop(name));

/** The current nftables generation id of `netns` (or of the caller's namespace). */
export function nftGeneration(netns?: string): number {
  const key = netns ?? '';
  const identity = netns !== undefined ? netnsIdentity(netns) : '';
  let e = readers.get(key);
  if (e && e.identity !== identity) {
    drop(key);
    e = undefined;
  }
  if (!e) {
    e = { reader: NftGenerationReader.open(netns), identity };
    readers.set(key, e);
    while (readers.size > MAX_READERS) drop(readers.keys().next().value!);
  } else {
    readers.delete(key); // most recently used last
    readers.set(key, e);
  }
  try {
    return e.reader.read();
  } catch (err) {
    drop(key);
    throw err;
  }
}
