/**
 * The digest of an fw_rules document as given (a file's bytes, an option's text: JSON or base64), stored with
 * the network's firewall state by the apply-fw-rules that parsed it. The same digest again means the same
 * bytes, whose parse (a pure function of them, for this build: the build's identity is part of the digest) is
 * the document the state already holds — validated when it was applied, and applied since the state is only
 * saved after its reconcile succeeded. Such a re-apply skips the parse and validation (~40 ms for 10,000 rules
 * in a cold process), nothing else: the kernel is still reconciled to the state (drift repaired). A text that
 * differs in one byte has another digest and is parsed and validated whole.
 */
import { createHash } from 'node:crypto';
import { buildId } from '../state/build-id.js';

/**
 * The digest of a document as given: a file's bytes as they are; a text as UTF-16 (lossless: UTF-8 would map a
 * lone surrogate and U+FFFD to the same bytes, i.e. two different texts to one digest). The form is hashed too.
 */
export function payloadDigest(kind: string, raw: string | Buffer): string {
  const h = createHash('sha256').update(buildId()).update('\0').update(kind).update('\0');
  if (typeof raw === 'string') h.update('text\0').update(raw, 'utf16le');
  else h.update('bytes\0').update(raw);
  return h.digest('base64');
}
