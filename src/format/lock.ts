/**
 * On-disk locks for tags being recorded, shared by every process that opens the archive
 * (the CLI and a daemon alike): `<archive>/btrfly/locks/<tag>.lock` via proper-lockfile,
 * with a `<tag>.json` beside it naming the holder for the error message.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import * as lockfile from 'proper-lockfile';
import { BtrflyError } from '../errors';
import { processAlive } from '../process-alive';
import { pauseAt } from '../test-pause';

/** A lock whose holder died is taken over after this long without a heartbeat. */
const STALE_MS = 15_000;

/** Who holds a tag's lock. */
export interface LockHolder {
  tag: string;
  session: string;
  pid: number;
  host: string;
  since: string;
}

/** A held tag lock. `compromised` turns true if another process took it over (we stalled past STALE_MS). */
export interface TagLock {
  readonly holder: LockHolder;
  readonly compromised: boolean;
  release(): Promise<void>;
}

function lockName(tag: string): string {
  // Tags may hold `/`; one flat directory keeps listing and cleanup simple. A tag of up to
  // 200 bytes (MAX_TAG_BYTES) can encode to 600 characters, past the 255 a file name may
  // have: a long one is named by its digest instead.
  const name = encodeURIComponent(tag);
  return name.length <= 200 ? name : `sha256-${createHash('sha256').update(tag).digest('hex')}`;
}

/**
 * Takes the recording lock of `tag`.
 * @throws BtrflyError TAG_BUSY naming the session that holds it.
 */
export async function lockTag(locksDir: string, tag: string, session: string, retried = false): Promise<TagLock> {
  await mkdir(locksDir, { recursive: true });
  const base = join(locksDir, lockName(tag));
  let compromised = false;
  let unlock: () => Promise<void>;
  try {
    unlock = await lockfile.lock(base, {
      realpath: false,
      lockfilePath: `${base}.lock`,
      stale: STALE_MS,
      retries: 0,
      onCompromised: () => {
        compromised = true;
      },
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
    let other = await lockHolder(locksDir, tag);
    if (!other && !retried) {
      // The holder died on this host (kill -9) before its lock went stale: take it over now,
      // one process at a time, so two recorders that start together never both take it.
      await pauseAt('lock-takeover');
      const taken = await takeOver(locksDir, tag, session);
      if (taken) return taken;
      other = await lockHolder(locksDir, tag);
    }
    const who = other ? `session ${other.session}, pid ${other.pid} on ${other.host}, since ${other.since}` : 'by another process';
    throw new BtrflyError('TAG_BUSY', `tag "${tag}" is already being recorded (${who}): stop it first or pick another tag`, {
      data: { tag, holder: other },
    });
  }
  const holder: LockHolder = { tag, session, pid: process.pid, host: hostname(), since: new Date().toISOString() };
  await writeFile(`${base}.json`, JSON.stringify(holder) + '\n');
  let released = false;
  return {
    holder,
    get compromised() {
      return compromised;
    },
    async release() {
      if (released) return;
      released = true;
      await unlink(`${base}.json`).catch(() => undefined);
      if (!compromised) await unlock();
    },
  };
}

/**
 * Takes the lock of a pending recording's journal, so that `pending seal` and `pending drop`
 * (from two processes) never act on the same recording at once: one of them finishes, the
 * other is refused, or finds it gone. Returns the release.
 * @throws BtrflyError TAG_BUSY when another process holds it.
 */
export async function lockPending(journalPath: string, id: string): Promise<() => Promise<void>> {
  try {
    return await lockfile.lock(journalPath, { realpath: false, lockfilePath: `${journalPath}.lock`, stale: STALE_MS, retries: 0, onCompromised: () => undefined });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
    throw new BtrflyError('TAG_BUSY', `pending recording ${id} is being sealed or dropped by another btrfly process: wait for it to finish, then run "btrfly status"`, { data: { id } });
  }
}

/**
 * Takes over the lock of `tag` from a dead holder under a short mutex (`<tag>.takeover`, no
 * `.lock` suffix so no listing takes it for a tag). Inside it the holder is looked at again:
 * another process may have taken the lock over meanwhile, and then it is theirs. The dead
 * holder's file goes first, so a lock without one reads as held by someone unnamed, never as dead.
 * Returns undefined when the lock is not free to take (the caller reports who holds it).
 */
async function takeOver(locksDir: string, tag: string, session: string): Promise<TagLock | undefined> {
  const base = join(locksDir, lockName(tag));
  let unlockMutex: () => Promise<void>;
  try {
    // Its own file name: proper-lockfile keeps one lock a file name in a process, and the tag's is `base`.
    unlockMutex = await lockfile.lock(`${base}.takeover`, {
      realpath: false,
      lockfilePath: `${base}.takeover`,
      stale: STALE_MS,
      retries: { retries: 50, minTimeout: 10, maxTimeout: 100 },
      onCompromised: () => undefined,
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
    return undefined;
  }
  try {
    if (await lockHolder(locksDir, tag)) return undefined;
    await unlink(`${base}.json`).catch(() => undefined);
    await rm(`${base}.lock`, { recursive: true, force: true });
    return await lockTag(locksDir, tag, session, true);
  } catch (e) {
    if (e instanceof BtrflyError && e.code === 'TAG_BUSY') return undefined;
    throw e;
  } finally {
    await unlockMutex();
  }
}

/** The holder of a tag's lock, or null when nobody records it. */
export async function lockHolder(locksDir: string, tag: string): Promise<LockHolder | null> {
  const base = join(locksDir, lockName(tag));
  const held = await lockfile.check(base, { realpath: false, lockfilePath: `${base}.lock`, stale: STALE_MS }).catch(() => false);
  if (!held) return null;
  let holder: LockHolder;
  try {
    holder = JSON.parse(await readFile(`${base}.json`, 'utf8')) as LockHolder;
  } catch {
    return { tag, session: 'unknown', pid: 0, host: 'unknown', since: 'unknown' };
  }
  // A holder on this host whose process is gone holds nothing, stale or not yet.
  if (holder.host === hostname() && holder.pid > 0 && !processAlive(holder.pid)) return null;
  return holder;
}

/** Every recorder that holds a tag's lock now (any process, any host that shares the archive). */
export async function liveRecorders(locksDir: string): Promise<LockHolder[]> {
  const out: LockHolder[] = [];
  for (const name of (await readdir(locksDir).catch(() => [] as string[])).filter((n) => n.endsWith('.lock'))) {
    const base = name.slice(0, -'.lock'.length);
    // The tag as its holder wrote it; a long tag's lock is named by its digest.
    const tag = await readFile(join(locksDir, `${base}.json`), 'utf8').then(
      (t) => (JSON.parse(t) as LockHolder).tag,
      () => (base.startsWith('sha256-') ? undefined : decodeURIComponent(base)),
    );
    const holder = tag === undefined ? null : await lockHolder(locksDir, tag);
    if (holder) out.push(holder);
  }
  return out;
}

/**
 * Removes the locks (and holder files) of recorders on this host whose process died, so
 * nothing of a killed `btrfly run` stays behind after `gc`. Returns the tags freed.
 */
export async function reclaimDeadLocks(locksDir: string): Promise<string[]> {
  const freed: string[] = [];
  const names = await readdir(locksDir).catch(() => [] as string[]);
  for (const name of names) {
    // A lock whose holder died before naming itself: gone once it is stale.
    if (!name.endsWith('.lock') || names.includes(name.slice(0, -'.lock'.length) + '.json')) continue;
    const base = join(locksDir, name.slice(0, -'.lock'.length));
    const held = await lockfile.check(base, { realpath: false, lockfilePath: `${base}.lock`, stale: STALE_MS }).catch(() => true);
    if (!held) await rm(`${base}.lock`, { recursive: true, force: true });
  }
  for (const name of names) {
    if (!name.endsWith('.json')) continue;
    const base = join(locksDir, name.slice(0, -'.json'.length));
    let holder: LockHolder;
    try {
      holder = JSON.parse(await readFile(`${base}.json`, 'utf8')) as LockHolder;
    } catch {
      continue;
    }
    if (holder.host !== hostname() || holder.pid <= 0 || processAlive(holder.pid)) continue;
    await rm(`${base}.lock`, { recursive: true, force: true });
    await unlink(`${base}.json`).catch(() => undefined);
    freed.push(holder.tag);
  }
  return freed;
}
