/**
 * TEST-ONLY: a pause point for the fault-injection suite (test/fault/). With
 * `BTRFLY_TEST_PAUSE_AT=<point>[,<point>...]` and `BTRFLY_TEST_PAUSE_DIR=<dir>`, a process that
 * reaches `<point>` writes `<dir>/<point>.reached` (holding its pid) and waits until
 * `<dir>/<point>.go` exists, so a test can kill it or race it against `gc` at that exact spot
 * without sleeps. Without the variables, {@link pauseAt} costs one environment lookup.
 *
 * Points: `run-child` (a recording has begun, before the command starts), `body-part` (a body's
 * first 8 MiB part is in git, the rest not yet), `seal-ref` (the recording's commit is made, the
 * tag not yet moved), `gc-locked` (gc holds its lock, before it looks at recorders),
 * `pull-fetched` (a pull's fetch is in its quarantine refs, nothing verified yet),
 * `pull-verified` (a pull checked a tag's new recordings, the tag not yet moved), `repair-pack`
 * (a repair wrote a pack again, the old one not yet moved aside), `repair-fetch` (a repair set
 * the damaged objects aside, before it fetches them), `repair-verify` (a repair is over, before
 * `verify --repair` checks the archive again), `lock-takeover` (a recorder found the tag's lock
 * held by a dead process, before it takes it over).
 */
import { existsSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type PausePoint = 'run-child' | 'body-part' | 'seal-ref' | 'gc-locked' | 'pull-fetched' | 'repair-pack' | 'repair-fetch' | 'repair-verify' | 'lock-takeover' | 'pull-verified';

export async function pauseAt(point: PausePoint): Promise<void> {
  const wanted = process.env.BTRFLY_TEST_PAUSE_AT;
  const dir = process.env.BTRFLY_TEST_PAUSE_DIR;
  if (!wanted || !dir || !wanted.split(',').includes(point)) return;
  const go = join(dir, `${point}.go`);
  await new Promise<void>((resolve) => {
    const watcher = watch(dir, () => {
      if (existsSync(go)) {
        watcher.close();
        resolve();
      }
    });
    writeFileSync(join(dir, `${point}.reached`), String(process.pid));
    if (existsSync(go)) {
      watcher.close();
      resolve();
    }
  });
}
