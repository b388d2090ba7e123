/**
 * `btrfly status` while a `btrfly run` command runs shows the run's session (tag, mode and its
 * live counters), as it does a host-mode session; it said "no active session" before.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, spawnCli, startOrigin, tmpDir } from '../helpers';

test('status shows a running btrfly run and its counters, and nothing once it ended', async () => {
  const origin = await startOrigin();
  const dir = tmpDir();
  const archive = join(dir, 'archive');
  const stop = join(dir, 'stop');
  const script = `curl -sS -o /dev/null ${origin.urlFor('/gen/1000?seed=3', 'origin.test')}; echo ready; while [ ! -e ${stop} ]; do sleep 0.1; done`;
  const run = spawnCli(['run', '--record', '--tag=busy', '--archive', archive, '--resolve', 'origin.test:127.0.0.1', '--', 'sh', '-c', script]);
  await run.waitFor('ready');

  const status = await runCli(['status', '--archive', archive]);
  expect(status.code).toBe(0);
  expect(status.stdout).toContain(`btrfly run ${run.child.pid} (archive ${archive})`);
  expect(status.stdout).toMatch(/^record +busy {2}since \S+ {2}1 requests {2}1000 B {2}0 hits {2}0 misses$/m);
  const json = JSON.parse((await runCli(['status', '--json', '--archive', archive])).stdout);
  expect(json.runs).toEqual([expect.objectContaining({ pid: run.child.pid, sessions: [expect.objectContaining({ tag: 'busy', mode: 'record' })] })]);

  writeFileSync(stop, '');
  expect((await run.exited).code).toBe(0);
  const after = await runCli(['status', '--archive', archive]);
  expect(after.stdout).toBe('no active session\n');
});

test('a run file left by a run whose pid another process now has is not shown, and is removed', async () => {
  const dir = tmpDir();
  const config = join(dir, 'config');
  const left = join(config, 'runs', `${process.pid}.json`);
  mkdirSync(join(config, 'runs'), { recursive: true });
  // This test's own pid: alive, but no btrfly run, and nothing listens on the socket named.
  writeFileSync(left, JSON.stringify({ pid: process.pid, socket: join(dir, 'gone', 'status.sock') }) + '\n');
  const status = await runCli(['status', '--archive', join(dir, 'archive')], { env: { BTRFLY_CONFIG_DIR: config } });
  expect(status.stdout).toBe('no active session\n');
  expect(status.code).toBe(0);
  expect(existsSync(left)).toBe(false);
});
