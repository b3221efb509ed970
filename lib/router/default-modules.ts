/** The modules the engine runs by default, in reconcile order. A new module is one more entry here (its commands come with it). */
import type { RouterModule } from './router-module.js';
import { pbrModule } from './pbr/module.js';
import { firewallModule } from './firewall/module.js';
import { lbModule } from './lb/module.js';
import { vmdataModule } from './vmdata/module.js';
import { dhcpModule } from './dhcp/module.js';
import { vmfilterModule } from './vmfilter/module.js';

/** The modules the engine runs by default, in reconcile order: pbr, firewall, lb, vmdata, dhcp. */
export function defaultModules(): RouterModule[] {
  return [
    pbrModule,
    firewallModule,
    lbModule,
    vmdataModule,
    dhcpModule,
    vmfilterModule,
  ];
}
