/**
 * The reconcile scope of commands that change a router's VM records (docs/reconcile.md "Scoped commands"): DHCP
 * reservations and DNS names, VM data, NIC hooks. Three modules hold or read those records — DHCP (dnsmasq's
 * hosts), VM data (the metadata documents follow the reservations' MACs), the guest-segment filter (its NICs are
 * the reservations' and the metadata records') — so the three are reconciled together; nothing else of the
 * router reads them (test/router/reconcile-scope.test.ts).
 */
import type { ReconcileScope } from './reconcile-scope.js';
import { DHCP } from './dhcp/state.js';
import { VMDATA } from './vmdata/state.js';
import { VMFILTER } from './vmfilter/state.js';

export const VM_RECORDS_SCOPE: ReconcileScope = Object.freeze({ modules: Object.freeze([DHCP, VMDATA, VMFILTER]) });
