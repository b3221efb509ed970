/**
 * Decoding of JSON documents given as option values, files or payload entries. Older CloudStack
 * builds base64-encode them (`--fw-rules-file` held base64 text); current ones embed JSON.
 * Error messages never quote the input: these documents carry passwords and user data.
 */
import { readFileSync, statSync } from 'node:fs';
import { BadValue } from './values.js';

/** Largest payload/rules file we read (CloudStack payloads are far smaller). */
export const MAX_DOCUMENT_BYTES = 64 * 1024 * 1024;

const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const B64URL_RE = /^[A-Za-z0-9_-]*={0,2}$/;

/** Parse JSON; on failure report only the position, never the text. */
export function parseJsonText(text: string, what = 'JSON'): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const m = /position (\d+)/.exec(e instanceof Error ? e.message : '');
    throw new BadValue(`not valid ${what}${m ? ` (error at position ${m[1]})` : ''}`);
  }
}

/** Strict base64 (standard or URL alphabet, whitespace ignored) → UTF-8 text. */
export function decodeBase64Text(text: string): string {
  const compact = text.replace(/\s+/g, '');
  if (compact.length === 0 || compact.length % 4 === 1 || !(B64_RE.test(compact) || B64URL_RE.test(compact))) {
    throw new BadValue('neither JSON nor base64');
  }
  const buf = Buffer.from(compact, B64_RE.test(compact) ? 'base64' : 'base64url');
  const out = buf.toString('utf8');
  if (out.includes('\uFFFD')) throw new BadValue('base64 content is not UTF-8 text');
  return out;
}

/**
 * A JSON document given as text: JSON when it starts with '{' or '[' (or is a JSON scalar),
 * otherwise base64 of JSON.
 */
export function decodeJsonOrBase64(text: string): unknown {
  const t = text.trim();
  if (t === '') throw new BadValue('empty document');
  if (t.startsWith('{') || t.startsWith('[') || t.startsWith('"')) return parseJsonText(t);
  let decoded: string;
  try {
    decoded = decodeBase64Text(t);
  } catch (e) {
    // a JSON number/boolean/null is valid JSON, not base64
    if (/^(true|false|null|-?[0-9][0-9.eE+-]*)$/.test(t)) return parseJsonText(t);
    throw e;
  }
  return parseJsonText(decoded.trim(), 'JSON inside the base64 text');
}

/** Reads a file's bytes with a size bound; BadValue explains a missing/unreadable file. */
export function readDocumentFile(path: string): Buffer {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new BadValue(`${JSON.stringify(path)} is not a regular file`);
    size = st.size;
  } catch (e) {
    if (e instanceof BadValue) throw e;
    throw new BadValue(`cannot read ${JSON.stringify(path)}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (size > MAX_DOCUMENT_BYTES) throw new BadValue(`${JSON.stringify(path)} is larger than ${MAX_DOCUMENT_BYTES} bytes`);
  try {
    return readFileSync(path);
  } catch (e) {
    throw new BadValue(`cannot read ${JSON.stringify(path)}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

/** Reads a text file (UTF-8) with a size bound; BadValue explains a missing/unreadable file. */
export function readTextFile(path: string): string {
  return readDocumentFile(path).toString('utf8');
}

/**
 * Extension details: a JSON object, or a string holding one (CloudStack sends either).
 * Empty/absent → {}.
 */
export function decodeDetails(value: unknown): Record<string, unknown> {
  if (value === undefined || value === null || value === '') return {};
  let v: unknown = value;
  if (typeof v === 'string') v = v.trim() === '' ? {} : parseJsonText(v);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BadValue('not a JSON object');
  return v as Record<string, unknown>;
}
