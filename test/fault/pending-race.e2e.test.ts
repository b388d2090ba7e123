/**
 * `btrfly pending seal` and `btrfly pending drop` of the same recording from two processes (two
 * terminals, or a CI cleanup job racing a developer): one of them does it, the other is refused
 * with one line, and what each says is what happened to the tag. The race is made exact with the
 * test-only pause point `seal-ref` (the sealed commit is made, the tag not yet moved).
 */
import { join } from 'node:path';
import { pausePoints, runCli, spawnCli, startOrigin, tmpDir, type Origin } from '../helpers';

let origin: Origin;
beforeAll(async () => {
  origin = await startOrigin();
});

/** An archive holding one pending recording of tag "app": a failed build's, kept aside. */
async function archiveWithPending(): Promise<{ archive: string; id: string }> {
  const archive = join(tmpDir(), 'archive');
  const url = origin.urlFor('/gen/3000?seed=4', 'origin.test');
  const rec = await runCli(['run', '--record', '--tag=app', '--archive', archive, '--resolve', `origin.test:${origin.host}`, '--', 'sh', '-c', `curl -sf -o /dev/null '${url}'; exit 1`]);
  expect(rec.code).toBe(1);
  const list = await runCli(['pending', 'list', '--archive', archive, '--json']);
  const id = /"id": "([^"]+)"/.exec(list.stdout)?.[1];
  expect(id).toBeDefined();
  return { archive, id: id! };
}

test('a drop while a seal of the same pending recording runs is refused; the seal makes the tag', async () => {
  const { archive, id } = await archiveWithPending();
  const pause = pausePoints();
  const seal = spawnCli(['pending', 'seal', id, '--archive', archive], { env: pause.env('seal-ref') });
  await pause.reached('seal-ref');
  const drop = await runCli(['pending', 'drop', id, '--archive', archive]);
  expect(drop.stderr).toBe(`btrfly: pending recording ${id} is being sealed or dropped by another btrfly process: wait for it to finish, then run "btrfly status"\n`);
  expect(drop.code).toBe(1);
  pause.release('seal-ref');
  const sealed = await seal.exited;
  expect(sealed.stderr).toMatch(new RegExp(`^btrfly: sealed pending recording ${id} as recording [0-9a-f]{12} of tag "app"\\n$`));
  expect(sealed.code).toBe(0);
  const log = await runCli(['log', 'app', '--archive', archive]);
  expect(log.stdout).toContain(`sealed from pending recording ${id}`);
  const pending = await runCli(['pending', 'list', '--archive', archive]);
  expect(pending.stdout + pending.stderr).toBe('no pending recordings\n');
  // And now that it is sealed, a drop says it is gone.
  const late = await runCli(['pending', 'drop', id, '--archive', archive]);
  expect(late.stderr).toBe(`btrfly: no pending recording "${id}": run "btrfly status" to list them\n`);
  expect(late.code).toBe(1);
});

test('two seals of the same pending recording at once: the second is told it is being sealed', async () => {
  const { archive, id } = await archiveWithPending();
  const pause = pausePoints();
  const seal = spawnCli(['pending', 'seal', id, '--archive', archive], { env: pause.env('seal-ref') });
  const pid = await pause.reached('seal-ref');
  const again = await runCli(['pending', 'seal', id, '--archive', archive]);
  expect(again.stderr).toMatch(new RegExp(`^btrfly: pending recording ${id} is being sealed by another btrfly process \\(pid ${pid} on .+\\): wait for it to finish, then run "btrfly log app"\\n$`));
  expect(again.code).toBe(1);
  pause.release('seal-ref');
  expect((await seal.exited).code).toBe(0);
  const log = await runCli(['log', 'app', '--archive', archive]);
  expect(log.stdout.trim().split('\n')).toHaveLength(1);
});
