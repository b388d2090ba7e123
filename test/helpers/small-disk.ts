import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { registerCleanup } from './cleanup';
import { tmpDir } from './tmp';

/** A tmpfs mounted in a private mount namespace (the host's mounts are never touched). */
export interface SmallDisk {
  /** The process that holds the namespace (it lives as long as this test file). */
  holder: ChildProcess;
  /** The mount point, inside the namespace. */
  mnt: string;
  /** The tmpfs as this process sees it: through the holder's root. */
  seen: string;
}

/**
 * Mounts a tmpfs of `size` (`16m`, `1m`) in a new private mount namespace, for tests of a full
 * disk. Needs root, `unshare` and `mount`.
 */
export async function smallDisk(size: string): Promise<SmallDisk> {
  const mnt = join(tmpDir(), 'mnt');
  mkdirSync(mnt);
  // The namespace lives as long as this shell waits on its stdin.
  const holder = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o size=${size} btrfly-test ${mnt} && echo ready && exec cat`], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  registerCleanup(() => {
    holder.stdin?.end();
    holder.kill();
  });
  await new Promise<void>((resolve, reject) => {
    holder.stdout!.once('data', () => resolve());
    holder.once('exit', (code) => reject(new Error(`unshare/mount failed (${code})`)));
  });
  return { holder, mnt, seen: `/proc/${holder.pid}/root${mnt}` };
}
