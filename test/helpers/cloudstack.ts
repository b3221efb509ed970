/**
 * How CloudStack reads what an extension command printed (NetworkExtensionElement.executeScriptWithFilePayload
 * and the UI's RunCustomAction.vue), for tests: the same rules, written down here — not CloudStack's code.
 */
import * as assert from 'uvu/assert';

export interface CloudStackResult {
  /** CloudStack's verdict: exit 0 and, when the output is a JSON object with a non-blank `status`, "success" (any case) */
  ok: boolean;
  /** stdout and stderr as one trimmed text (CloudStack merges them): the custom-action API result's `details` */
  details: string;
  /** the output parsed, when it is a JSON object */
  json?: Record<string, unknown>;
}

export function cloudstackReads(r: { status: number | null; stdout: string; stderr: string }): CloudStackResult {
  const details = `${r.stdout}${r.stderr}`.trim();
  let json: Record<string, unknown> | undefined;
  try {
    const v = JSON.parse(details) as unknown;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) json = v as Record<string, unknown>;
  } catch { /* not JSON: CloudStack ignores it */ }
  const status = json?.status;
  const bad = status !== undefined && status !== null && String(status).trim() !== '' && String(status).toLowerCase() !== 'success';
  return { ok: r.status === 0 && !bad, details, ...(json ? { json } : {}) };
}

/**
 * A successful custom action as CloudStack and its UI take it: exit 0, nothing on stderr (it would be merged
 * into the JSON), `status` "success", `printmessage` "true"; returns `message`.
 */
export function envelopeMessage(r: { status: number | null; stdout: string; stderr: string }): unknown {
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stderr, '', 'nothing on stderr: CloudStack merges it into the output');
  const cs = cloudstackReads(r);
  assert.ok(cs.json, `one JSON object: ${cs.details.slice(0, 200)}`);
  assert.ok(cs.ok, cs.details.slice(0, 200));
  assert.is(cs.json!.status, 'success');
  assert.is(cs.json!.printmessage, 'true');
  assert.is(r.stdout.trim().split('\n').length, 1, 'one line');
  return cs.json!.message;
}

/**
 * A message the UI shows as a table (RunCustomAction.vue: an array of rows, or one row object; columns are
 * the first row's keys, cells `String(value)`): every cell a string, so none renders as "[object Object]".
 */
export function tableRows(message: unknown): Array<Record<string, string>> {
  assert.ok(Array.isArray(message), `a list of rows: ${JSON.stringify(message).slice(0, 200)}`);
  for (const row of message as unknown[]) {
    assert.ok(typeof row === 'object' && row !== null && !Array.isArray(row), 'each row an object');
    for (const [k, v] of Object.entries(row as object)) assert.type(v, 'string', `cell ${k} is text`);
  }
  return message as Array<Record<string, string>>;
}

/** The `content` of one dump-config section, parsed when it is JSON. */
export function dumpSection(message: unknown, section: string): any {
  const row = tableRows(message).find((x) => x.section === section);
  assert.ok(row, `dump-config has a "${section}" section`);
  try {
    return JSON.parse(row!.content);
  } catch {
    return row!.content;
  }
}
