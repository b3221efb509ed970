/** Load-balancing rules as the router stores them (validated, canonical), per network, in `model.extra.lb`. */
import type { BalanceAlgorithm, HealthCheckSpec, StickinessSpec } from '../../services/haproxy/config.js';

export interface LbBackend {
  ip: string;
  port: number;
  weight?: number;
}

export interface LbRule {
  id: string;
  name?: string;
  publicIp: string;
  publicPort: number;
  /** `http` runs haproxy in HTTP mode (X-Forwarded-For, cookies); `tcp` forwards bytes. */
  protocol: 'tcp' | 'http';
  algorithm: BalanceAlgorithm;
  /** Active backends only (revoked ones are dropped at parse time). */
  backends: LbBackend[];
  maxconn?: number;
  healthcheck?: HealthCheckSpec;
  stickiness?: StickinessSpec;
}

export interface LbState {
  /** networkId → ruleId → rule */
  networks: Record<string, Record<string, LbRule>>;
  /**
   * networkId → provider of its rules, when not haproxy (network-extension-details `lb-provider`, recorded by every
   * command that carries it; absent: haproxy). Kept while the network is on the router, rules or not.
   */
  providers?: Record<string, 'kernel'>;
}

/** What one apply-lb-rules document asks for. */
export interface LbDocument {
  upserts: LbRule[];
  revokes: string[];
}
