import { readFileSync } from 'node:fs';
import { CLI_ENTRY, cliEnv, cliWorkDir } from './cli';
import type { Netns } from './netns';

/** How a btrfly process run by {@link btrflyIn} ended. */
export interface NsRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Peak resident set of the btrfly process (VmHWM), KiB, as last seen before it exited. */
  peakRssKiB: number;
}

/** Runs `btrfly ARGS` inside `ns` (`ip netns exec` execs node, so the child's pid is btrfly's) and samples its VmHWM. */
export function btrflyIn(ns: Netns, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 240_000): Promise<NsRun> {
  const child = ns.spawn(process.execPath, [CLI_ENTRY, ...args], { cwd: cliWorkDir(), env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let peak = 0;
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const sample = () => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      // Until `ip` has exec'd node the status is ip's; VmHWM only grows, so the max is node's.
      if (m) peak = Math.max(peak, Number(m[1]));
    } catch {
      /* exited */
    }
  };
  const poll = setInterval(sample, 50);
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', sample);
    child.on('close', (code) => {
      clearInterval(poll);
      clearTimeout(killer);
      resolve({ code, stdout, stderr, peakRssKiB: peak });
    });
  });
}

/** A git smart-HTTP server (test/fixtures/git-http-server.js) as a process inside `ns`. */
