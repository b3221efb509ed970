/**
 * Link types: what you create is what you read back. A discriminated union on `kind` with the attributes all
 * links share (name, MTU, MAC, master, up, alias, namespace) and each kind's own fields.
 */

/** Where a link lives or moves to: a named namespace (/run/netns/NAME), an open namespace fd, or a pid's. */
export type NetnsRef = { netns: string } | { fd: number } | { pid: number };

/** What every link has: name, MTU, MAC, master, administrative state, alias, queue length, namespace. */
export interface LinkAttrs {
  name: string;
  mtu?: number;
  /** MAC address "aa:bb:cc:dd:ee:ff". */
  mac?: string;
  /** Bridge (or bond) this link is enslaved to, by name or index. */
  master?: string | number;
  /** Administrative state; default down for new links, as with `ip link add`. */
  up?: boolean;
  /** IFLA_IFALIAS, free text (≤ 255 bytes). */
  alias?: string;
  txqlen?: number;
  /** Create the link directly in (or move it to) this namespace. */
  namespace?: NetnsRef;
}

/** The other end of a veth pair, created with it (its namespace may differ). */
export interface VethPeer {
  name: string;
  mac?: string;
  mtu?: number;
  up?: boolean;
  /** Namespace of the peer end (e.g. the router namespace while this end stays on the host). */
  namespace?: NetnsRef;
}

/** A veth pair: this end and its `peer`. */
export interface Veth extends LinkAttrs {
  kind: 'veth';
  peer: VethPeer;
}

/** A Linux bridge and its options (STP, VLAN filtering, forward delay, ageing, multicast snooping). */
export interface Bridge extends LinkAttrs {
  kind: 'bridge';
  stp?: boolean;
  /** Needs kernel support (EOPNOTSUPP on kernels without CONFIG_BRIDGE_VLAN_FILTERING). */
  vlanFiltering?: boolean;
  vlanDefaultPvid?: number;
  /** Seconds (IFLA_BR_FORWARD_DELAY is in centiseconds on the wire). */
  forwardDelay?: number;
  /** Seconds. */
  ageingTime?: number;
  mcastSnooping?: boolean;
}

/** The VLAN tag's protocol: 802.1Q (default) or 802.1ad (QinQ). */
export type VlanProtocol = '802.1Q' | '802.1ad';

/** An 802.1Q/802.1ad VLAN device on a parent link (needs the kernel's 8021q). */
export interface Vlan extends LinkAttrs {
  kind: 'vlan';
  /** Lower device, by name or index. */
  parent: string | number;
  /** 1–4094 (0 is accepted by the kernel for priority tagging). */
  id: number;
  protocol?: VlanProtocol;
}

/** A VXLAN device: VNI, local/remote or multicast group, underlay device, UDP port. */
export interface Vxlan extends LinkAttrs {
  kind: 'vxlan';
  vni: number;
  local?: string;
  /** Unicast remote (mutually exclusive with group). */
  remote?: string;
  /** Multicast group (needs `dev`). */
  group?: string;
  /** Underlay device, by name or index. */
  dev?: string | number;
  /** UDP destination port; the kernel's default is 8472, IANA's 4789. */
  dstPort?: number;
  learning?: boolean;
  ttl?: number;
}

/** A macvlan's mode (`ip link add … type macvlan mode …`). */
export type MacvlanMode = 'private' | 'vepa' | 'bridge' | 'passthru' | 'source';

/** A macvlan device on a parent link. */
export interface Macvlan extends LinkAttrs {
  kind: 'macvlan';
  parent: string | number;
  mode: MacvlanMode;
}

/** Any other link kind read back from the kernel (loopback, physical NICs, tun, …). Not creatable. */
export interface Device extends LinkAttrs {
  kind: 'device';
  /** IFLA_INFO_KIND when the kernel reported one (e.g. "tun"), else undefined for physical/loopback. */
  rawKind?: string;
}

/** What can be created. */
export type LinkSpec = Veth | Bridge | Vlan | Vxlan | Macvlan;
/** The kinds of link that can be created: `veth`, `bridge`, `vlan`, `vxlan`, `macvlan`. */
export type LinkKind = LinkSpec['kind'];

/** Kernel-side facts present on every link read back. */
export interface LinkState {
  index: number;
  /** IFF_* flags. */
  flags: number;
  up: boolean;
  /** Carrier present (IFF_LOWER_UP). */
  lowerUp: boolean;
  operState: string;
  mtu: number;
  mac?: string;
  masterIndex?: number;
  /** IFLA_LINK: parent (vlan/macvlan) or peer (veth) index, possibly in another namespace. */
  linkIndex?: number;
  /** IFLA_LINK_NETNSID: the peer/parent lives in another namespace known by this id. */
  linkNetnsId?: number;
}

/** A link as read back: its spec (same union as created) plus kernel state. Names of master/parent/peer are
 * resolved when they live in the same namespace; otherwise the index is given. */
export type Link = (
  | (Omit<Veth, 'peer' | 'namespace'> & { peer: { name?: string; index?: number; netnsId?: number } })
  | Omit<Bridge, 'namespace'>
  | Omit<Vlan, 'namespace'>
  | Omit<Vxlan, 'namespace'>
  | Omit<Macvlan, 'namespace'>
  | Omit<Device, 'namespace'>
) & LinkState;

/** Attributes `linkSet` can change on an existing link. */
export interface LinkChange {
  up?: boolean;
  mtu?: number;
  mac?: string;
  /** Enslave to this bridge, or null to release. */
  master?: string | number | null;
  /** Rename (the link must be down). */
  name?: string;
  alias?: string;
  txqlen?: number;
  /** Move to another namespace. */
  namespace?: NetnsRef;
}

/** The kernel's interface name buffer size: names are at most IFNAMSIZ - 1 = 15 bytes. */
export const IFNAMSIZ = 16;

/** Validate an interface name like the kernel does (dev_valid_name): 1–15 bytes, no '/', ':' or whitespace. */
export function validIfName(name: string): boolean {
  return typeof name === 'string' && name.length > 0 && Buffer.byteLength(name) < IFNAMSIZ &&
    name !== '.' && name !== '..' && !/[/:\s]/.test(name);
}
