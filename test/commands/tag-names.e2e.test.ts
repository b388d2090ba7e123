/**
 * Tag names a user can type but git cannot hold, or a reader cannot see: `team/app` beside
 * `team` (and the reverse) is refused when the recording starts, not at its seal; a name
 * past 200 bytes, or holding a bidi override or an invisible character, is refused in one
 * line by the CLI and with 400 by the service API (not a 500 from deep in git).
 */
import { execFileSync } from 'node:child_process';
import * as https from 'node:https';
import { runCli, serviceDir, createToken, startService, tmpDir, type StartedService } from '../helpers';
import { join } from 'node:path';

function git(gitDir: string, args: string[]): string {
  return execFileSync('git', ['--git-dir', gitDir, ...args], { encoding: 'utf8' }).trim();
}

/** Every ref of the archive: a refused name must leave no trace (no branch, no pending ref). */
const refs = (archive: string) => git(archive, ['for-each-ref', '--format=%(refname) %(objectname)']);

describe('btrfly run: tag names git cannot hold beside the others', () => {
  const archive = join(tmpDir(), 'archive');
  const record = (tag: string) => runCli(['run', '--record', `--tag=${tag}`, '--archive', archive, '--', 'true']);

  beforeAll(async () => {
    for (const tag of ['team', 'lib/core']) expect((await record(tag)).code).toBe(0);
  });

  it('refuses team/app while team exists, at start, saying why in one line', async () => {
    const before = refs(archive);
    const r = await record('team/app');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'btrfly: tag "team/app" cannot be created: tag "team" exists, and git cannot hold both "team" and "team/app" (a branch name cannot also be a folder of branches): pick another name, like "team-app"\n',
    );
    expect(refs(archive)).toBe(before);
    // Refused before anything was recorded: nothing pending for `btrfly status` to name.
    expect((await runCli(['status', '--archive', archive])).stdout).not.toMatch(/pending|interrupted/i);
  });

  it('refuses lib while lib/core exists, and a deeper lib/core/x', async () => {
    const before = refs(archive);
    const parent = await record('lib');
    expect(parent.code).toBe(1);
    expect(parent.stderr).toMatch(/^btrfly: tag "lib" cannot be created: tag "lib\/core" exists, and git cannot hold both "lib" and "lib\/core" .*: pick another name\n$/);
    const deeper = await record('lib/core/x');
    expect(deeper.code).toBe(1);
    expect(deeper.stderr).toMatch(/^btrfly: tag "lib\/core\/x" cannot be created: tag "lib\/core" exists/);
    expect(refs(archive)).toBe(before);
  });

  it('refuses the same clash for btrfly cp, and takes a sibling name', async () => {
    const cp = await runCli(['cp', 'lib/core', 'team/core', '--archive', archive]);
    expect(cp.code).toBe(1);
    expect(cp.stderr.trim().split('\n')).toHaveLength(1);
    expect(cp.stderr).toMatch(/tag "team" exists/);
    expect((await record('lib/extra')).code).toBe(0);
    expect((await record('team-app')).code).toBe(0);
  });

  it('refuses a 10,000-character name with one short line, exit 2', async () => {
    const r = await record('a'.repeat(10_000));
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`btrfly: tag name "${'a'.repeat(60)}…" is invalid: it is 10000 bytes long, more than 200: use letters, digits, "-", "_", "." and "/"\n`);
  });

  it('refuses a right-to-left override and a zero-width space, writing them escaped', async () => {
    const bidi = await record('release-\u202e1v');
    expect(bidi.code).toBe(2);
    expect(bidi.stderr).toBe('btrfly: tag name "release-\\u202e1v" is invalid: it contains U+202E, a bidirectional-text control that reorders what is shown: use letters, digits, "-", "_", "." and "/"\n');
    const zw = await record('ma\u200bin');
    expect(zw.code).toBe(2);
    expect(zw.stderr).toMatch(/^btrfly: tag name "ma\\u200bin" is invalid: it contains U\+200B, an invisible character: /);
  });
});

describe('a tag is its own ref only: never another tag whose name holds it', () => {
  const archive = join(tmpDir(), 'archive');
  const record = (tag: string, ...cmd: string[]) => runCli(['run', '--record', `--tag=${tag}`, '--archive', archive, '--', ...(cmd.length ? cmd : ['true'])]);

  it('with tag "refs/heads/x" recorded, tag "x" is not found, then records and seals as itself', async () => {
    expect((await record('refs/heads/x')).code).toBe(0);
    const other = git(archive, ['rev-parse', 'refs/heads/refs/heads/x']);
    const show = await runCli(['show', 'x', '--archive', archive]);
    expect({ code: show.code, stderr: show.stderr }).toEqual({ code: 1, stderr: `btrfly: tag "x" not found in archive ${archive}: run "btrfly tags" to list tags\n` });
    const rec = await record('x');
    expect(rec.stderr).toMatch(/^btrfly: recorded tag "x" \(recording [0-9a-f]{12}\)/);
    expect(rec.code).toBe(0);
    expect(git(archive, ['rev-parse', 'refs/heads/x'])).not.toBe(other);
    expect(git(archive, ['rev-parse', 'refs/heads/refs/heads/x'])).toBe(other);
    expect(JSON.parse((await runCli(['pending', 'list', '--json', '--archive', archive])).stdout)).toEqual([]);
  });

  it('with only "zz/app" recorded, tag "zz" is not found (not "points at a missing recording")', async () => {
    expect((await record('zz/app')).code).toBe(0);
    const show = await runCli(['show', 'zz', '--archive', archive]);
    expect({ code: show.code, stderr: show.stderr }).toEqual({ code: 1, stderr: `btrfly: tag "zz" not found in archive ${archive}: run "btrfly tags" to list tags\n` });
  });
});

describe('the service API: bad tag names are 400 (or 409 for a clash), never 500', () => {
  const dir = serviceDir('btrfly-tag-names-');
  let svc: StartedService;
  let admin = '';

  const call = (method: string, path: string, body?: unknown) =>
    new Promise<{ status: number; json: { error?: { code: string; message: string } } }>((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const headers: Record<string, string | number> = { authorization: `Bearer ${admin}` };
      if (payload) Object.assign(headers, { 'content-type': 'application/json', 'content-length': payload.length });
      const req = https.request(new URL(path, svc.api), { method, headers, ca: svc.caPem }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (s: string) => (text += s));
        res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(text || '{}') }));
      });
      req.once('error', reject);
      req.end(payload);
    });

  beforeAll(async () => {
    admin = await createToken(dir.tokens, 'admin', '*');
    svc = await startService(dir, {});
    // A recorded tag "team" to clash with.
    const opened = await call('POST', '/v1/sessions', { tag: 'team', mode: 'record' });
    expect(opened.status).toBe(201);
    const id = (opened.json as unknown as { session: { id: string } }).session.id;
    expect((await call('DELETE', `/v1/sessions/${id}`)).status).toBe(200);
  });

  afterAll(async () => {
    await svc?.service.stop();
  });

  it.each([
    // Past the session request's own limit on a spec (1,024 characters): refused as a bad request.
    ['a 10,000-character name', 'a'.repeat(10_000), 400, 'USAGE', /the session request is invalid: .*tag/],
    ['a 300-byte name', 'é'.repeat(150), 400, 'BAD_TAG_NAME', /is 300 bytes long, more than 200/],
    ['a bidi override', 'x\u202eyz', 400, 'BAD_TAG_NAME', /U\+202E, a bidirectional-text control/],
    ['an invisible character', 'x\u2060y', 400, 'BAD_TAG_NAME', /U\+2060, an invisible character/],
    ['team/app beside team', 'team/app', 409, 'TAG_EXISTS', /git cannot hold both "team" and "team\/app"/],
  ])('POST /v1/sessions with %s', async (_, tag, status, code, message) => {
    const r = await call('POST', '/v1/sessions', { tag, mode: 'record' });
    expect({ status: r.status, code: r.json.error?.code }).toEqual({ status, code });
    expect(r.json.error?.message).toMatch(message);
    expect(r.json.error?.message).not.toMatch(/\n/);
    // Nothing was left open by the refused request.
    const status2 = (await call('GET', '/v1/status')).json as unknown as { sessions: unknown[] };
    expect(status2.sessions).toEqual([]);
  });

  it('GET /v1/log with a 10,000-character name', async () => {
    const r = await call('GET', `/v1/log?tag=${'b'.repeat(10_000)}`);
    expect({ status: r.status, code: r.json.error?.code }).toEqual({ status: 400, code: 'BAD_TAG_NAME' });
  });
});
