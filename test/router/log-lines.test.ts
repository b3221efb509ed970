/**
 * The log file's JSON lines (lib/router/log.ts) are pino's: the same records give byte-for-byte the same lines as
 * pino configured as the log used to be (level numbers, ISO time, pid and the logger's fields first, the record's
 * fields redacted, `msg` last, an `err`'s message as the message), apart from the time itself. Pure logic: no
 * kernel.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createLogger, redact } from '../../lib/router/log.js';
import { UsageError } from '../../lib/util/errors.js';

type Write = (l: { debug: Log; info: Log; warn: Log; error: Log }) => void;
type Log = (record: object | string, message?: string) => void;

/** The lines pino writes for `write` with the options the CLI's log had. */
function pinoLines(level: string, base: Record<string, unknown>, write: Write): string[] {
  const lines: string[] = [];
  const logger = pino({
    level, base: { pid: process.pid, ...base }, timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { log: (obj) => redact(obj) as Record<string, unknown> }, serializers: { err: (v: unknown) => v },
  }, { write: (s: string) => { lines.push(s); } });
  write(logger as unknown as Parameters<Write>[0]);
  return lines;
}

/** The lines createLogger writes to its file for `write`. */
function ourLines(level: 'debug' | 'info' | 'warn' | 'error', base: Record<string, unknown>, write: Write): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'nr-log-'));
  try {
    const file = join(dir, 'sub', 'x.log');
    const { logger, close, problem } = createLogger({ file, level, base });
    assert.is(problem, undefined);
    write(logger);
    close();
    return readFileSync(file, 'utf8').split(/(?<=\n)/).filter((l) => l !== '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const untimed = (line: string): string => line.replace(/"time":"[^"]*"/, '"time":"T"');

test('the same lines as pino, record by record (time aside)', () => {
  // made once: both loggers log the very same errors (a stack names where an error was made)
  const kernelSaidNo = new Error('the kernel said no');
  const badIp = new UsageError('bad --public-ip', 'public-ip');
  const records: Write = (l) => {
    l.info({ form: 'options', request: { command: 'add-static-nat', publicIp: { ip: '203.0.113.5', sourceNat: false } }, n: 3, ok: true }, 'command start');
    l.info('a message alone');
    l.debug({ phasesMs: { lock: 0.12, nft: 3.5 } }, 'router changed'); // below info: dropped by both
    l.warn({ nothing: undefined, nan: Number.NaN, inf: Number.POSITIVE_INFINITY, list: [1, 'two', null] }, 'odd values');
    l.error({ durationMs: 12, exitCode: 2, err: kernelSaidNo }, 'command failed');
    l.error({ exitCode: 1, err: badIp }); // no message: the error's
    l.info({ password: 'hunter2', nested: { vm_data: 'secret', keep: 'this' }, pem: '-----BEGIN RSA PRIVATE KEY-----\nx' }, 'secrets');
    l.info({ text: 'quotes " and \\ and \n newline, unicode … ✓, a control \u0001' }, 'escapes: "é"');
    l.warn({}, 'empty record');
  };
  const base = { extension: 'network-namespace', command: 'add-static-nat' };
  const ours = ourLines('info', base, records);
  const theirs = pinoLines('info', base, records);
  assert.is(ours.length, 8, 'one line per record at or above info');
  assert.equal(ours.map(untimed), theirs.map(untimed));
  for (const line of ours) {
    const rec = JSON.parse(line) as { time: string; pid: number };
    assert.ok(!Number.isNaN(Date.parse(rec.time)) && rec.time.endsWith('Z'), 'ISO time');
    assert.is(rec.pid, process.pid);
  }
  assert.not.match(ours.join(''), /hunter2|secret"|BEGIN RSA/, 'secrets never written');
});

test('levels: debug writes debug records; an Error alone is logged as err with its message', () => {
  const thrown = new Error('thrown');
  const records: Write = (l) => {
    l.debug({ phasesMs: { lock: 0.1 } }, 'router changed');
    (l.error as (e: unknown) => void)(thrown);
  };
  assert.equal(ourLines('debug', {}, records).map(untimed), pinoLines('debug', {}, records).map(untimed));
  assert.equal(ourLines('error', {}, records).length, 1, 'debug dropped at error');
});

test('a log file that cannot be made: a silent logger and the reason, never a throw', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-log-'));
  try {
    const blocker = join(dir, 'file');
    writeFileSync(blocker, 'x'); // a regular file where the log's directory would have to be
    const { logger, problem, close } = createLogger({ file: join(blocker, 'x.log') });
    assert.match(problem ?? '', /cannot write log file/);
    logger.info({ a: 1 }, 'nothing written');
    close();
    assert.is(readFileSync(blocker, 'utf8'), 'x');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
