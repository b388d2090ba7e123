/**
 * A full disk under the config directory (where btrfly makes its CA on first use), not under the
 * archive: the one line names the config directory and what to do, not the archive's mount
 * ("no space left on /: … or move the archive" was wrong twice over). The tmpfs is mounted in a
 * private mount namespace (test/helpers/small-disk.ts); needs root.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { onPath } from '../../src/engine/host/config';
import { runCli, smallDisk, tmpDir } from '../helpers';

const missing = [process.getuid?.() === 0 ? '' : 'root', ...['unshare', 'mount'].filter((c) => !onPath(c))].filter(Boolean);
const testDiskFull = missing.length === 0 || process.env.CI ? test : test.skip;

/** Writes zeros into `file` until the disk is full. */
function fill(file: string): void {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(4096);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
}

testDiskFull('a config directory on a full disk: one line naming it, exit 1', async () => {
  if (missing.length) throw new Error(`this test needs ${missing.join(', ')}`);
  const { seen } = await smallDisk('64k');
  fill(join(seen, 'filler'));
  const config = join(seen, 'config');
  const r = await runCli(['run', '--record', '--tag=t', '--archive', join(tmpDir(), 'archive'), '--', 'true'], { env: { BTRFLY_CONFIG_DIR: config } });
  expect({ code: r.code, stderr: r.stderr }).toEqual({
    code: 1,
    stderr: `btrfly: no space left to write btrfly's CA in ${config}: free some space there, or point BTRFLY_CONFIG_DIR at another directory\n`,
  });
});
