/**
 * Git LFS mode attacked as a user would meet it (review of issue 18): a migration run twice on
 * an archive with an empty body, an LFS object with bytes appended (verify must name it, and a
 * push must then say in one line which body it lacks), and an LFS server that fails a pull
 * while its URL carries a password (the message must not show it), and a token handed to git
 * with `-c` must not be left in the archive by git-lfs's error log.
 */
import { appendFileSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { pausePoints, runCli, runOk, spawnCli, startOrigin, tmpDir, type Origin } from '../helpers';

const lfsObject = (repo: string, oid: string): string => join(repo, 'lfs', 'objects', oid.slice(0, 2), oid.slice(2, 4), oid);
/** Every file under `dir` whose bytes contain `text`. */
const filesHolding = (dir: string, text: string): string[] =>
  (readdirSync(dir, { recursive: true }) as string[]).map((f) => join(dir, f)).filter((f) => statSync(f).isFile() && readFileSync(f).includes(text));

describe('Git LFS mode, attacked', () => {
  let origin: Origin;
  let script: string;

  beforeAll(async () => {
    origin = await startOrigin();
    const base = origin.urlFor('/', 'origin.test').replace(/\/$/, '');
    script = join(tmpDir(), 'build.sh');
    writeFileSync(script, ['set -eu', `curl -sSf -o /dev/null "${base}/gen/3000000?seed=1"`, `curl -sSf -o /dev/null "${base}/gen/0?seed=2"`, ''].join('\n'));
  });

  afterAll(async () => {
    await origin?.close().catch(() => undefined);
  });

  const record = async (archive: string, tag: string): Promise<void> => {
    const rec = await runCli(['run', '--record', `--tag=${tag}`, '--archive', archive, '--resolve', `origin.test:${origin.host}`, '--', 'bash', script], { timeoutMs: 120_000 });
    expect(rec.stderr).toMatch(/recorded tag/);
    expect(rec.code).toBe(0);
  };
  const tip = async (archive: string, tag: string): Promise<string> => (await runOk('git', ['--git-dir', archive, 'rev-parse', `refs/heads/${tag}`])).stdout.trim();

  it('migrate --lfs run again changes nothing, also with an empty body in the recording', async () => {
    const archive = join(tmpDir(), 'git-mode');
    await record(archive, 'app');
    const first = await runCli(['migrate', '--lfs', '--archive', archive]);
    expect(first.stdout).toMatch(/^app: [0-9a-f]{7} → [0-9a-f]{7} \(1 recording written again\)$/m);
    expect(first.code).toBe(0);
    const migrated = await tip(archive, 'app');
    const second = await runCli(['migrate', '--lfs', '--archive', archive]);
    expect(second.stdout).toMatch(/^app: already Git LFS/m);
    expect(second.stdout).toMatch(/no tag changed/);
    expect(second.code).toBe(0);
    expect(await tip(archive, 'app')).toBe(migrated);
    expect((await runCli(['verify', '--archive', archive])).code).toBe(0);
  });

  it('migrate --lfs says which new tag a recording that began before it keeps in git, and a second run takes it', async () => {
    const archive = join(tmpDir(), 'busy');
    await record(archive, 'old');
    const pause = pausePoints();
    const rec = spawnCli(['run', '--record', '--tag=new', '--archive', archive, '--resolve', `origin.test:${origin.host}`, '--', 'bash', script], {
      env: pause.env('run-child'),
      timeoutMs: 120_000,
    });
    await pause.reached('run-child');
    const first = await runCli(['migrate', '--lfs', '--archive', archive]);
    expect(first.stderr).toBe(
      'btrfly: note: tag "new" is being recorded by a recording that began before the migration, and keeps its bodies in git: run "btrfly migrate --lfs" again after it ends\n',
    );
    expect(first.stdout).toMatch(/^old: [0-9a-f]{7} → /m);
    expect(first.code).toBe(0);
    pause.release('run-child');
    expect((await rec.exited).code).toBe(0);
    const second = await runCli(['migrate', '--lfs', '--archive', archive]);
    expect(second.stderr).toBe('');
    expect(second.stdout).toMatch(/^new: [0-9a-f]{7} → [0-9a-f]{7} \(1 recording written again\)$/m);
    expect(second.stdout).toMatch(/^old: already Git LFS/m);
    expect((await runCli(['verify', '--archive', archive])).code).toBe(0);
  });

  it('verify names an LFS object with bytes appended; a push then says which body is missing, and pushes no tag', async () => {
    const archive = join(tmpDir(), 'lfs');
    expect((await runCli(['init', '--lfs', '--archive', archive])).code).toBe(0);
    await record(archive, 'app');
    const sha = (await runCli(['show', 'app', '--archive', archive, '--json'])).stdout.match(/[0-9a-f]{64}/g)!.find((s) => s !== 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')!;
    appendFileSync(lfsObject(archive, sha), 'trailing bytes');
    const verify = await runCli(['verify', '--archive', archive]);
    expect(verify.stdout + verify.stderr).toContain(`body ${sha} is corrupt: it holds more than 3000000 bytes`);
    expect(verify.code).toBe(1);

    const remote = join(tmpDir(), 'hub.git');
    await runOk('git', ['init', '-q', '--bare', remote]);
    await runCli(['remote', 'add', 'hub', remote, '--archive', archive]);
    const push = await runCli(['push', 'hub', '--archive', archive], { timeoutMs: 120_000 });
    expect(push.stderr).toBe(
      `btrfly: push to remote hub refused, no tag was pushed: body ${sha} is missing from this archive's LFS store: ` +
        'run "btrfly verify --repair" to fetch it again from another remote, or re-record the tags that hold it\n',
    );
    expect(push.code).not.toBe(0);
    expect((await runOk('git', ['--git-dir', remote, 'for-each-ref'])).stdout).toBe('');
  });

  it('gc counts the Git LFS objects it frees', async () => {
    const archive = join(tmpDir(), 'lfs-gc');
    expect((await runCli(['init', '--lfs', '--archive', archive])).code).toBe(0);
    await record(archive, 'app');
    expect((await runCli(['rm', 'app', '--archive', archive])).code).toBe(0);
    const gc = await runCli(['gc', '--archive', archive]);
    expect(gc.stdout).toMatch(/^gc: objects 2\.\d MiB in \d+ files before, \S+ \S+ in \d+ files after; freed 2\.\d MiB\n$/);
    expect(gc.code).toBe(0);
    expect(filesHolding(join(archive, 'lfs'), '').length).toBe(0);
  });

  it('a pull from an LFS server that fails does not show the password in its URL, and moves no tag', async () => {
    const archive = join(tmpDir(), 'src');
    expect((await runCli(['init', '--lfs', '--archive', archive])).code).toBe(0);
    await record(archive, 'app');
    const remote = join(tmpDir(), 'hub.git');
    await runOk('git', ['init', '-q', '--bare', remote]);
    await runCli(['remote', 'add', 'hub', remote, '--archive', archive]);
    expect((await runCli(['push', 'hub', '--archive', archive], { timeoutMs: 120_000 })).code).toBe(0);

    // The LFS server (a separate one, as remote.NAME.lfsurl names it) answers 500 to everything.
    const failing: Server = createServer((req, res) => {
      req.resume();
      res.writeHead(500, { 'Content-Type': 'application/vnd.git-lfs+json' });
      res.end('{"message":"storage backend down"}');
    });
    await new Promise<void>((r) => failing.listen(0, '127.0.0.1', r));
    try {
      const port = (failing.address() as { port: number }).port;
      const copy = join(tmpDir(), 'copy');
      expect((await runCli(['init', '--lfs', '--archive', copy])).code).toBe(0);
      await runCli(['remote', 'add', 'hub', remote, '--archive', copy]);
      await runOk('git', ['--git-dir', copy, 'config', 'remote.hub.lfsurl', `http://builder:Pa55word@127.0.0.1:${port}/lfs`]);
      // A CI job hands git a token as `git -c http.extraHeader=…` does: through GIT_CONFIG_PARAMETERS.
      const env = { GIT_CONFIG_PARAMETERS: "'http.extraheader'='X-Job-Token: TOKEN-SECRET-123'" };
      const pull = await runCli(['pull', 'hub', '--archive', copy], { env, timeoutMs: 120_000 });
      expect(pull.stderr).toMatch(/^btrfly: pull of tag "app" from remote hub refused, the tag here is unchanged: .*git-lfs said: /);
      expect(pull.stderr).toContain(`builder:***@127.0.0.1:${port}`);
      expect(pull.stdout + pull.stderr).not.toContain('Pa55word');
      expect(pull.code).toBe(1);
      expect((await runOk('git', ['--git-dir', copy, 'for-each-ref', 'refs/heads'])).stdout).toBe('');
      expect(filesHolding(copy, 'TOKEN-SECRET-123')).toEqual([]);
      expect(filesHolding(copy, 'Pa55word')).toEqual([join(copy, 'config')]); // the user's own lfsurl, nowhere else
    } finally {
      await new Promise((r) => failing.close(r));
    }
    expect(readFileSync(join(archive, 'config'), 'utf8')).not.toMatch(/Pa55word/);
  });
});
