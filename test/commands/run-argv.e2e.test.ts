/**
 * `btrfly run -- CMD ARGS...` hands the child its arguments exactly as typed: repeated
 * options (`env -u A -u B`, `pip install -r a -r b`) in order, a second `--` kept
 * (`npm run build -- --watch`), and a child's `--json` or `--debug` left to the child.
 */
import { join } from 'node:path';
import { runCli, tmpDir } from '../helpers';

test('the child gets its arguments untouched: repeated options, a second --, --json', async () => {
  const archive = join(tmpDir(), 'archive');
  const args = ['-u', 'A', '-u', 'B', '--', '--x', '-r', 'one', '-r', 'two', '--json', '--debug'];
  const rec = await runCli(['run', '--record', '--tag=argv', '--archive', archive, '--', 'printf', '[%s]\\n', ...args]);
  expect(rec.stdout).toBe(args.map((a) => `[${a}]\n`).join(''));
  expect(rec.code).toBe(0);
  expect(rec.stderr).toMatch(/recorded tag "argv"/);
});
