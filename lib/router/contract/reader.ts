/**
 * FieldBag: the arguments of one invocation, keyed by payload key, whatever form they came in;
 * FieldReader: typed access to it that turns every problem into a UsageError naming the argument
 * exactly as the caller wrote it (`--public-port`, `payload.public_port`, `action-params`).
 */
import { UsageError } from '../../util/errors.js';
import { FIELD_BY_KEY } from './fields.js';
import { BadValue } from './values.js';
import { decodeJsonOrBase64, readDocumentFile } from './decode.js';
import type { OpaqueJson } from './types.js';

/** Where a bag entry came from. */
export type EntryOrigin =
  | { kind: 'option' }            // --public-port 80
  | { kind: 'option-file'; path: string } // --fw-rules-file /tmp/x
  | { kind: 'payload' };          // payload.public_port

export interface BagEntry {
  value: unknown;
  /** how to name it in messages: "--public-port", "payload.public_port", "--fw-rules-file" */
  source: string;
  origin: EntryOrigin;
}

/** How absent arguments are named: by option, or by payload key (nested or flat). */
export type NamingStyle = 'options' | 'payload' | 'flat-payload';

/** The arguments of one invocation by payload key, whatever form they came in, with how to name each in messages. */
export class FieldBag {
  private readonly entries = new Map<string, BagEntry>();
  constructor(readonly naming: NamingStyle) {}

  set(key: string, entry: BagEntry): void {
    this.entries.set(key, entry);
  }

  get(key: string): BagEntry | undefined {
    return this.entries.get(key);
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  /** Name of an argument for messages, whether or not it was given. */
  label(key: string): string {
    const e = this.entries.get(key);
    if (e) return e.source;
    const option = FIELD_BY_KEY.get(key)?.option ?? key.replace(/_/g, '-');
    if (this.naming === 'options') return `--${option}`;
    if (this.naming === 'payload') return `payload.${key}`;
    return key;
  }
}

/** Upstream treats "" (and JSON null) exactly like an absent argument. */
function isAbsent(v: unknown): boolean {
  return v === undefined || v === null || (typeof v === 'string' && v.trim() === '');
}

/** Typed access to a FieldBag: every problem becomes a UsageError naming the argument as the caller wrote it. */
export class FieldReader {
  constructor(readonly command: string, readonly bag: FieldBag) {}

  label(key: string): string {
    return this.bag.label(key);
  }

  has(key: string): boolean {
    const e = this.bag.get(key);
    return e !== undefined && !isAbsent(e.value);
  }

  fail(key: string, problem: string): never {
    const label = this.label(key);
    throw new UsageError(`${label}: ${problem}`, label);
  }

  missing(key: string, why = `is required for ${this.command}`): never {
    const label = this.label(key);
    throw new UsageError(`${label} ${why}`, label);
  }

  /** Scalar as text (numbers and booleans from JSON payloads are stringified). */
  private scalar(key: string, trim: boolean): string | undefined {
    const e = this.bag.get(key);
    if (!e || isAbsent(e.value)) return undefined;
    const v = e.value;
    if (typeof v === 'string') return trim ? v.trim() : v;
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
    if (typeof v === 'boolean') return String(v);
    this.fail(key, `expected a ${'string'}, got ${Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : typeof v}`);
  }

  /** Optional validated value. */
  opt<T>(key: string, parse: (text: string) => T): T | undefined {
    const text = this.scalar(key, true);
    if (text === undefined) return undefined;
    try {
      return parse(text);
    } catch (e) {
      if (e instanceof BadValue) this.fail(key, e.message);
      throw e;
    }
  }

  /** Required validated value. */
  req<T>(key: string, parse: (text: string) => T, why?: string): T {
    const v = this.opt(key, parse);
    if (v === undefined) this.missing(key, why);
    return v;
  }

  /** Boolean with the upstream default for an absent value. */
  bool(key: string, dflt: boolean): boolean {
    return this.opt(key, (t) => {
      const l = t.toLowerCase();
      if (l === 'true') return true;
      if (l === 'false') return false;
      throw new BadValue(`${JSON.stringify(t)} is not a boolean (true or false)`);
    }) ?? dflt;
  }

  /**
   * Free text kept verbatim (user data, keys, passwords): never trimmed, never quoted in errors.
   * Absent → undefined; "" counts as absent like upstream.
   */
  secretText(key: string): string | undefined {
    const e = this.bag.get(key);
    if (!e || isAbsent(e.value)) return undefined;
    if (typeof e.value !== 'string') this.fail(key, 'expected a string');
    return e.value;
  }

  /** Plain text with a sanity bound: no control characters, at most `max` characters. */
  plainText(key: string, max = 253): string | undefined {
    const text = this.scalar(key, true);
    if (text === undefined) return undefined;
    if (text.length > max || /[\u0000-\u001f\u007f]/.test(text)) {
      this.fail(key, `not plain text (at most ${max} characters, no control characters)`);
    }
    return text;
  }

  /**
   * A JSON document (rules, vm data): a JSON value in the payload, JSON or base64 text in an
   * option or payload string, or a file with either. Decode errors name the argument. `keepText`: the document
   * as given comes along (OpaqueJson.raw: the text, or the file's bytes), and is decoded only when `value` is
   * first read — a module that recognises it needs no decode (a decode error is then thrown by that read, naming
   * the argument all the same).
   */
  document(key: string, opts: { keepText?: boolean } = {}): OpaqueJson | undefined {
    const e = this.bag.get(key);
    if (!e || isAbsent(e.value)) return undefined;
    const decode = (raw: string | Buffer): unknown => {
      try {
        return decodeJsonOrBase64(typeof raw === 'string' ? raw : raw.toString('utf8'));
      } catch (err) {
        if (err instanceof BadValue) this.fail(key, err.message);
        throw err;
      }
    };
    let raw: string | Buffer;
    if (e.origin.kind === 'option-file') {
      try {
        raw = readDocumentFile(e.origin.path);
      } catch (err) {
        if (err instanceof BadValue) this.fail(key, err.message);
        throw err;
      }
    } else if (typeof e.value === 'string') {
      raw = e.value;
    } else {
      return { value: e.value, source: e.source };
    }
    return opts.keepText ? lazyDocument(e.source, raw, decode) : { value: decode(raw), source: e.source };
  }

  /** A JSON object given as an object or as JSON/base64 text; absent → undefined. */
  object(key: string): Record<string, unknown> | undefined {
    const d = this.document(key);
    if (!d) return undefined;
    if (typeof d.value !== 'object' || d.value === null || Array.isArray(d.value)) this.fail(key, 'expected a JSON object');
    return d.value as Record<string, unknown>;
  }
}

/**
 * A document given as text, decoded when its `value` is first read (an accessor, enumerable: a copy or a deep
 * comparison reads it; the log's abbreviate() does not, log.ts). What was given is kept non-enumerable: a
 * request is logged and may be serialised, and a base64 text could carry what the decoded value has redacted.
 */
function lazyDocument(source: string, raw: string | Buffer, decode: (raw: string | Buffer) => unknown): OpaqueJson {
  let decoded: { value: unknown } | undefined;
  const doc = { source } as OpaqueJson;
  Object.defineProperty(doc, 'value', { enumerable: true, get: () => (decoded ??= { value: decode(raw) }).value });
  Object.defineProperty(doc, 'raw', { value: raw, enumerable: false });
  return doc;
}
