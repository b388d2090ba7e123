/**
 * One registry of things to undo when a test file ends: servers to stop, processes to
 * kill, directories and namespaces to remove. Every helper that starts something
 * registers it here, so a test that fails half-way still leaves the machine clean.
 *
 * Jest gives each test file a fresh module registry, so this module's state is per test
 * file. Importing it (directly or through any helper) at the top of a test file hooks
 * {@link runCleanups} into that file's `afterAll`.
 */
type Cleanup = () => unknown;

const cleanups: Cleanup[] = [];

/**
 * Registers `fn` to run at the end of the test file (last registered runs first).
 * Returns a function that unregisters it, for helpers whose `close()` ran already.
 */
export function registerCleanup(fn: Cleanup): () => void {
  cleanups.push(fn);
  return () => {
    const at = cleanups.lastIndexOf(fn);
    if (at >= 0) cleanups.splice(at, 1);
  };
}

/**
 * Runs every registered cleanup, newest first, even when some fail; then throws the
 * first failure so a leak is reported rather than hidden.
 */
export async function runCleanups(): Promise<void> {
  let first: unknown;
  while (cleanups.length > 0) {
    const fn = cleanups.pop() as Cleanup;
    try {
      await fn();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}

declare const afterAll: ((fn: () => Promise<void>, timeout?: number) => void) | undefined;
// Hooks may only be declared while jest collects the file, i.e. when the file's top-level
// imports load this module; a later (lazy) import cannot add one, so it is skipped then.
if (typeof afterAll === 'function') {
  try {
    afterAll(runCleanups, 60_000);
  } catch {
    /* not in the collection phase */
  }
}
