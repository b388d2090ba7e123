import { readFileSync } from 'node:fs';

/**
 * True when a process with this id runs on this host (EPERM: it runs, as another user).
 * A zombie does not run: a daemon killed with SIGKILL whose parent has not reaped it yet
 * still answers signal 0, and must not keep its tag lock (measured: the host-mode kill -9
 * test failed under load when `stop` ran before the reaper).
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !isZombie(pid);
}

/** `/proc/<pid>/stat` state Z (zombie) or X (dead); false where there is no /proc. */
function isZombie(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  // "pid (comm) S ...": comm may hold spaces and parentheses, so read after the last ')'.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === 'Z' || state === 'X';
}
