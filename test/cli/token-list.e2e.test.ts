/**
 * `btrfly token list` of a store written by hand (or by a btrfly that let anything through):
 * a name or tag pattern holding terminal controls is shown escaped, never sent to the terminal.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tmpDir } from '../helpers';

test('token list shows a stored name and pattern with control characters escaped', async () => {
  const tokens = join(tmpDir('btrfly-token-list-'), 'tokens.json');
  const record = { id: '0123456789ab', name: 'ci\x1b[2J\x1b[Hfake', scopes: ['record'], tags: ['team-a/\x1b[31m*'], hash: '0'.repeat(64), created: '2026-01-01T00:00:00.000Z' };
  writeFileSync(tokens, JSON.stringify({ btrflyTokens: 1, tokens: [record] }), { mode: 0o600 });
  const out = await runCli(['token', 'list', '--tokens', tokens]);
  expect(out).toMatchObject({ code: 0, stderr: '' });
  expect(out.stdout).not.toContain('\x1b');
  expect(out.stdout).toBe('0123456789ab  record           team-a/\\x1b[31m*     2026-01-01T00:00:00.000Z  ci\\x1b[2J\\x1b[Hfake\n');
});
