/**
 * The payload file uploaded to the host. Whatever form the proxy was called in, the wrapper gets
 * the payload-file form: the caller's payload file (or an empty one) with the option values on
 * the line applied (`--fw-rules-file` contents included — a management-server path means nothing
 * on the host), the resolved extension details written back, and the SSH credentials (`sshkey`,
 * `password`) removed from the physical-network details: the host has no use for them. Option
 * values therefore never appear on a command line (local or remote) and secrets stay in files
 * with mode 0600.
 */
import type { ProxyInvocation } from './invocation.js';

/** Physical-network detail keys holding the proxy's SSH credentials. */
export const SSH_SECRET_DETAILS: readonly string[] = ['sshkey', 'password'];

const PHYSICAL = 'physical-network-extension-details';
const NETWORK = 'network-extension-details';

export function withoutSshSecrets(details: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(details)) if (!SSH_SECRET_DETAILS.includes(k)) out[k] = v;
  return out;
}

function objectOf(v: unknown): Record<string, unknown> | undefined {
  if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  if (typeof v === 'string' && v.trim() !== '') {
    try {
      const o: unknown = JSON.parse(v);
      if (o && typeof o === 'object' && !Array.isArray(o)) return o as Record<string, unknown>;
    } catch {
      /* validated by the wrapper's parser already; keep as is */
    }
  }
  return undefined;
}

/** The JSON document to upload (a new object; the input is not modified). */
export function uploadDocument(inv: ProxyInvocation): Record<string, unknown> {
  const doc: Record<string, unknown> = inv.payloadDoc ? structuredClone(inv.payloadDoc) : {};
  const target: Record<string, unknown> = inv.flat ? doc : { ...(objectOf(doc.payload) ?? {}) };
  for (const o of inv.overrides) target[o.key] = o.value;
  if (!inv.flat) doc.payload = target;
  delete doc.physical_network_extension_details;
  delete doc.network_extension_details;
  doc[PHYSICAL] = withoutSshSecrets(inv.details.physicalNetwork);
  doc[NETWORK] = inv.details.network;
  return doc;
}
