/**
 * No credential in the archive (SPEC §4): `btrfly remote add` refuses a URL with a password or
 * an access token in it, in one line saying to use git's credential helper; with the password
 * in a credential helper the push works and no file of the archive, nor any of its git
 * objects, holds it. An archive where an older btrfly stored such a URL warns once on
 * `remote list` and `push`, and `remote remove` takes the URL out of its config with what
 * git-lfs wrote beside it (an LFS archive over HTTPS, for which git-lfs writes a section named by the URL).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, runOk, startGitServer, startOrigin, testCa, tmpDir, type Origin } from '../helpers';

const PASSWORD = 'pw-7d41c9e0b2';
const TOKEN = 'ghp_Q9x2T7c4LmZr8sVb1NwK3yHd6JfPa0Ee5Ug';

/** Every file under `dir` whose bytes hold `secret`, and whether any git object does. */
function whereIs(dir: string, secret: string): string[] {
  const found: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (readFileSync(path).includes(secret)) found.push(path);
    }
  };
  walk(dir);
  const objects = execFileSync('git', ['--git-dir', dir, 'cat-file', '--batch-all-objects', '--batch'], { maxBuffer: 1 << 30 });
  if (objects.includes(secret)) found.push('(a git object)');
  return found;
}

/** A user's git setup: a credential helper holding the password, and the git host's CA (GIT_SSL_CAINFO, which this machine sets, would override the file). */
function gitUser(host: string, user?: string, password?: string): NodeJS.ProcessEnv {
  const dir = tmpDir('btrfly-gituser-');
  const lines = [`[http]\n\tsslCAInfo = ${testCa().caPath}\n`];
  if (user && password) {
    const creds = join(dir, 'credentials');
    writeFileSync(creds, `https://${user}:${password}@${host}\n`, { mode: 0o600 });
    lines.push(`[credential]\n\thelper = store --file=${creds}\n`);
  }
  const config = join(dir, 'gitconfig');
  writeFileSync(config, lines.join(''));
  return { GIT_CONFIG_GLOBAL: config, GIT_SSL_CAINFO: undefined };
}

describe('credentials of a remote stay out of the archive', () => {
  let origin: Origin;
  let server: Awaited<ReturnType<typeof startGitServer>>;
  let root: string;
  let host: string;

  beforeAll(async () => {
    origin = await startOrigin();
    root = tmpDir('btrfly-git-host-');
    for (const repo of ['deps.git', 'old.git']) await runOk('git', ['init', '-q', '--bare', join(root, repo)]);
    server = await startGitServer(undefined, '127.0.0.1', root, { auth: { user: 'builder', password: PASSWORD } });
    host = `127.0.0.1:${server.port}`;
  });

  afterAll(async () => {
    await origin?.close();
  });

  async function record(archive: string): Promise<void> {
    const up = ['--archive', archive, '--resolve', `origin.test:${origin.host}`];
    const rec = await runCli(['run', '--record', '--tag=app', ...up, '--', 'curl', '-sf', '-o', '/dev/null', origin.urlFor('/gen/5000?seed=4', 'origin.test')]);
    expect(rec.stderr).toContain('recorded tag "app"');
  }

  it('refuses a URL with a password or a token in one line; through a credential helper the push works and nothing of it is in the archive', async () => {
    const archive = join(tmpDir(), 'archive');
    await record(archive);
    const withPassword = await runCli(['remote', 'add', 'hub', `https://builder:${PASSWORD}@${host}/deps.git`, '--archive', archive]);
    expect(withPassword.stderr).toBe(
      `btrfly: the URL of remote "hub" holds a password, and btrfly writes no credential into the archive: add https://builder@${host}/deps.git and give it to git's credential helper instead (see "git help gitcredentials")\n`,
    );
    expect(withPassword.code).toBe(2);
    const withToken = await runCli(['remote', 'add', 'hub', `https://${TOKEN}@${host}/deps.git`, '--archive', archive]);
    expect(withToken.stderr).toMatch(new RegExp(`^btrfly: the URL of remote "hub" holds an access token, .*: add https://${host}/deps.git and give it to git's credential helper`));
    expect(withToken.stderr).not.toContain(TOKEN);
    expect(withToken.code).toBe(2);
    expect((await runCli(['remote', 'list', '--archive', archive, '--json'])).stdout.trim()).toBe('[]');

    expect((await runCli(['remote', 'add', 'hub', `https://builder@${host}/deps.git`, '--archive', archive])).code).toBe(0);
    const push = await runCli(['push', 'hub', '--archive', archive], { env: gitUser(host, 'builder', PASSWORD) });
    expect(push.stderr).toMatch(/^app: pushed, new tag at [0-9a-f]{12}\n$/);
    expect(push.code).toBe(0);
    expect(whereIs(archive, PASSWORD)).toEqual([]);
    expect(whereIs(archive, TOKEN)).toEqual([]);
  });

  it('warns once about a password an older btrfly stored, and remote remove takes it out with what git-lfs wrote for it', async () => {
    const archive = join(tmpDir(), 'old-archive');
    expect((await runCli(['init', '--lfs', '--archive', archive])).code).toBe(0);
    await record(archive);
    // What `btrfly remote add` of an older version did.
    const url = `https://builder:${PASSWORD}@${host}/old.git`;
    await runOk('git', ['--git-dir', archive, 'config', 'remote.old.url', url]);
    const warning = `btrfly: warning: the URL of remote old holds a password, written into archive ${archive}'s git config: give it to git's credential helper instead (see "git help gitcredentials"), then run "btrfly remote remove old" and "btrfly remote add old https://builder@${host}/old.git"`;

    const list = await runCli(['remote', 'list', '--archive', archive]);
    expect(list.stderr).toBe(warning + '\n');
    expect(list.stdout).toContain(`https://builder:***@${host}/old.git`);
    expect(list.stdout).not.toContain(PASSWORD);
    const push = await runCli(['push', 'old', '--archive', archive], { env: gitUser(host) });
    expect(push.stderr).toBe(`${warning}\napp: pushed, new tag at ${push.stderr.match(/new tag at ([0-9a-f]{12})/)?.[1]}\n`);
    expect(push.code).toBe(0);
    // git-lfs kept the URL, password and all, in a section of its own.
    expect(readFileSync(join(archive, 'config'), 'utf8')).toContain(`[lfs "https://builder:${PASSWORD}@${host}/old.git/info/lfs"]`);

    expect((await runCli(['remote', 'remove', 'old', '--archive', archive])).code).toBe(0);
    expect(whereIs(archive, PASSWORD)).toEqual([]);
  });
});
