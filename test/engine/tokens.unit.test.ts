import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { authorize, authorizeRead, authorizeSession, mayRead, tagMatches, TokenStore } from '../../src/engine/service/tokens';
import { tmpDir, tokenSecret } from '../helpers';

test('a token is printed once, stored only as a hash in a 0600 file, verified, scoped and revoked', async () => {
  const store = new TokenStore(path.join(tmpDir('btrfly-tokens-'), 'tokens.json'));
  const { token, record } = await store.create({ scopes: ['record', 'playback'], tags: ['team-a/*'], name: 'ci' });
  expect(token).toMatch(/^btf_[0-9a-f]{12}_[A-Za-z0-9_-]{32}$/);
  const text = await fs.readFile(store.file, 'utf8');
  expect(text).not.toContain(tokenSecret(token));
  expect((await fs.stat(store.file)).mode & 0o777).toBe(0o600);
  expect((await store.verify(token)).id).toBe(record.id);
  await expect(store.verify(token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'))).rejects.toThrow(/refused the token/);
  await expect(store.verify(undefined)).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
  expect(() => authorize(record, 'record', 'team-a/x')).not.toThrow();
  expect(() => authorize(record, 'playback', 'team-b/x')).toThrow(/^token [0-9a-f]{12} may not touch tag "team-b\/x" \(its tags: team-a\/\*\)/);
  const playOnly = (await store.create({ scopes: ['playback'], tags: ['*'] })).record;
  expect(() => authorize(playOnly, 'record', 'anything')).toThrow(/may not record/);
  await store.revoke(record.id);
  await expect(store.verify(token)).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
  await expect(store.create({ scopes: ['root' as never], tags: ['*'] })).rejects.toThrow(/unknown scope "root"/);
});

test('tag patterns: * matches any run of characters, the rest literally', () => {
  expect(tagMatches('team-a/*', 'team-a/x')).toBe(true);
  expect(tagMatches('team-a/*', 'team-a/x/y')).toBe(true);
  expect(tagMatches('team-a/*', 'team-ab/x')).toBe(false);
  expect(tagMatches('team-a/*', 'team-b/x')).toBe(false);
  expect(tagMatches('a.b', 'axb')).toBe(false);
  expect(tagMatches('*', 'anything')).toBe(true);
});

test('reading a tag in the API and the UI: any scope reads what its patterns cover, admin reads all', async () => {
  const store = new TokenStore(path.join(tmpDir('btrfly-tokens-'), 'tokens.json'));
  const play = (await store.create({ scopes: ['playback'], tags: ['team-a/*'] })).record;
  const admin = (await store.create({ scopes: ['admin'], tags: ['*'] })).record;
  // Patterns beside admin would look like a limit it does not have: refused.
  await expect(store.create({ scopes: ['admin'], tags: ['team-a/*'] })).rejects.toMatchObject({
    code: 'USAGE',
    message: "an admin token covers every tag, not only team-a/*: give it --tags '*', or give a team's token --scope record,playback",
  });
  await expect(store.create({ scopes: ['record', 'admin'], tags: ['*', 'x'] })).rejects.toMatchObject({ code: 'USAGE' });
  expect(mayRead(play, 'team-a/app')).toBe(true);
  expect(mayRead(play, 'team-b/app')).toBe(false);
  expect(mayRead(admin, 'team-b/app')).toBe(true);
  expect(() => authorizeRead(play, 'team-b/app')).toThrow(/^token [0-9a-f]{12} may not read tag "team-b\/app" \(its tags: team-a\/\*\): ask for a token that covers "team-b\/app"$/);
});

test('a tag pattern no tag can match, or a name with control characters, is refused in one line', async () => {
  const store = new TokenStore(path.join(tmpDir('btrfly-tokens-'), 'tokens.json'));
  await expect(store.create({ scopes: ['record'], tags: ['../x'] })).rejects.toMatchObject({
    code: 'USAGE',
    message: `tag pattern "../x" can match no tag (it contains ".."): write it as a tag name with * for any run of characters, e.g. 'team-a/*'`,
  });
  await expect(store.create({ scopes: ['record'], tags: ['team-a/\x1b[31m*'] })).rejects.toMatchObject({ code: 'USAGE', message: expect.stringMatching(/^tag pattern "team-a\/\\x1b\[31m\*" can match no tag/) });
  await expect(store.create({ scopes: ['record'], tags: ['a'], name: 'ci\x1b[2J' })).rejects.toMatchObject({
    code: 'USAGE',
    message: 'the token name "ci\\x1b[2J" holds characters a terminal would not show as they are: use plain text',
  });
  const ok = await store.create({ scopes: ['record'], tags: ['team-a/*', '*', 'x*y/z'], name: 'ci team a' });
  expect(ok.record.tags).toEqual(['team-a/*', '*', 'x*y/z']);
  expect(await store.list()).toHaveLength(1);
});

test('a damaged token store is refused in one line saying what to do', async () => {
  const file = path.join(tmpDir('btrfly-tokens-'), 'tokens.json');
  await fs.writeFile(file, '{"btrflyTokens": 1, "tok', { mode: 0o600 });
  await expect(new TokenStore(file).list()).rejects.toMatchObject({
    code: 'CONFIG',
    message: `${file} is not a btrfly token store (not JSON, or not {"btrflyTokens": 1, "tokens": [...]}): restore it from a backup, or pass --tokens another file`,
  });
});

test('a playback that appends records too: it needs the record scope', async () => {
  const store = new TokenStore(path.join(tmpDir('btrfly-tokens-'), 'tokens.json'));
  const play = (await store.create({ scopes: ['playback'], tags: ['*'] })).record;
  const both = (await store.create({ scopes: ['record', 'playback'], tags: ['*'] })).record;
  expect(() => authorizeSession(play, { mode: 'playback' }, 'x')).not.toThrow();
  expect(() => authorizeSession(play, { mode: 'playback', append: true }, 'x')).toThrow(/^token [0-9a-f]{12} may not record \(its scopes: playback\)/);
  expect(() => authorizeSession(both, { mode: 'playback', append: true }, 'x')).not.toThrow();
});

test('creates and revokes running at once lose nothing and bring nothing back (the store is locked around each change)', async () => {
  const store = new TokenStore(path.join(tmpDir('btrfly-tokens-'), 'tokens.json'));
  const first = await Promise.all(Array.from({ length: 8 }, () => store.create({ scopes: ['playback'], tags: ['*'] })));
  const [more] = await Promise.all([
    Promise.all(Array.from({ length: 8 }, () => store.create({ scopes: ['record'], tags: ['*'] }))),
    Promise.all(first.map((t) => store.revoke(t.record.id))),
  ]);
  expect((await store.list()).map((t) => t.id).sort()).toEqual(more.map((t) => t.record.id).sort());
  for (const t of first) await expect(store.verify(t.token)).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
  expect((await fs.readdir(path.dirname(store.file))).sort()).toEqual(['tokens.json']);
});

test('a token store readable by group or others is refused in one line telling to chmod 600', async () => {
  const store = new TokenStore(path.join(tmpDir('btrfly-tokens-'), 'tokens.json'));
  const { token } = await store.create({ scopes: ['playback'], tags: ['*'] });
  await fs.chmod(store.file, 0o644);
  const refused = `token store ${store.file} is readable by group or others (mode 0644): run "chmod 600 ${store.file}"`;
  await expect(store.verify(token)).rejects.toThrow(refused);
  await expect(store.create({ scopes: ['playback'], tags: ['*'] })).rejects.toThrow(refused);
  await fs.chmod(store.file, 0o600);
  await expect(store.verify(token)).resolves.toMatchObject({ scopes: ['playback'] });
});
