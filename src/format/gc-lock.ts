/**
 * `gc` and recorders exclude each other. gc holds `<archive>/btrfly/gc.lock` while it runs; a
 * recorder, once it holds its tag's lock, waits while gc holds this one. Each takes its own
 * lock before it looks at the other's, so at least one of them sees the other: a recording
 * begun first is seen by gc (which then keeps everything young and everything a journal names),
 * and a recording that begins during gc waits for it, so gc never prunes objects a recording
 * has just written (issue 12.5: "object … is unavailable" at seal).
 */
import { readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import * as lockfile from 'proper-lockfile';
import { BtrflyError } from '../errors';
import { processAlive } from '../process-alive';

/** As for tag locks: a holder that stopped refreshing for this long is gone. */
const STALE_MS = 15_000;
/** How often a waiting recorder looks at the gc lock again. */
const WAIT_STEP_MS = 200;

interface GcHolder {
  pid: number;
  /** What holds the lock (`btrfly gc`, `btrfly verify --repair`, `btrfly migrate --lfs`); absent in a lock written before it was told. */
  command?: string;
  host: string;
  since: string;
}

const paths = (stateDir: string) => ({ base: join(stateDir, 'gc'), lock: join(stateDir, 'gc.lock'), holder: join(stateDir, 'gc.json') });

/**
 * Takes the gc lock; resolves with its release.
 * @throws BtrflyError LOCKED when another gc runs on the archive
 */
export async function lockForGc(stateDir: string, command = 'btrfly gc', retried = false): Promise<() => Promise<void>> {
  const p = paths(stateDir);
  let unlock: () => Promise<void>;
  try {
    unlock = await lockfile.lock(p.base, { realpath: false, lockfilePath: p.lock, stale: STALE_MS, retries: 0, onCompromised: () => undefined });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
    const other = await gcHolder(stateDir);
    if (!other && !retried) {
      await rm(p.lock, { recursive: true, force: true });
      return lockForGc(stateDir, command, true);
    }
    throw new BtrflyError('LOCKED', `${other?.command ?? 'btrfly gc'} is already running on this archive${other ? ` (pid ${other.pid} on ${other.host}, since ${other.since})` : ''}: wait for it to finish`);
  }
  const holder: GcHolder = { pid: process.pid, command, host: hostname(), since: new Date().toISOString() };
  await writeFile(p.holder, JSON.stringify(holder) + '\n');
  return async () => {
    await unlink(p.holder).catch(() => undefined);
    await unlock().catch(() => undefined);
  };
}

/** Who runs gc on the archive, or null when nobody does (a holder on this host whose process died holds nothing). */
async function gcHolder(stateDir: string): Promise<GcHolder | null> {
  const p = paths(stateDir);
  const held = await lockfile.check(p.base, { realpath: false, lockfilePath: p.lock, stale: STALE_MS }).catch(() => false);
  if (!held) return null;
  const holder = await readFile(p.holder, 'utf8').then((t) => JSON.parse(t) as GcHolder, () => null);
  if (!holder) return { pid: 0, host: 'unknown', since: 'unknown' };
  if (holder.host === hostname() && holder.pid > 0 && !processAlive(holder.pid)) return null;
  return holder;
}

/**
 * Resolves once no gc runs on the archive. Call holding the tag's lock, before writing anything.
 * @param onWait called once, with the holder's pid and command, when it has to wait
 */
export async function waitForGc(stateDir: string, onWait?: (pid: number, command: string) => void): Promise<void> {
  let told = false;
  for (;;) {
    const holder = await gcHolder(stateDir);
    if (!holder) return;
    if (!told) onWait?.(holder.pid, holder.command ?? 'btrfly gc');
    told = true;
    await new Promise((r) => setTimeout(r, WAIT_STEP_MS));
  }
}
