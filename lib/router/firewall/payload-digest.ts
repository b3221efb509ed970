/**
 * The digest of an fw_rules text as given (a file's content, an option's value: JSON or base64), stored with
 * the network's firewall state by the apply-fw-rules that parsed it. The same digest again means the same
 * bytes, whose parse (a pure function of them, for this build: the build's identity is part of the digest) is
 * the document the state already holds — validated when it was applied, and applied since the state is only
 * saved after its reconcile succeeded. Such a re-apply skips the parse and validation (~40 ms for 10,000 rules
 * in a cold process), nothing else: the kernel is still reconciled to the state (drift repaired). A text that
 * differs in one byte has another digest and is parsed and validated whole.
 */
import { createHash } from 'node:crypto';
import { buildId } from '../state/build-id.js';

export function payloadDigest(kind: string, text: string): string {
  return createHash('sha256').update(buildId()).update('\0').update(kind).update('\0').update(text).digest('base64');
}
