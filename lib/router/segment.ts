/** How a guest or public network reaches the host's uplink: 802.1Q VLAN, untagged, or VXLAN. */
export type Segment =
  | { kind: 'vlan'; id: number }
  | { kind: 'untagged' }
  | { kind: 'vxlan'; vni: number };

export function segmentText(s: Segment): string {
  return s.kind === 'vlan' ? `vlan://${s.id}` : s.kind === 'vxlan' ? `vxlan://${s.vni}` : 'untagged';
}
