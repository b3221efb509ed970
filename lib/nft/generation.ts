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
import { runInNetns } from '../sys/setns.js';
import { NamespaceCache } from '../netns/namespace-cache.js';

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

  /** Close the socket; `offThread`: on a worker thread (NetlinkSocket.close). */
  close(opts: { offThread?: boolean } = {}): void {
    this.sock.close(opts);
  }
}

/**
 * Readers kept open per namespace (NamespaceCache: identity-checked, closed before their namespace is deleted,
 * at most 32): closing a NETLINK_NETFILTER socket after a commit that deleted anything waits for nf_tables'
 * clean-up of it (5-20 ms), which every command paid two or three times — and which a reader closed because its
 * router is being destroyed now pays on a worker thread, not on a resident engine's event loop.
 */
const readers = new NamespaceCache<NftGenerationReader>(32, (r) => r.close({ offThread: true }));

/** The current nftables generation id of `netns` (or of the caller's namespace). */
export function nftGeneration(netns?: string): number {
  const reader = readers.get(netns, () => NftGenerationReader.open(netns));
  try {
    return reader.read();
  } catch (err) {
    readers.drop(netns);
    throw err;
  }
}
