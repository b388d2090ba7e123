import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { processAlive } from '../src/process-alive';

/** Resolves when `pid` has exited and waits to be reaped (state Z in /proc/PID/stat). */
async function becomesZombie(pid: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) {
    if (Date.now() > deadline) throw new Error(`process ${pid} did not exit within 10 s`);
    await new Promise((r) => setImmediate(r));
  }
}

describe('processAlive', () => {
  it('is true for a running process and false for one that is gone', () => {
    expect(processAlive(process.pid)).toBe(true);
    expect(processAlive(2 ** 22 + 12345)).toBe(false); // above Linux's pid_max
  });

  it('is false for a zombie: killed, not yet reaped by its parent', async () => {
    // `sleep 0.1` exits; its parent (exec'd into `sleep 5`) never waits for it.
    const parent = spawn('sh', ['-c', 'sleep 0.1 & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const pid = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (b: Buffer) => resolve(b.toString()))));
    try {
      await becomesZombie(pid);
      expect(readFileSync(`/proc/${pid}/stat`, 'utf8')).toMatch(/\) Z /);
      expect(() => process.kill(pid, 0)).not.toThrow();
      expect(processAlive(pid)).toBe(false);
    } finally {
      parent.kill();
    }
  });
});
