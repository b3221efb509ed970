/**
 * The one expect-a-throw helper of the tests: `thrown` runs a function, `rejected` awaits a promise, and both
 * return the error after checking that there was one, of the class given, with the properties given (a RegExp
 * matches a string property; anything else is compared deeply). A test that expects a refusal can then not
 * pass because nothing was thrown, or because something else went wrong.
 */
import * as assert from 'uvu/assert';

/** An error class, whatever its constructor takes. */
type ErrorClass<E> = abstract new (...args: never[]) => E;
type Expected<E> = { [K in keyof E]?: E[K] | RegExp };

const NO_ERROR = Symbol('no error');

function check<E extends Error>(err: unknown, cls: ErrorClass<E>, props: Expected<E>, what: string): E {
  if (err === NO_ERROR) assert.unreachable(`${what}: nothing was thrown (expected ${cls.name})`);
  if (!(err instanceof cls)) assert.unreachable(`${what}: expected ${cls.name}, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  const e = err as E;
  for (const [k, want] of Object.entries(props) as Array<[keyof E & string, unknown]>) {
    const got = e[k];
    if (want instanceof RegExp) assert.match(String(got), want, `${what}: ${cls.name}.${k} = ${JSON.stringify(got)} (${e.message})`);
    else assert.equal(got, want, `${what}: ${cls.name}.${k} (${e.message})`);
  }
  return e;
}

/** The error `fn` throws: of class `cls`, with `props`. */
export function thrown<E extends Error>(fn: () => unknown, cls: ErrorClass<E>, props: Expected<E> = {}, what = 'expected a throw'): E {
  let err: unknown = NO_ERROR;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  return check(err, cls, props, what);
}

/** The rejection of `p` (or of what `fn` returns or throws): of class `cls`, with `props`. */
export async function rejected<E extends Error>(p: Promise<unknown> | (() => unknown), cls: ErrorClass<E>, props: Expected<E> = {}, what = 'expected a rejection'): Promise<E> {
  let err: unknown = NO_ERROR;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  return check(err, cls, props, what);
}
