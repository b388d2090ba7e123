/**
 * An archive edited by someone else (pulled from a remote, or by hand) may hold URLs and commit
 * messages with control characters: `btrfly show`, `btrfly log` and the end of a playback print
 * them escaped (`\x1b`, `\x0a`), so they can neither drive the terminal nor forge a line.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { copyFixtureArchive, runCli, tmpDir } from '../helpers';

const EVIL_URL = 'https://cdn.test:48443/files/\u001b[2K\u001b[31mred\rFORGED\nLINE';
/** A control character other than the newline that ends each line. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f]/;
const SHOWN_URL = 'https://cdn.test:48443/files/\\x1b[2K\\x1b[31mred\\x0dFORGED\\x0aLINE';

/** A new commit on `tag` whose manifest has `url` for its first entry, and whose message is `message`. */
function editRecording(archive: string, tag: string, url: string, message: string): void {
  const env = { ...process.env, GIT_INDEX_FILE: join(tmpDir(), 'index'), GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' };
  const g = (args: string[], input?: string): string => execFileSync('git', ['--git-dir', archive, ...args], { env, input, encoding: 'utf8' }).trim();
  const manifest = JSON.parse(g(['show', `${tag}:manifest.json`])) as { entries: { request: { url: string } }[] };
  manifest.entries[0].request.url = url;
  g(['read-tree', tag]);
  g(['update-index', '--cacheinfo', `100644,${g(['hash-object', '-w', '--stdin'], `${JSON.stringify(manifest, null, 2)}\n`)},manifest.json`]);
  g(['update-ref', `refs/heads/${tag}`, g(['commit-tree', g(['write-tree']), '-p', tag, '-m', message])]);
}

test('show, log and the playback summary print control characters from the archive escaped', async () => {
  const archive = copyFixtureArchive();
  editRecording(archive, 'example/small', EVIL_URL, 'edited \u001b]0;owned\u0007 title');

  const show = await runCli(['show', 'example/small', '--archive', archive]);
  expect(show.code).toBe(0);
  expect(show.stdout).not.toMatch(CONTROL);
  expect(show.stdout).toContain(SHOWN_URL);

  const log = await runCli(['log', 'example/small', '--archive', archive]);
  expect(log.code).toBe(0);
  expect(log.stdout).toContain('edited \\x1b]0;owned\\x07 title\n');

  // Nothing asks for the edited entry: --unused names it, escaped.
  const play = await runCli(['run', '--playback', '--unused', '--tag=example/small', '--archive', archive, '--', 'true']);
  expect(play.code).toBe(0);
  expect(play.stderr).not.toMatch(CONTROL);
  expect(play.stderr).toContain(SHOWN_URL);
});
