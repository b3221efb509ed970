/**
 * Per-command builders: FieldReader → typed request. Required arguments are those whose absence
 * makes the upstream wrapper `die` (plus what the typed request cannot do without); defaults are
 * upstream's (source_nat false, default_nic true, protocol tcp).
 */
import { UsageError } from '../../util/errors.js';
import { routerNamespace } from '../names.js';
import { cidrBounds, cidrContains, ipToBigInt, ipv4ToNumber, networkText, type Cidr } from '../../util/ip.js';
import type { FieldReader } from './reader.js';
import type {
  BuiltinCustomAction, CustomActionRequest, GuestAddressing, NetworkTarget, NicFields, PortForwardFields,
  PublicIpSpec, RouterRequest, EngineCommand, StatusRequest, VpcTarget,
} from './types.js';
import {
  BadValue, parseActionName, parseBool, parseCidr, parseDhcpOptionKey, parseDomain, parseGuestType, parseHostname,
  parseId, parseIpList, parseIpv4, parseIpv6, parseMac, parseNamespaceName, parseNetworkState, parsePortRange,
  parseProtocol, parseRouteSpec, parseSegment, parseTableId, parseTableName, parseTableRef, type SegmentKind,
} from './values.js';

/** What builders need besides the arguments. */
export interface BuildContext {
  /** network-extension-details: may name the namespace (ensure-network-device writes it). */
  networkDetails: Record<string, unknown>;
  /** What a bare number in `vlan` is (physical-network detail guest.network.isolation); default vlan. */
  bareSegment?: SegmentKind;
}

/** Namespace override from network-extension-details, validated. */
function detailsNamespace(ctx: BuildContext): string | undefined {
  const ns = ctx.networkDetails.namespace;
  if (ns === undefined || ns === null || ns === '') return undefined;
  if (typeof ns !== 'string') throw new UsageError('network-extension-details.namespace: expected a string', 'network-extension-details.namespace');
  try {
    return parseNamespaceName(ns);
  } catch (e) {
    if (e instanceof BadValue) throw new UsageError(`network-extension-details.namespace: ${e.message}`, 'network-extension-details.namespace');
    throw e;
  }
}

/**
 * network-extension-details `adopt-namespace` (ours, not upstream's): "true" lets the command take over a
 * router namespace netns-router did not create (ownership.ts); absent or "false" refuses such a namespace.
 */
function adoptNamespace(ctx: BuildContext): boolean {
  const key = 'network-extension-details.adopt-namespace';
  const v = ctx.networkDetails['adopt-namespace'];
  if (v === undefined || v === null || v === '') return false;
  if (typeof v === 'boolean') return v;
  if (typeof v !== 'string') throw new UsageError(`${key}: expected "true" or "false"`, key);
  try {
    return parseBool(v);
  } catch (e) {
    if (e instanceof BadValue) throw new UsageError(`${key}: ${e.message}`, key);
    throw e;
  }
}

/**
 * network-extension-details `vm-filter` and `vm-filter-strict` (ours): "true" filters the network's guest segment
 * (strict: and denies unknown MACs on it), "false" does not, absent leaves what the router recorded
 * (docs/vm-filter.md).
 */
function vmFilterDetail(ctx: BuildContext, name: 'vm-filter' | 'vm-filter-strict'): boolean | undefined {
  const key = `network-extension-details.${name}`;
  const v = ctx.networkDetails[name];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'boolean') return v;
  if (typeof v !== 'string') throw new UsageError(`${key}: expected "true" or "false"`, key);
  try {
    return parseBool(v);
  } catch (e) {
    if (e instanceof BadValue) throw new UsageError(`${key}: ${e.message}`, key);
    throw e;
  }
}

/**
 * network-extension-details `lb-provider` (ours): "haproxy" or "kernel" serves the network's load-balancing rules
 * (docs/load-balancing.md "Kernel provider"); absent leaves what the router recorded.
 */
function lbProviderDetail(ctx: BuildContext): 'haproxy' | 'kernel' | undefined {
  const key = 'network-extension-details.lb-provider';
  const v = ctx.networkDetails['lb-provider'];
  if (v === undefined || v === null || v === '') return undefined;
  if (v === 'haproxy' || v === 'kernel') return v;
  const shown = typeof v === 'string' ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v) : `a ${Array.isArray(v) ? 'list' : typeof v}`;
  throw new UsageError(`${key}: ${shown} is not one of haproxy, kernel`, key);
}

/**
 * Upstream parse_args: a VPC tier always lives in cs-vpc-<vpcId>; an isolated/shared network in
 * the namespace named by network-extension-details, else cs-net-<networkId>.
 */
function networkTarget(r: FieldReader, ctx: BuildContext): NetworkTarget {
  const networkId = r.req('network_id', parseId);
  const vpcId = r.opt('vpc_id', parseId);
  const namespace = vpcId !== undefined ? routerNamespace({ vpcId }) : detailsNamespace(ctx) ?? routerNamespace({ networkId });
  const t: NetworkTarget = { networkId, namespace };
  if (vpcId !== undefined) t.vpcId = vpcId;
  if (adoptNamespace(ctx)) t.adoptNamespace = true;
  const filter = vmFilterDetail(ctx, 'vm-filter');
  if (filter !== undefined) t.vmFilter = filter;
  const strict = vmFilterDetail(ctx, 'vm-filter-strict');
  if (strict !== undefined) t.vmFilterStrict = strict;
  const lbProvider = lbProviderDetail(ctx);
  if (lbProvider !== undefined) t.lbProvider = lbProvider;
  const guestType = r.opt('guest_type', parseGuestType);
  if (guestType) t.guestType = guestType;
  const networkState = r.opt('network_state', parseNetworkState);
  if (networkState) t.networkState = networkState;
  const zoneId = r.opt('zone_id', parseId);
  if (zoneId !== undefined) t.zoneId = zoneId;
  return t;
}

/** Upstream parse_vpc_args: namespace from network-extension-details, else cs-vpc-<vpcId>. */
function vpcTarget(r: FieldReader, ctx: BuildContext): VpcTarget {
  const vpcId = r.req('vpc_id', parseId);
  const t: VpcTarget = { vpcId, namespace: detailsNamespace(ctx) ?? routerNamespace({ vpcId }) };
  if (adoptNamespace(ctx)) t.adoptNamespace = true;
  return t;
}

function assign<T extends object, K extends string, V>(obj: T, key: K, v: V | undefined): void {
  if (v !== undefined) (obj as Record<string, unknown>)[key] = v;
}

/**
 * Optional guest addressing. Where a subnet gets configured (`strict`: implement-network,
 * config-dhcp/dns-subnet) the gateway must lie in cidr and the IPv6 gateway in the IPv6 cidr; the
 * extension ip (one per network) is checked only by implement-network, which puts it on the
 * cidr. Elsewhere a NIC-level gateway of a secondary shared-network range may legitimately sit
 * outside the network's primary cidr, so no cross-check is made.
 */
/**
 * `ip` as a host of `c` (its `cidrField`): inside it, and — an IPv4 prefix with a network and a broadcast address
 * (/30 or wider) — neither of those (the kernel refuses a route through a broadcast address; nothing answers the
 * network address).
 */
function checkHostOf(r: FieldReader, field: string, ip: string, c: Cidr, cidrField: string): void {
  if (!cidrContains(c, ip)) r.fail(field, `${ip} is not inside ${r.label(cidrField)} ${c.address}/${c.prefix}`);
  if (c.family !== 4 || c.prefix > 30) return;
  const { lo, hi } = cidrBounds(c);
  const v = ipToBigInt(ip);
  if (v === lo || v === hi) r.fail(field, `${ip} is the ${v === lo ? 'network' : 'broadcast'} address of ${r.label(cidrField)} ${networkText(c)}`);
}

/** An IPv4 address a VM can have (what NAT may translate to): not in 0/8, 127/8, multicast 224/4 or 240/4. */
function checkUnicast4(r: FieldReader, field: string, ip: string): string {
  const first = ipv4ToNumber(ip) >>> 24;
  if (first === 0 || first === 127 || first >= 224) r.fail(field, `${ip} is not a unicast host address`);
  return ip;
}

/** An IPv6 address a network can route (not ::, ::1, IPv4-mapped ::ffff:0:0/96 or multicast ff00::/8). */
function checkUnicast6(r: FieldReader, field: string, ip: string): void {
  const v = ipToBigInt(ip);
  if (v <= 1n || v >> 32n === 0xffffn || v >> 120n === 0xffn) r.fail(field, `${ip} is not a unicast IPv6 address`);
}

function guestAddressing(r: FieldReader, ctx: BuildContext, opts: { strict?: boolean; checkExtensionIp?: boolean } = {}): GuestAddressing {
  const a: GuestAddressing = {};
  assign(a, 'segment', r.opt('vlan', (t) => parseSegment(t, ctx.bareSegment)));
  assign(a, 'gateway', r.opt('gateway', parseIpv4));
  assign(a, 'cidr', r.opt('cidr', (t) => parseCidr(t, 4)));
  assign(a, 'extensionIp', r.opt('extension_ip', parseIpv4));
  assign(a, 'ip6Gateway', r.opt('network_ip6_gateway', parseIpv6));
  assign(a, 'ip6Cidr', r.opt('network_ip6_cidr', (t) => parseCidr(t, 6)));
  assign(a, 'dns', r.opt('dns', (t) => parseIpList(t, 4)));
  assign(a, 'dns6', r.opt('dns6', (t) => parseIpList(t, 6)));
  assign(a, 'domain', r.opt('domain', parseDomain));
  if (a.ip6Gateway) checkUnicast6(r, 'network_ip6_gateway', a.ip6Gateway);
  if (a.ip6Cidr) checkUnicast6(r, 'network_ip6_cidr', a.ip6Cidr.address);
  if (!opts.strict) return a;
  // a guest subnet holds the gateway and at least one VM
  if (a.cidr && (a.cidr.prefix < 1 || a.cidr.prefix > 30)) r.fail('cidr', `${networkText(a.cidr)}: a guest subnet is /1 to /30`);
  if (a.gateway && a.cidr) checkHostOf(r, 'gateway', a.gateway, a.cidr, 'cidr');
  if (opts.checkExtensionIp && a.extensionIp && a.cidr) checkHostOf(r, 'extension_ip', a.extensionIp, a.cidr, 'cidr');
  if (a.ip6Gateway && a.ip6Cidr && !cidrContains(a.ip6Cidr, a.ip6Gateway)) {
    r.fail('network_ip6_gateway', `${a.ip6Gateway} is not inside ${r.label('network_ip6_cidr')} ${a.ip6Cidr.address}/${a.ip6Cidr.prefix}`);
  }
  return a;
}

function publicIp(r: FieldReader, opts: { requireSegment: boolean; why?: string }): PublicIpSpec {
  const ip = r.req('public_ip', parseIpv4, opts.why);
  const p: PublicIpSpec = { ip, sourceNat: r.bool('source_nat', false) };
  const segment = opts.requireSegment ? r.req('public_vlan', parseSegment) : r.opt('public_vlan', parseSegment);
  assign(p, 'segment', segment);
  assign(p, 'gateway', r.opt('public_gateway', parseIpv4));
  assign(p, 'cidr', r.opt('public_cidr', (t) => parseCidr(t, 4)));
  if (p.cidr && p.cidr.prefix < 1) r.fail('public_cidr', `${networkText(p.cidr)} is not a subnet`);
  if (p.cidr) checkHostOf(r, 'public_ip', ip, p.cidr, 'public_cidr');
  if (p.gateway && p.cidr) checkHostOf(r, 'public_gateway', p.gateway, p.cidr, 'public_cidr');
  if (p.gateway === ip) r.fail('public_gateway', `${p.gateway} is the public IP itself`);
  return p;
}

function nicFields(r: FieldReader): NicFields {
  const n: NicFields = { defaultNic: r.bool('default_nic', true) };
  assign(n, 'mac', r.opt('mac', parseMac));
  assign(n, 'ip', r.opt('ip', parseIpv4));
  assign(n, 'hostname', r.opt('hostname', parseHostname));
  assign(n, 'nicId', r.opt('nic_id', parseId));
  assign(n, 'nicUuid', r.opt('nic_uuid', parseId));
  assign(n, 'ip6Address', r.opt('ip6_address', parseIpv6));
  return n;
}

/** A port forward's fields; one being added must also be one that can work (a deletion names what is stored). */
function portForward(r: FieldReader, adding: boolean): PortForwardFields {
  const pf: PortForwardFields = {
    publicIp: publicIp(r, { requireSegment: false }),
    publicPorts: r.req('public_port', parsePortRange),
    privateIp: r.req('private_ip', parseIpv4),
    privatePorts: r.req('private_port', parsePortRange),
    protocol: r.opt('protocol', parseProtocol) ?? 'tcp',
  };
  if (!adding) return pf;
  checkUnicast4(r, 'private_ip', pf.privateIp);
  // each public port lands on its own private port (one to one, in order), or all on one
  const size = (x: { start: number; end: number }): number => x.end - x.start + 1;
  if (size(pf.privatePorts) !== 1 && size(pf.privatePorts) !== size(pf.publicPorts)) {
    r.fail('private_port', `${pf.privatePorts.start}-${pf.privatePorts.end} must be one port or as many ports as ${r.label('public_port')} ${pf.publicPorts.start}-${pf.publicPorts.end} (${size(pf.publicPorts)})`);
  }
  return pf;
}

/** set-dhcp-options `options`: {"<code>":"<value>"} (JSON object or a string holding one). */
function dhcpOptions(r: FieldReader): Record<string, string> {
  const obj = r.object('options');
  if (!obj) r.missing('options');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj)) {
    let key: string;
    try {
      key = parseDhcpOptionKey(k);
    } catch (e) {
      r.fail('options', (e as Error).message);
    }
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') r.fail('options', `value of ${JSON.stringify(k)} must be a string`);
    const s = String(v);
    if (/[\u0000-\u001f\u007f]/.test(s)) r.fail('options', `value of ${JSON.stringify(k)} contains control characters`);
    out[key] = s;
  }
  return out;
}

const PBR_TABLE_ID_KEYS = ['table-id', 'table_id', 'id', 'tableid'];
const PBR_TABLE_NAME_KEYS = ['table-name', 'table_name', 'name', 'tablename', 'table'];
const PBR_TABLE_KEYS = ['table', 'table-name', 'table_name', 'tablename', 'table-id', 'table_id', 'id', 'tableid'];
const PBR_ROUTE_KEYS = ['route', 'route-spec', 'route_spec'];
const PBR_RULE_KEYS = ['rule', 'rule-spec', 'rule_spec'];

export const BUILTIN_CUSTOM_ACTIONS = [
  'reboot-device', 'dump-config', 'list-firewall-rules',
  'pbr-create-table', 'pbr-delete-table', 'pbr-list-tables',
  'pbr-add-route', 'pbr-delete-route', 'pbr-list-routes',
  'pbr-add-rule', 'pbr-delete-rule', 'pbr-list-rules',
  'vm-filter-set',
] as const;

/** Decodes the action-params of a built-in action (upstream _pbr_param alias order). */
function builtinAction(r: FieldReader, action: string, params: Record<string, unknown>): BuiltinCustomAction | undefined {
  const pick = (keys: string[]): { key: string; text: string } | undefined => {
    for (const k of keys) {
      const v = params[k];
      if (v === undefined || v === null || v === '') continue;
      if (typeof v !== 'string' && typeof v !== 'number') r.fail('action-params', `${k} must be a string`);
      return { key: k, text: String(v).trim() };
    }
    return undefined;
  };
  const parseParam = <T>(found: { key: string; text: string } | undefined, parse: (t: string) => T): T | undefined => {
    if (!found) return undefined;
    try {
      return parse(found.text);
    } catch (e) {
      if (e instanceof BadValue) r.fail('action-params', `${found.key}: ${e.message}`);
      throw e;
    }
  };
  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) r.fail('action-params', `${action} needs ${what}`);
    return v;
  };
  switch (action) {
    case 'reboot-device':
    case 'dump-config':
    case 'list-firewall-rules':
    case 'pbr-list-tables':
    case 'vm-filter-set':
      return { name: action };
    case 'pbr-create-table':
      return {
        name: action,
        tableId: need(parseParam(pick(PBR_TABLE_ID_KEYS), parseTableId), 'table-id'),
        tableName: need(parseParam(pick(PBR_TABLE_NAME_KEYS), parseTableName), 'table-name'),
      };
    case 'pbr-delete-table': {
      const tableId = parseParam(pick(PBR_TABLE_ID_KEYS), parseTableId);
      const tableName = parseParam(pick(PBR_TABLE_NAME_KEYS), parseTableName);
      if (tableId === undefined && tableName === undefined) r.fail('action-params', `${action} needs table-id or table-name`);
      const a: BuiltinCustomAction = { name: action };
      assign(a, 'tableId', tableId);
      assign(a, 'tableName', tableName);
      return a;
    }
    case 'pbr-add-route':
    case 'pbr-delete-route':
      return {
        name: action,
        table: need(parseParam(pick(PBR_TABLE_KEYS), parseTableRef), 'table'),
        route: need(parseParam(pick(PBR_ROUTE_KEYS), parseRouteSpec), 'route'),
      };
    case 'pbr-add-rule':
    case 'pbr-delete-rule':
      return {
        name: action,
        table: need(parseParam(pick(PBR_TABLE_KEYS), parseTableRef), 'table'),
        rule: need(parseParam(pick(PBR_RULE_KEYS), parseRouteSpec), 'rule'),
      };
    case 'pbr-list-routes':
    case 'pbr-list-rules': {
      const a: BuiltinCustomAction = { name: action };
      assign(a, 'table', parseParam(pick(PBR_TABLE_KEYS), parseTableRef));
      return a;
    }
    default:
      return undefined;
  }
}

function customAction(r: FieldReader, ctx: BuildContext): CustomActionRequest {
  const networkId = r.opt('network_id', parseId);
  const vpcId = r.opt('vpc_id', parseId);
  if (networkId === undefined && vpcId === undefined) r.missing('network_id', `or ${r.label('vpc_id')} is required for custom-action`);
  const action = r.req('action', parseActionName);
  const actionParams = r.object('action-params') ?? {};
  const namespace = vpcId !== undefined ? routerNamespace({ vpcId }) : detailsNamespace(ctx) ?? routerNamespace({ networkId });
  const req: CustomActionRequest = { command: 'custom-action', namespace, action, actionParams };
  assign(req, 'networkId', networkId);
  assign(req, 'vpcId', vpcId);
  assign(req, 'builtin', builtinAction(r, action, actionParams));
  return req;
}

function status(r: FieldReader): StatusRequest {
  const req: StatusRequest = { command: 'status' };
  assign(req, 'networkId', r.opt('network_id', parseId));
  assign(req, 'vpcId', r.opt('vpc_id', parseId));
  if (req.networkId !== undefined || req.vpcId !== undefined) req.namespace = routerNamespace(req);
  return req;
}

type Builder = (r: FieldReader, ctx: BuildContext) => RouterRequest;

const net = <C extends EngineCommand>(command: C, extra?: (r: FieldReader) => object, opts?: { strict?: boolean; checkExtensionIp?: boolean }): Builder =>
  (r, ctx) => ({ command, ...networkTarget(r, ctx), ...guestAddressing(r, ctx, opts), ...(extra ? extra(r) : {}) }) as RouterRequest;

/** Upstream config-dhcp-subnet/config-dns-subnet die without gateway and cidr. */
const subnetRequired = (r: FieldReader) => ({
  gateway: r.req('gateway', parseIpv4),
  cidr: r.req('cidr', (t) => parseCidr(t, 4)),
});

/**
 * Per command: the arguments (a FieldReader over any invocation form) → its typed request, every value
 * validated (UsageError naming the argument).
 */
export const BUILDERS: { readonly [C in EngineCommand]: Builder } = {
  'implement-network': net('implement-network', undefined, { strict: true, checkExtensionIp: true }),
  'shutdown-network': net('shutdown-network'),
  'destroy-network': net('destroy-network'),
  'implement-vpc': (r, ctx) => {
    const req = { command: 'implement-vpc' as const, ...vpcTarget(r, ctx) };
    assign(req, 'vpcCidr', r.opt('vpc_cidr', (t) => parseCidr(t, 4)));
    if (r.has('public_ip')) assign(req, 'publicIp', publicIp(r, { requireSegment: false }));
    return req;
  },
  'update-vpc-source-nat-ip': (r, ctx) => {
    const req = { command: 'update-vpc-source-nat-ip' as const, ...vpcTarget(r, ctx), publicIp: publicIp(r, { requireSegment: false }) };
    assign(req, 'vpcCidr', r.opt('vpc_cidr', (t) => parseCidr(t, 4)));
    return req;
  },
  'shutdown-vpc': (r, ctx) => ({ command: 'shutdown-vpc', ...vpcTarget(r, ctx) }),
  'destroy-vpc': (r, ctx) => ({ command: 'destroy-vpc', ...vpcTarget(r, ctx) }),
  'assign-ip': net('assign-ip', (r) => ({ publicIp: publicIp(r, { requireSegment: true }) })),
  'release-ip': net('release-ip', (r) => ({ publicIp: publicIp(r, { requireSegment: false }) })),
  'add-static-nat': net('add-static-nat', (r) => ({
    publicIp: publicIp(r, { requireSegment: false }), privateIp: checkUnicast4(r, 'private_ip', r.req('private_ip', parseIpv4)),
  })),
  'delete-static-nat': net('delete-static-nat', (r) => {
    const x: { publicIp: PublicIpSpec; privateIp?: string } = { publicIp: publicIp(r, { requireSegment: false }) };
    assign(x, 'privateIp', r.opt('private_ip', parseIpv4));
    return x;
  }),
  'add-port-forward': net('add-port-forward', (r) => portForward(r, true)),
  'delete-port-forward': net('delete-port-forward', (r) => portForward(r, false)),
  // the text comes along: the same text again is recognised by its digest (lib/router/firewall/payload-digest.ts)
  'apply-fw-rules': net('apply-fw-rules', (r) => optDoc(r, 'fw_rules', 'fwRules', { keepText: true })),
  'apply-network-acl': net('apply-network-acl', (r) => optDoc(r, 'acl_rules', 'aclRules')),
  'apply-lb-rules': net('apply-lb-rules', (r) => optDoc(r, 'lb_rules', 'lbRules')),
  'config-dhcp-subnet': net('config-dhcp-subnet', subnetRequired, { strict: true }),
  'remove-dhcp-subnet': net('remove-dhcp-subnet'),
  'add-dhcp-entry': net('add-dhcp-entry', (r) => ({
    ...nicFields(r), mac: r.req('mac', parseMac), ip: r.req('ip', parseIpv4),
  })),
  'remove-dhcp-entry': net('remove-dhcp-entry', (r) => ({ ...nicFields(r), mac: r.req('mac', parseMac) })),
  'set-dhcp-options': net('set-dhcp-options', (r) => ({ nicId: r.req('nic_id', parseId), options: dhcpOptions(r) })),
  'config-dns-subnet': net('config-dns-subnet', subnetRequired, { strict: true }),
  'remove-dns-subnet': net('remove-dns-subnet'),
  'add-dns-entry': net('add-dns-entry', (r) => ({
    ...nicFields(r), ip: r.req('ip', parseIpv4), hostname: r.req('hostname', parseHostname),
  })),
  'remove-dns-entry': net('remove-dns-entry', (r) => ({ ...nicFields(r), ip: r.req('ip', parseIpv4) })),
  'prepare-nic': net('prepare-nic', nicFields),
  'release-nic': net('release-nic', nicFields),
  'save-vm-data': net('save-vm-data', (r) => ({ ip: r.req('ip', parseIpv4), vmData: reqDoc(r, 'vm_data') })),
  'save-userdata': net('save-userdata', (r) => ({ ip: r.req('ip', parseIpv4), userdata: r.secretText('userdata') ?? '' })),
  'save-password': net('save-password', (r) => {
    const x: { ip: string; password?: string } = { ip: r.req('ip', parseIpv4) };
    assign(x, 'password', r.secretText('password'));
    return x;
  }),
  'save-sshkey': net('save-sshkey', (r) => ({ ip: r.req('ip', parseIpv4), sshkey: r.secretText('sshkey') ?? '' })),
  'save-hypervisor-hostname': net('save-hypervisor-hostname', (r) => ({
    ip: r.req('ip', parseIpv4), hypervisorHostname: r.plainText('hypervisor_hostname') ?? '',
  })),
  'restore-network': net('restore-network', (r) => ({ restoreData: reqDoc(r, 'restore_data') })),
  'custom-action': customAction,
  status: (r) => status(r),
  'restore-all': () => ({ command: 'restore-all' }),
};

function optDoc(r: FieldReader, key: string, prop: string, opts?: { keepText?: boolean }): object {
  const d = r.document(key, opts);
  return d ? { [prop]: d } : {};
}

function reqDoc(r: FieldReader, key: string) {
  const d = r.document(key);
  if (!d) r.missing(key);
  return d;
}

/** parseBool re-exported for the CLI's own boolean options. */
export { parseBool };
