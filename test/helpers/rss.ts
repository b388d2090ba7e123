import { readdirSync, readFileSync } from 'node:fs';

/** Peak memory of a process tree, sampled from /proc. */
export interface TreeRss {
  /** Highest sum of VmRSS over the whole tree at one sample, MiB. */
  peakTotalMiB: number;
  /** Per command name (`node`, `git`, `git-upload-pack`, `ssh`...): the highest VmHWM any one process of it reached, MiB. */
  peakByCommand: Record<string, number>;
}

function statusOf(pid: number): { ppid: number; name: string; rssKiB: number; hwmKiB: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (k: string): string => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(s)?.[1] ?? '';
    return { ppid: Number(field('PPid')), name: field('Name'), rssKiB: parseInt(field('VmRSS'), 10) || 0, hwmKiB: parseInt(field('VmHWM'), 10) || 0 };
  } catch {
    return undefined; // gone between listing and reading
  }
}

/**
 * Samples the tree under `rootPid` every `everyMs` until the returned function is called.
 * Each process's own peak (VmHWM) is exact up to its last sample before it exits; the
 * tree total is as good as the sampling rate.
 */
export function watchTreeRss(rootPid: number, everyMs = 50): () => TreeRss {
  const peakByCommand: Record<string, number> = {};
  let peakTotalKiB = 0;
  const sample = (): void => {
    const all = new Map<number, NonNullable<ReturnType<typeof statusOf>>>();
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      const st = statusOf(Number(d));
      if (st) all.set(Number(d), st);
    }
    const inTree = new Set<number>([rootPid]);
    let grew = true;
    while (grew) {
      grew = false;
      for (const [pid, st] of all) if (!inTree.has(pid) && inTree.has(st.ppid)) {
        inTree.add(pid);
        grew = true;
      }
    }
    let total = 0;
    for (const pid of inTree) {
      const st = all.get(pid);
      if (!st) continue;
      total += st.rssKiB;
      peakByCommand[st.name] = Math.max(peakByCommand[st.name] ?? 0, Math.round(st.hwmKiB / 1024));
    }
    peakTotalKiB = Math.max(peakTotalKiB, total);
  };
  const timer = setInterval(sample, everyMs);
  sample();
  return () => {
    clearInterval(timer);
    return { peakTotalMiB: Math.round(peakTotalKiB / 1024), peakByCommand };
  };
}
