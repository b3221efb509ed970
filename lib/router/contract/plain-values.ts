/**
 * A program's plain values (inputs.ts) → the same typed request the CLI builds. The values go into the CLI's
 * argument bag as if given as options (`publicPort: 99999` is `--public-port 99999`) and through the same
 * builders (build.ts), so every check, message and error class is the CLI's: `--public-port: "99999" is not a
 * port (1-65535)`, a UsageError naming `--public-port`. Nothing here validates a value itself.
 */
import { UsageError } from '../../util/errors.js';
import { BUILDERS, type BuildContext } from './build.js';
import { decodeDetails } from './decode.js';
import { FIELDS, optionAttr, type FieldDef } from './fields.js';
import { unknownOptionError } from './parse.js';
import { FieldBag, FieldReader } from './reader.js';
import type { CommandInputs } from './inputs.js';
import type { EngineCommand, RequestOf } from './types.js';
import { BadValue } from './values.js';

/** Each field by its property name: the option in camelCase (`public-port` → `publicPort`). */
const FIELD_BY_PROPERTY: ReadonlyMap<string, FieldDef> = new Map(FIELDS.map((f) => [optionAttr(f.option), f]));

/** Fields that take a comma separated list, and so a list too. */
const LIST_FIELDS = new Set(['dns', 'dns6']);

/** `publicPorts` → `--public-ports` (how an unknown property is named: as the option it would be). */
const optionOf = (property: string): string => `--${property.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/**
 * A value as the CLI would have received it: a list of a list field joined, an object or array (a document, DHCP
 * options, action parameters) as its JSON — a copy, so a caller changing it later changes nothing here.
 */
function asArgument(f: FieldDef, value: unknown): unknown {
  if (LIST_FIELDS.has(f.key) && Array.isArray(value)) return value.join(',');
  if (typeof value !== 'object' || value === null) return value;
  try {
    return JSON.parse(JSON.stringify(value)) as unknown;
  } catch {
    throw new UsageError(`--${f.option}: not a JSON document`, `--${f.option}`);
  }
}

/**
 * The request of `command` for `values` (properties named like the CLI's options in camelCase; undefined ones
 * are absent). An unknown property is refused like an unknown option; every value is validated by the CLI's
 * builder. Throws UsageError naming the option.
 */
export function requestFromValues<C extends EngineCommand>(command: C, values: CommandInputs[C] | undefined, ctx: BuildContext): RequestOf<C> {
  const input: unknown = values ?? {};
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new UsageError(`${command}: the arguments must be an object of named values`, command);
  }
  const bag = new FieldBag('options');
  for (const [property, value] of Object.entries(input)) {
    if (value === undefined) continue;
    const f = FIELD_BY_PROPERTY.get(property);
    if (!f) throw unknownOptionError(optionOf(property));
    bag.set(f.key, { value: asArgument(f, value), source: `--${f.option}`, origin: { kind: 'option' } });
  }
  return BUILDERS[command](new FieldReader(command, bag), ctx) as RequestOf<C>;
}

/** network-extension-details given to a library call: an object, or its JSON text; named like the CLI's option. */
export function networkDetailsOf(value: unknown): Record<string, unknown> {
  if (value === undefined) return {};
  try {
    return decodeDetails(value);
  } catch (e) {
    if (e instanceof BadValue) throw new UsageError(`--network-extension-details: ${e.message}`, '--network-extension-details');
    throw e;
  }
}
