/**
 * What guests' own agents read besides the CloudStack layout, built from what the router knows (pure; the
 * module writes them into each VM's directory, the daemon serves them — lib/services/metadata/agent-layouts.ts):
 *
 *   openstack/meta_data.json     the VM's identity, host name, keys, zone (OpenStack format)
 *   openstack/network_data.json  every NIC of the VM the router knows: links, networks, DNS (OpenStack format)
 *   ec2.json                     the EC2 meta-data tree (placement/, public-keys/N=name, network/interfaces/…)
 *
 * Sources, per key (docs/metadata.md has the full table):
 *   vm_data rows (save-vm-data, save-sshkey, restore-network): instance-id / vm-id → uuid, local-hostname →
 *     hostname and name, availability-zone, public-keys, cloud-name, cloud-domain(-id), hypervisor-host-name,
 *     the other entries under "meta" (CloudStack's config-drive mapping, with name = the host name)
 *   the recorded MAC (prepare-nic, restore-network) or the tier's DHCP reservation (add-dhcp-entry,
 *     prepare-nic): the NIC's MAC; the reservation also its default-nic flag, host name and IPv6 address
 *   the tier (implement-network, config-dhcp/dns-subnet): prefix, gateway, IPv6 prefix and gateway, DNS
 *     servers and domain as the tier's DHCP gives them (dhcp/spec.ts tierGuestOptions)
 *   the kernel (module): the MTU of the tier's guest segment
 *
 * Which NICs are one VM: records (addresses with data) whose instance-id (else vm-id) is the same — CloudStack
 * sends the VM's rows for each of its NICs with user data; and a NIC the router knows only from a DHCP
 * reservation joins the one VM of the router whose host name is the reservation's (none when two VMs share
 * it). A NIC on another router is not known here.
 */
import type { RouterModel, TierModel } from '../model.js';
import { dhcpState, emptyTierState, type DhcpReservation } from '../dhcp/state.js';
import { tierGuestOptions } from '../dhcp/spec.js';
import { bigIntToIp, ipToBigInt, ipv4ToNumber, isIpv4, netmask } from '../../util/ip.js';
import { recordedMac, vmdataState, type NicRecord, type VmRecord } from './state.js';
import { compareText } from '../../util/compare.js';

/** A leaf string or a directory of the EC2 meta-data tree. */
export type Ec2Tree = { [name: string]: string | Ec2Tree };

export interface VmDocuments {
  /** "<mac> <uuid>": whose directory it is (when it changes, what the previous guest POSTed goes). */
  owner: string;
  /** meta_data.json, network_data.json and the EC2 tree; absent for a VM without an identity. */
  meta?: Record<string, unknown>;
  network?: Record<string, unknown>;
  ec2?: Ec2Tree;
}

export interface DocumentInputs {
  /** The text of a stored entry, by blob id. */
  text(blobId: string): string;
  /** MTU of each tier's guest segment, by network id, where known. */
  mtus: Record<string, number>;
}

/** One NIC of a VM as the router knows it. */
interface Nic {
  tier: TierModel;
  ip: string;
  mac?: string;
  /** The tier's DHCP reservation of this MAC and address (the guest gets its address by DHCP). */
  reserved: boolean;
  /** default-nic, host name and IPv6 address: from the reservation, else from prepare-nic/restore-network. */
  defaultNic?: boolean;
  hostname?: string;
  ip6?: string;
  /** The address's VM record (undefined: known from a reservation or prepare-nic only). */
  record?: VmRecord;
}

/** The NIC facts of `mac` at `ip` on `tier`: the DHCP reservation's, else what prepare-nic said. */
function nicFacts(reservation: DhcpReservation | undefined, prepared: NicRecord | undefined): Pick<Nic, 'reserved' | 'defaultNic' | 'hostname' | 'ip6'> {
  const defaultNic = reservation?.defaultNic ?? prepared?.defaultNic;
  const hostname = reservation?.hostname ?? prepared?.hostname;
  const ip6 = reservation?.ip6 ?? prepared?.ip6;
  return {
    reserved: reservation !== undefined,
    ...(defaultNic !== undefined ? { defaultNic } : {}), ...(hostname ? { hostname } : {}), ...(ip6 ? { ip6 } : {}),
  };
}

interface Vm {
  uuid: string;
  hostname?: string;
  nics: Nic[];
}

/** CloudStack's config-drive keys that go to the top level of meta_data.json as they are. */
const TOP_LEVEL = ['hypervisor-host-name', 'cloud-name', 'cloud-domain', 'cloud-domain-id'];
/** Entries meta_data.json carries elsewhere (or never: the password checksum). */
const NOT_META = new Set(['availability-zone', 'local-hostname', 'public-keys', 'password-checksum', ...TOP_LEVEL]);

const label = (h: string) => h.split('.')[0].toLowerCase();

function entries(r: VmRecord, inputs: DocumentInputs): Map<string, string> {
  const out = new Map<string, string>();
  for (const [rel, id] of Object.entries(r.files)) {
    if (rel.startsWith('meta-data/')) out.set(rel.slice('meta-data/'.length), inputs.text(id));
  }
  return out;
}

const one = (v: string | undefined): string | undefined => {
  const t = v?.trim();
  return t ? t : undefined;
};

/** CloudStack's public-keys entry (one key per line) as [name, key] pairs; names from the key comments. */
export function publicKeys(text: string | undefined): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const used = new Set<string>();
  for (const line of (text ?? '').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))) {
    const comment = line.split(/\s+/)[2];
    let name = comment && /^[A-Za-z0-9_.@+-]{1,64}$/.test(comment) ? comment : `key-${out.length}`;
    if (used.has(name)) name = `${name}-${out.length}`;
    used.add(name);
    out.push([name, line]);
  }
  return out;
}

const v6Mask = (len: number): string => bigIntToIp(len === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - len)) - 1n), 6);

/** The SLAAC (EUI-64) address of `mac` in a /64 (what a guest autoconfigures from the router's RA). */
export function eui64(prefix: string, mac: string): string {
  const b = mac.split(':').map((h) => parseInt(h, 16));
  b[0] ^= 0x02;
  const iid = [b[0], b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]].reduce((acc, x) => (acc << 8n) | BigInt(x), 0n);
  const net = ipToBigInt(prefix.split('/')[0]) & ~((1n << 64n) - 1n);
  return bigIntToIp(net | iid, 6);
}

/** Tier ids compare as numbers where they are numbers (CloudStack's), else as text. */
function tierOrder(a: string, b: string): number {
  const x = Number(a);
  const y = Number(b);
  return Number.isFinite(x) && Number.isFinite(y) ? x - y : compareText(a, b);
}

/** The VMs of a router: records grouped by identity, with DHCP-only NICs joined by host name. */
function routerVms(m: RouterModel, inputs: DocumentInputs): { vms: Vm[]; entryOf: Map<string, Map<string, string>> } {
  const dhcp = dhcpState(m);
  const state = vmdataState(m);
  const prepared = state.nics ?? {};
  const byUuid = new Map<string, Vm>();
  const entryOf = new Map<string, Map<string, string>>();
  const vms = Object.entries(state.vms).filter(([ip, r]) => isIpv4(ip) && m.tiers[r.tier]);
  const knownMacs = new Set<string>();
  const reservationOf = (tier: string, mac: string | undefined, ip: string) => {
    const h = mac ? dhcp.tiers[tier]?.hosts[mac] : undefined;
    return h && h.ip === ip ? h : undefined;
  };
  const preparedOf = (tier: string, mac: string | undefined, ip: string) => {
    const p = prepared[ip];
    return p && p.tier === tier && p.mac === mac ? p : undefined;
  };
  for (const [ip, r] of vms) {
    const e = entries(r, inputs);
    entryOf.set(ip, e);
    const mac = recordedMac(m, ip, r);
    if (mac) knownMacs.add(mac);
    const uuid = one(e.get('vm-id')) ?? one(e.get('instance-id'));
    if (!uuid) continue;
    const nic: Nic = { tier: m.tiers[r.tier], ip, record: r, ...(mac ? { mac } : {}), ...nicFacts(reservationOf(r.tier, mac, ip), preparedOf(r.tier, mac, ip)) };
    const vm = byUuid.get(uuid) ?? { uuid, nics: [] };
    vm.nics.push(nic);
    vm.hostname ??= one(e.get('local-hostname')) ?? nic.hostname;
    byUuid.set(uuid, vm);
  }
  const all = [...byUuid.values()];
  // NICs without data at their address (a DHCP reservation, a prepare-nic): by the VM's host name, if only
  // one VM of the router has it
  const byName = new Map<string, Vm[]>();
  for (const vm of all) {
    const names = new Set([vm.hostname, ...vm.nics.map((n) => n.hostname)].filter((x): x is string => !!x).map(label));
    for (const n of names) byName.set(n, [...(byName.get(n) ?? []), vm]);
  }
  const haveData = new Set(vms.map(([ip]) => ip));
  const candidates = new Map<string, Nic>();
  for (const [tierId, t] of Object.entries(dhcp.tiers)) {
    if (!m.tiers[tierId]) continue;
    for (const [mac, h] of Object.entries(t.hosts)) {
      candidates.set(mac, { tier: m.tiers[tierId], ip: h.ip, mac, ...nicFacts(h, preparedOf(tierId, mac, h.ip)) });
    }
  }
  for (const [ip, p] of Object.entries(prepared)) {
    if (m.tiers[p.tier] && !candidates.has(p.mac)) candidates.set(p.mac, { tier: m.tiers[p.tier], ip, mac: p.mac, ...nicFacts(undefined, p) });
  }
  for (const [mac, nic] of candidates) {
    if (knownMacs.has(mac) || haveData.has(nic.ip) || !nic.hostname) continue;
    const owners = byName.get(label(nic.hostname)) ?? [];
    if (owners.length === 1) owners[0].nics.push(nic);
  }
  for (const vm of all) {
    vm.nics.sort((a, b) => Number(b.defaultNic === true) - Number(a.defaultNic === true)
      || tierOrder(a.tier.networkId, b.tier.networkId) || ipv4ToNumber(a.ip) - ipv4ToNumber(b.ip));
  }
  return { vms: all, entryOf };
}

/**
 * The VM's default NIC: the one marked default (add-dhcp-entry/prepare-nic default_nic), else — none marked —
 * the first NIC whose flag is not known (one marked not default never is).
 */
function defaultNic(vm: Vm): Nic | undefined {
  return vm.nics.find((n) => n.defaultNic === true) ?? vm.nics.find((n) => n.defaultNic === undefined);
}

const linkId = (mac: string) => `tap${mac.replace(/:/g, '')}`;

function networkData(m: RouterModel, vm: Vm, inputs: DocumentInputs): Record<string, unknown> {
  const dhcp = dhcpState(m);
  const def = defaultNic(vm);
  const links: Array<Record<string, unknown>> = [];
  const networks: Array<Record<string, unknown>> = [];
  const dns: string[] = [];
  const addDns = (xs: string[]) => { for (const x of xs) if (!dns.includes(x)) dns.push(x); };
  for (const nic of vm.nics) {
    if (!nic.mac) continue; // an agent finds its interface by MAC: a NIC without one cannot be described
    const t = nic.tier;
    const state = dhcp.tiers[t.networkId];
    const served = state?.dhcp === true;
    const opts = tierGuestOptions(t, state ?? emptyTierState());
    const link = linkId(nic.mac);
    links.push({ id: link, type: 'phy', ethernet_mac_address: nic.mac, ...(inputs.mtus[t.networkId] ? { mtu: inputs.mtus[t.networkId] } : {}) });
    const isDefault = nic === def;
    const base = { id: `network${networks.length}`, link, network_id: t.networkId };
    const dnsServices = (xs: string[]) => xs.map((address) => ({ type: 'dns', address }));
    if (served && nic.reserved) {
      // the tier's DHCP hands this NIC its reserved address, router (default NIC only) and DNS
      networks.push({ ...base, type: 'ipv4_dhcp' });
    } else {
      const prefixLen = Number(t.cidr.split('/')[1]);
      networks.push({
        ...base, type: 'ipv4', ip_address: nic.ip, netmask: netmask(prefixLen),
        routes: isDefault ? [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: opts.router }] : [],
        services: dnsServices(opts.dnsServers),
        ...(opts.dnsServers.length ? { dns_nameservers: opts.dnsServers } : {}),
        ...(opts.domain ? { dns_search: [opts.domain] } : {}),
      });
    }
    addDns(opts.dnsServers);
    if (t.ip6Cidr && t.ip6Gateway) {
      const ra = served; // dnsmasq sends router advertisements (SLAAC, RDNSS) on the tiers it serves
      const ip6 = nic.ip6;
      const dns6 = opts.ipv6?.dnsServers ?? [];
      if (ip6 && !(ra && ip6 === eui64(t.ip6Cidr, nic.mac))) {
        networks.push({
          id: `network${networks.length}`, link, network_id: t.networkId, type: 'ipv6', ip_address: ip6,
          netmask: v6Mask(Number(t.ip6Cidr.split('/')[1])),
          routes: isDefault ? [{ network: '::', netmask: '::', gateway: t.ip6Gateway }] : [],
          services: dnsServices(dns6),
          ...(dns6.length ? { dns_nameservers: dns6 } : {}),
        });
        addDns(dns6);
      } else if (ra) {
        networks.push({ id: `network${networks.length}`, link, network_id: t.networkId, type: 'ipv6_slaac' });
        addDns(dns6);
      }
    }
  }
  return { links, networks, services: dns.map((address) => ({ type: 'dns', address })) };
}

function metaData(vm: Vm, e: Map<string, string>, keys: Array<[string, string]>): Record<string, unknown> {
  const meta: Record<string, string> = {};
  for (const [k, v] of e) if (!NOT_META.has(k)) meta[k] = v;
  const out: Record<string, unknown> = { uuid: vm.uuid };
  if (vm.hostname) Object.assign(out, { hostname: vm.hostname, name: vm.hostname });
  // CloudStack starts every VM on its own: the index within its launch request is always 0
  out.launch_index = 0;
  const az = one(e.get('availability-zone'));
  if (az) out.availability_zone = az;
  if (keys.length) {
    out.public_keys = Object.fromEntries(keys);
    out.keys = keys.map(([name, data]) => ({ name, type: 'ssh', data }));
  }
  for (const k of TOP_LEVEL) {
    const v = one(e.get(k));
    if (v) out[k] = v;
  }
  out.devices = [];
  out.meta = meta;
  return out;
}

function ec2Tree(m: RouterModel, vm: Vm, nic: Nic, e: Map<string, string>, keys: Array<[string, string]>): Ec2Tree {
  const t: Ec2Tree = { 'ami-launch-index': '0' };
  if (vm.hostname) Object.assign(t, { hostname: vm.hostname, 'local-hostname': vm.hostname });
  t['instance-id'] = one(e.get('instance-id')) ?? vm.uuid;
  t['local-ipv4'] = one(e.get('local-ipv4')) ?? nic.ip;
  const primary = defaultNic(vm)?.mac ?? nic.mac;
  if (primary) t.mac = primary;
  const az = one(e.get('availability-zone'));
  if (az) t.placement = { 'availability-zone': az };
  for (const k of ['public-hostname', 'public-ipv4']) {
    const v = one(e.get(k));
    if (v) t[k] = v;
  }
  if (keys.length) t['public-keys'] = Object.fromEntries(keys.map(([name, key], i) => [`${i}=${name}`, { 'openssh-key': key }]));
  const dhcp = dhcpState(m);
  const macs: Ec2Tree = {};
  vm.nics.forEach((n, i) => {
    if (!n.mac) return;
    const x: Ec2Tree = { 'device-number': String(i), 'local-ipv4s': n.ip, mac: n.mac, 'subnet-ipv4-cidr-block': n.tier.cidr };
    if (vm.hostname) x['local-hostname'] = vm.hostname;
    if (n.tier.ip6Cidr && n.tier.ip6Gateway) {
      const ip6 = n.ip6 ?? (dhcp.tiers[n.tier.networkId]?.dhcp ? eui64(n.tier.ip6Cidr, n.mac) : undefined);
      if (ip6) Object.assign(x, { ipv6s: ip6, 'subnet-ipv6-cidr-blocks': n.tier.ip6Cidr });
    }
    macs[n.mac] = x;
  });
  if (Object.keys(macs).length) t.network = { interfaces: { macs } };
  return t;
}

/** Every served VM address's documents (by address). */
export function vmDocuments(m: RouterModel, inputs: DocumentInputs): Map<string, VmDocuments> {
  const { vms, entryOf } = routerVms(m, inputs);
  const out = new Map<string, VmDocuments>();
  for (const [ip, r] of Object.entries(vmdataState(m).vms)) {
    if (!entryOf.has(ip)) continue;
    out.set(ip, { owner: `${recordedMac(m, ip, r) ?? ''} ` });
  }
  for (const vm of vms) {
    const network = networkData(m, vm, inputs);
    for (const nic of vm.nics) {
      if (!nic.record) continue;
      const e = entryOf.get(nic.ip) ?? new Map<string, string>();
      const keys = publicKeys(e.get('public-keys'));
      out.set(nic.ip, {
        owner: `${nic.mac ?? ''} ${vm.uuid}`,
        meta: metaData(vm, e, keys),
        network,
        ec2: ec2Tree(m, vm, nic, e, keys),
      });
    }
  }
  return out;
}
