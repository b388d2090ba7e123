/**
 * Conditional suites that cannot pass by accident. Where a test needs something the machine
 * may lack (root, network namespaces, a client), it is defined through these: on a developer's
 * machine without it the test is skipped with a warning saying what is missing; under
 * `CI=true`, where `.ci/packages.txt` installs everything, it fails with that reason instead.
 */

/** What is missing (names, or one reason), or nothing when the test can run. */
export type Missing = readonly string[] | string | false | undefined | null;

function reason(missing: Missing): string | undefined {
  if (!missing) return undefined;
  if (typeof missing === 'string') return missing;
  return missing.length ? `this machine lacks: ${missing.join(', ')}` : undefined;
}

function failing(name: string, why: string): () => void {
  return () => {
    throw new Error(`${name}: cannot run under CI (${why}); install what .ci/packages.txt lists, as root`);
  };
}

/** `describe` when nothing is missing; otherwise skipped with a warning, or failing under CI. */
export function describeWhen(missing: Missing): (name: string, fn: () => void) => void {
  const why = reason(missing);
  if (!why) return describe;
  if (process.env.CI) return (name) => describe(name, () => test('can run on this machine', failing(name, why)));
  return (name, fn) => {
    console.warn(`skipped "${name}": ${why}`);
    describe.skip(name, fn);
  };
}

/** `test` when nothing is missing; otherwise skipped with a warning, or failing under CI. */
export function testWhen(missing: Missing): (name: string, fn: jest.ProvidesCallback, timeout?: number) => void {
  const why = reason(missing);
  if (!why) return test;
  if (process.env.CI) return (name) => test(name, failing(name, why));
  return (name, fn, timeout) => {
    console.warn(`skipped "${name}": ${why}`);
    test.skip(name, fn, timeout);
  };
}
