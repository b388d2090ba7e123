/**
 * Playback of an archive on a read-only file system, with the recorder's `btrfly/` (body cache,
 * body checks and their key) or without it, as a fresh `git clone --bare` or a `btrfly pull` into a
 * new archive has it: a recording of real curl from a loopback HTTPS origin plays back offline
 * with the recorded bytes and exit 0, nothing is written to the archive, and a damaged object
 * still breaks the transfer (exit 1). The archive is mounted read-only over itself in a mount
 * namespace the test makes. The reading commands answer; the changing ones are refused in one line.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { onPath } from '../../src/engine/host/config';
import { CLI_ENTRY, bodyPartOid, cliEnv, cliWorkDir, damageLooseObject, genBodySha256, run, runCli, startOrigin, tmpDir, type Origin } from '../helpers';
import { describeWhen } from '../helpers/when';

const BIG = 2 * 1024 * 1024 + 4321; // three 1 MiB check parts: a loose object of its own
const SMALL = 50_000;
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const missing = [process.getuid?.() === 0 ? '' : 'root', ...['unshare', 'mount', 'curl'].filter((c) => !onPath(c))].filter(Boolean);

/** `btrfly ARGS` in a new mount namespace where `archive` is mounted read-only over itself. */
const readOnly = (archive: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
  run(
    'unshare',
    ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"', 'sh', archive, process.execPath, CLI_ENTRY, ...args],
    { cwd: cliWorkDir(), env: cliEnv(env), timeoutMs: 120_000 },
  );

/** Every file of the archive and its bytes' digest, to show that nothing was written. */
const snapshot = async (archive: string): Promise<string> =>
  (await run('sh', ['-c', 'cd "$1" && find . -printf "%p %s %T@\\n" | sort', 'sh', archive])).stdout;

const BUILD = ['cd "$OUT"', 'curl -sS -o big "$BIG_URL"; echo $? > big.code', 'curl -sS -o small "$SMALL_URL"; echo $? > small.code', ''].join('\n');

describeWhen(missing)('a read-only archive (a read-only bind mount), with its btrfly/ or without (a fresh clone)', () => {
  let origin: Origin;
  let recorded: string;
  let bigUrl: string;
  let smallUrl: string;
  let bigSha: string;
  let smallSha: string;

  const build = async (archive: string, mode: 'record' | 'playback') => {
    const out = tmpDir('btrfly-roplay-out-');
    writeFileSync(join(out, 'build.sh'), BUILD);
    const env = { OUT: out, BIG_URL: bigUrl, SMALL_URL: smallUrl };
    const args = ['run', `--${mode}`, '--tag=ro', '--archive', archive];
    const r =
      mode === 'record'
        ? await runCli([...args, '--upstream-ca', origin.caPath!, '--resolve', `origin.test:${origin.host}`, '--', 'sh', join(out, 'build.sh')], { env, timeoutMs: 120_000 })
        : await readOnly(archive, [...args, '--', 'sh', join(out, 'build.sh')], env);
    const file = (name: string) => ({
      code: Number(readFileSync(join(out, `${name}.code`), 'utf8')),
      bytes: existsSync(join(out, name)) ? readFileSync(join(out, name)) : Buffer.alloc(0),
    });
    return { ...r, big: file('big'), small: file('small') };
  };

  /** A copy of the recorded archive as a fresh clone has it, no `btrfly/`; or with the recorder's `btrfly/` (body cache, checks and their key). */
  const copy = (state: 'fresh clone' | 'with btrfly/'): string => {
    const archive = join(tmpDir('btrfly-roplay-'), 'archive');
    cpSync(recorded, archive, { recursive: true });
    if (state === 'fresh clone') rmSync(join(archive, 'btrfly'), { recursive: true, force: true });
    return archive;
  };
  const freshClone = (): string => copy('fresh clone');
  /** One byte of the big body's cached copy flipped (`btrfly/cache/<2 hex>/<sha256>/00000000`). */
  const damageCached = (archive: string): void => {
    const part = join(archive, 'btrfly', 'cache', bigSha.slice(0, 2), bigSha, '00000000');
    const bytes = readFileSync(part);
    bytes[BIG - 1000] ^= 0x5a;
    writeFileSync(part, bytes);
  };
  const states = [['fresh clone'], ['with btrfly/']] as const;

  beforeAll(async () => {
    origin = await startOrigin({ https: true });
    bigUrl = origin.urlFor(`/gen/${BIG}?seed=ro`, 'origin.test');
    smallUrl = origin.urlFor(`/gen/${SMALL}?seed=ro-small`, 'origin.test');
    bigSha = await genBodySha256(BIG, 'ro');
    smallSha = await genBodySha256(SMALL, 'ro-small');
    recorded = join(tmpDir('btrfly-roplay-rec-'), 'archive');
    const rec = await build(recorded, 'record');
    expect(rec.stderr).toMatch(/recorded tag "ro"/);
    expect(sha256(rec.big.bytes)).toBe(bigSha);
    expect(sha256(rec.small.bytes)).toBe(smallSha);
    expect(rec.code).toBe(0);
    await origin.close(); // playback answers from the archive alone
  }, 180_000);

  it.each(states)('%s: plays back the recorded bytes offline, exit 0, and writes nothing to the archive', async (state) => {
    const archive = copy(state);
    const before = await snapshot(archive);
    const p = await build(archive, 'playback');
    // Without btrfly/ the bodies come from git, and a note says so; with it, from its body cache, as on a writable archive.
    const note =
      state === 'fresh clone'
        ? `btrfly: note: archive ${archive} is read-only (EROFS): 2 bodies were played back from git, not from a body cache (slower for large bodies; each still checked against its SHA-256 before it was sent); nothing was written to it\n`
        : '';
    expect(p.stderr.slice(0, note.length)).toBe(note);
    expect(p.stderr.slice(note.length)).toMatch(/^btrfly: played back tag "ro" .*: 2 requests, .*2 hits, 0 misses\n$/);
    expect(p.big.code).toBe(0);
    expect(sha256(p.big.bytes)).toBe(bigSha);
    expect(p.small.code).toBe(0);
    expect(sha256(p.small.bytes)).toBe(smallSha);
    expect(p.code).toBe(0);
    expect(existsSync(join(archive, 'btrfly'))).toBe(state === 'with btrfly/');
    expect(await snapshot(archive)).toBe(before);
  }, 120_000);

  it.each(states)('%s: a damaged object in the read-only archive still breaks the transfer: exit 1, never the wrong bytes', async (state) => {
    const archive = copy(state);
    damageLooseObject(archive, bodyPartOid(archive, 'ro', bigSha), BIG - 1000);
    if (state === 'with btrfly/') damageCached(archive); // else the cached copy answers
    const p = await build(archive, 'playback');
    expect(p.big.code).not.toBe(0);
    expect(p.big.bytes.length).toBeLessThan(BIG);
    expect(p.stderr.split('\n').filter((l) => l.includes(bigUrl) && l.includes(bigSha))).toHaveLength(1);
    expect(sha256(p.small.bytes)).toBe(smallSha);
    expect(p.code).toBe(1);
  }, 120_000);

  it('a damaged cached copy in the read-only archive is passed over: the bytes come from git, exit 0, the cache left as it is', async () => {
    const archive = copy('with btrfly/');
    damageCached(archive);
    const before = await snapshot(archive);
    const p = await build(archive, 'playback');
    expect(p.big.code).toBe(0);
    expect(sha256(p.big.bytes)).toBe(bigSha);
    expect(sha256(p.small.bytes)).toBe(smallSha);
    expect(p.stderr).toMatch(/2 hits, 0 misses\n$/);
    expect(p.code).toBe(0);
    expect(await snapshot(archive)).toBe(before);
  }, 120_000);

  it.each([['tags'], ['show', 'ro'], ['log', 'ro'], ['verify'], ['sbom', 'ro'], ['export', 'ro', '-o', '-', '--format', 'har'], ['pending', 'list']])(
    '%s answers on the read-only archive',
    async (...argv) => {
      const archive = freshClone();
      const before = await snapshot(archive);
      const r = await readOnly(archive, [...argv, '--archive', archive]);
      expect(r.stderr).not.toMatch(/EROFS|read-only/);
      expect(r.stdout.length + r.stderr.length).toBeGreaterThan(0);
      expect(r.code).toBe(0);
      expect(await snapshot(archive)).toBe(before);
    },
  );

  it.each([
    ['btrfly rm', 'rm ro'],
    ['btrfly cp', 'cp ro copy'],
    ['btrfly gc', 'gc'],
    ['btrfly verify --repair', 'verify --repair'],
    ['btrfly remote add', 'remote add o /nowhere.git'],
    ['btrfly pull', 'pull o'],
    ['btrfly migrate', 'migrate --lfs'],
    ['btrfly pending drop', 'pending drop x'],
  ])(
    '%s is refused in one line, nothing changed',
    async (command, args) => {
      const archive = freshClone();
      const before = await snapshot(archive);
      const r = await readOnly(archive, [...args.split(' '), '--archive', archive]);
      expect(r.stderr).toBe(
        `btrfly: "${command}" changes the archive, and ${archive} is on a read-only file system (EROFS): remount it read-write; playback, tags, show, log, verify, sbom and export read it as it is\n`,
      );
      expect(r.code).toBe(1);
      expect(await snapshot(archive)).toBe(before);
    },
  );
});
