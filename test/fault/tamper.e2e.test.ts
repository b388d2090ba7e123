/**
 * A damaged archive never passes a body off as good (issue 12.1, docs/contract.md "Integrity").
 * A build records a 3 MiB body and a small one with real curl through `btrfly run`; then one
 * byte of a body is flipped, keeping its length, in the body cache, in a loose git object
 * (inflated, flipped, deflated again at the same path) or inside a pack (made by `git gc`
 * without compression, so the byte is there to flip), and the same build plays back. curl
 * either gets the recorded bytes (healed from an intact copy) or fails: never a clean end with
 * other bytes. When it fails, `btrfly run` exits 1 with one line naming the URL, the SHA-256
 * and what to do; a `Range` that touches only intact parts still gets its bytes.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync, chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { bodyPartOid, damageLooseObject, damageObject, genBodySha256, runCli, startOrigin, tmpDir, type Origin } from '../helpers';

const BIG = 3 * 1024 * 1024 + 12_345; // four 1 MiB check parts
const SMALL = 100_000;
/** Where the byte is flipped in the big body: in its third 1 MiB part. */
const FLIP_AT = 2 * 1024 * 1024 + 4321;
const FIRST_MIB = 1024 * 1024;

/** The build: the two downloads, then a range of the big body's first MiB; each curl's exit status is kept. */
const BUILD = [
  'cd "$OUT"',
  'curl -sS -o big "$BIG_URL"; echo $? > big.code',
  'curl -sS -o small "$SMALL_URL"; echo $? > small.code',
  `curl -sS -r 0-${FIRST_MIB - 1} -o range "$BIG_URL"; echo $? > range.code`,
  '',
].join('\n');

let origin: Origin;
let pristine: string;
let bigUrl: string;
let smallUrl: string;
let bigSha: string;
let smallSha: string;
let bigBytes: Buffer;
let smallBytes: Buffer;

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const git = (archive: string, ...args: string[]): string => execFileSync('git', ['-C', archive, ...args], { encoding: 'utf8' });

interface Played {
  code: number | null;
  stderr: string;
  curl: Record<'big' | 'small' | 'range', { code: number; bytes: Buffer }>;
}

/** Where the build downloads from: the origin of the first recording unless a test starts another. */
interface Source {
  origin: Origin;
  bigUrl: string;
  smallUrl: string;
}

async function build(mode: 'record' | 'playback', archive: string, from: Source = { origin, bigUrl, smallUrl }): Promise<Played> {
  const out = tmpDir('btrfly-tamper-out-');
  const script = join(out, 'build.sh');
  writeFileSync(script, BUILD);
  // A name, not 127.0.0.1 (curl sends loopback addresses past the proxy, NO_PROXY); record resolves it.
  const resolve = mode === 'record' ? ['--resolve', `tamper.test:${from.origin.host}`] : [];
  const r = await runCli(['run', `--${mode}`, '--tag=tamper', '--archive', archive, ...resolve, '--', 'sh', script], {
    env: { OUT: out, BIG_URL: from.bigUrl, SMALL_URL: from.smallUrl },
  });
  const file = (name: string) => ({
    code: Number(readFileSync(join(out, `${name}.code`), 'utf8')),
    bytes: existsSync(join(out, name)) ? readFileSync(join(out, name)) : Buffer.alloc(0),
  });
  return { code: r.code, stderr: r.stderr, curl: { big: file('big'), small: file('small'), range: file('range') } };
}

/** A fresh copy of the recorded archive to damage. */
function copyArchive(): string {
  const dir = join(tmpDir('btrfly-tamper-'), 'archive');
  cpSync(pristine, dir, { recursive: true });
  return dir;
}

function flip(buf: Buffer, at: number): void {
  buf[at] ^= 0x5a;
}

const partOid = (archive: string, sha: string): string => bodyPartOid(archive, 'tamper', sha);
const damageLoose = damageLooseObject;

/** A bare repository on this machine, added to `archive` as remote "good", that holds tag tamper as recorded. */
async function pushToGoodRemote(archive: string): Promise<void> {
  const remote = join(tmpDir('btrfly-tamper-remote-'), 'good.git');
  execFileSync('git', ['init', '-q', '--bare', remote]);
  expect((await runCli(['remote', 'add', 'good', remote, '--archive', archive])).code).toBe(0);
  expect((await runCli(['push', 'good', 'tamper', '--archive', archive])).code).toBe(0);
}

/** `btrfly verify --repair` ends clean, and git's own check agrees. */
async function expectRepaired(archive: string, setAside: RegExp): Promise<void> {
  const before = await runCli(['verify', '--archive', archive]);
  expect(before.code).toBe(1);
  expect(before.stderr).toMatch(/run "btrfly verify --repair" to set the damaged copies aside and fetch them again/);
  const r = await runCli(['verify', '--repair', '--archive', archive]);
  expect(r.stderr).toMatch(setAside);
  expect(r.stderr).toMatch(/repair: fetched tamper again from good(: \d+ of the absent objects came back)?\n/);
  expect(r.stderr).toMatch(/^repair: the fetch brought whole tags again: "btrfly gc" packs away the copies the archive already had$/m);
  expect(r.stdout).toMatch(/^ok: 1 tags, 1 recordings, 2 bodies .* checked, after the repair$/m);
  expect(r.code).toBe(0);
  expect(execFileSync('git', ['-C', archive, 'fsck', '--full', '--no-dangling'], { encoding: 'utf8', stdio: 'pipe' })).toBe('');
}

/** The bytes of a build played back from a repaired archive are the recorded ones, and the run exits 0. */
async function expectPlaysBack(archive: string, from?: Source): Promise<void> {
  const p = await build('playback', archive, from);
  expect(sha256(p.curl.big.bytes)).toBe(bigSha);
  expect(sha256(p.curl.small.bytes)).toBe(smallSha);
  expect(p.curl.range.bytes.equals(bigBytes.subarray(0, FIRST_MIB))).toBe(true);
  expect(p.code).toBe(0);
}

/** No body cache, the big body's loose object and the small body's packed one damaged. */
function damageBothBodies(archive: string): void {
  rmSync(join(archive, 'btrfly', 'cache'), { recursive: true, force: true });
  damageLoose(archive, partOid(archive, bigSha), FLIP_AT);
  damageObject(archive, partOid(archive, smallSha), 777);
}

/** A cached body's part file (`btrfly/cache/<2 hex>/<sha256>/00000000`). */
function cachePart(archive: string, sha: string): string {
  return join(archive, 'btrfly', 'cache', sha.slice(0, 2), sha, '00000000');
}

/**
 * The records of a small body in the body cache's segment files (`btrfly/cache/segments/*.seg`,
 * src/format/body-segments.ts: a 44-byte header with the SHA-256 at byte 8, then the bytes).
 */
function segmentRecords(archive: string, sha: string): { path: string; at: number; live: boolean; bytes: Buffer }[] {
  const dir = join(archive, 'btrfly', 'cache', 'segments');
  const found = [];
  for (const name of existsSync(dir) ? readdirSync(dir) : []) {
    const path = join(dir, name);
    const all = readFileSync(path);
    for (let i = all.indexOf(Buffer.from(sha, 'hex')); i >= 0; i = all.indexOf(Buffer.from(sha, 'hex'), i + 1)) {
      const at = i - 8 + 44;
      found.push({ path, at, live: all.toString('latin1', i - 8, i - 4) === 'BtS1', bytes: all.subarray(at, at + all.readUInt32BE(i - 4)) });
    }
  }
  return found;
}

/** Every line of the run's stderr that names the body. */
function linesNaming(stderr: string, url: string, sha: string): string[] {
  return stderr.split('\n').filter((l) => l.includes(url) && l.includes(sha));
}

/** What the user must always get: the recorded bytes with a clean exit, or a failed download. */
function expectNeverWrongBytes(got: { code: number; bytes: Buffer }, want: Buffer): void {
  if (got.code === 0) expect(sha256(got.bytes)).toBe(sha256(want));
  else expect(got.bytes.length).toBeLessThan(want.length);
}

function expectNamed(p: Played, url: string, sha: string): void {
  expect(p.code).toBe(1);
  const lines = linesNaming(p.stderr, url, sha);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/btrfly verify/);
  expect(lines[0]).toMatch(/run "btrfly verify --repair tamper"/);
}

beforeAll(async () => {
  origin = await startOrigin();
  bigUrl = origin.urlFor(`/gen/${BIG}?seed=tamper`, 'tamper.test');
  smallUrl = origin.urlFor(`/gen/${SMALL}?seed=small`, 'tamper.test');
  bigSha = await genBodySha256(BIG, 'tamper');
  smallSha = await genBodySha256(SMALL, 'small');
  pristine = join(tmpDir('btrfly-tamper-rec-'), 'archive');
  const rec = await build('record', pristine);
  expect(rec.code).toBe(0);
  bigBytes = rec.curl.big.bytes;
  smallBytes = rec.curl.small.bytes;
  expect(sha256(bigBytes)).toBe(bigSha);
  expect(sha256(smallBytes)).toBe(smallSha);
  await origin.close(); // playback must answer from the archive alone
}, 120_000);

test('an intact archive plays back the same bytes and exits 0', async () => {
  const p = await build('playback', copyArchive());
  expect(p.code).toBe(0);
  expect(sha256(p.curl.big.bytes)).toBe(bigSha);
  expect(sha256(p.curl.small.bytes)).toBe(smallSha);
  expect(p.curl.range.bytes.equals(bigBytes.subarray(0, FIRST_MIB))).toBe(true);
}, 60_000);

test('a damaged body cache is healed from git: the right bytes, the bad entry dropped', async () => {
  const archive = copyArchive();
  const path = cachePart(archive, bigSha);
  const bytes = readFileSync(path);
  flip(bytes, FLIP_AT);
  writeFileSync(path, bytes);
  expect(statSync(path).size).toBe(BIG);
  // The small body is a record in a segment file.
  const [record] = segmentRecords(archive, smallSha);
  const segment = readFileSync(record.path);
  flip(segment, record.at + 777);
  writeFileSync(record.path, segment);
  const p = await build('playback', archive);
  expect(p.curl.big.code).toBe(0);
  expect(sha256(p.curl.big.bytes)).toBe(bigSha);
  expect(sha256(p.curl.small.bytes)).toBe(smallSha);
  expect(p.curl.range.bytes.equals(bigBytes.subarray(0, FIRST_MIB))).toBe(true);
  expect(p.code).toBe(0);
  expect(p.stderr).toMatch(/3 hits, 0 misses\n/);
  // The damaged entries are gone (or refilled from git's verified bytes).
  if (existsSync(path)) expect(sha256(readFileSync(path))).toBe(bigSha);
  const records = segmentRecords(archive, smallSha);
  expect(records.filter((r) => r.live && sha256(r.bytes) !== smallSha)).toEqual([]);
  expect(records.length).toBeGreaterThan(0);
}, 60_000);

test('a damaged body cache without its checks file is healed from git too: checked whole before any byte goes, the bad entry dropped', async () => {
  const archive = copyArchive();
  const checksFile = join(archive, 'btrfly', 'checks', bigSha.slice(0, 2), bigSha);
  rmSync(checksFile);
  const path = cachePart(archive, bigSha);
  const bytes = readFileSync(path);
  flip(bytes, FLIP_AT);
  writeFileSync(path, bytes);
  await expectPlaysBack(archive);
  // The damaged entry is gone (or refilled from git's verified bytes), and the checks are made again.
  if (existsSync(path)) expect(sha256(readFileSync(path))).toBe(bigSha);
  expect(existsSync(checksFile)).toBe(true);
}, 60_000);

test('a damaged object, loose (large body) or packed (small body): curl fails, the run exits 1 naming each body, a range of intact parts still plays', async () => {
  const archive = copyArchive();
  damageBothBodies(archive);
  const p = await build('playback', archive);
  expect(p.curl.big.code).not.toBe(0);
  expectNeverWrongBytes(p.curl.big, bigBytes);
  expect(p.curl.small.code).not.toBe(0);
  expectNeverWrongBytes(p.curl.small, smallBytes);
  expectNamed(p, bigUrl, bigSha);
  expect(linesNaming(p.stderr, smallUrl, smallSha)).toHaveLength(1);
  expect(p.stderr).toMatch(/2 damaged/);
  expect(p.curl.range.code).toBe(0);
  expect(p.curl.range.bytes.equals(bigBytes.subarray(0, FIRST_MIB))).toBe(true);
  // Nothing damaged made it into the cache.
  expect(existsSync(cachePart(archive, bigSha))).toBe(false);
}, 60_000);

test('a damaged byte inside a pack: curl fails, the run exits 1 naming the body', async () => {
  const archive = copyArchive();
  rmSync(join(archive, 'btrfly', 'cache'), { recursive: true, force: true });
  await pushToGoodRemote(archive);
  // Stored blocks only, so the body's bytes lie in the pack as they are.
  git(archive, '-c', 'core.compression=0', '-c', 'pack.compression=0', 'gc', '--quiet', '--prune=now');
  const oid = partOid(archive, bigSha);
  expect(existsSync(join(archive, 'objects', oid.slice(0, 2), oid.slice(2)))).toBe(false);
  const packDir = join(archive, 'objects', 'pack');
  const pack = join(packDir, readdirSync(packDir).find((f) => f.endsWith('.pack'))!);
  const bytes = readFileSync(pack);
  const needle = bigBytes.subarray(FLIP_AT, FLIP_AT + 64);
  const at = bytes.indexOf(needle);
  expect(at).toBeGreaterThan(0);
  flip(bytes, at + 10);
  chmodSync(pack, 0o644);
  writeFileSync(pack, bytes);
  const p = await build('playback', archive);
  expect(p.curl.big.code).not.toBe(0);
  expectNeverWrongBytes(p.curl.big, bigBytes);
  expectNamed(p, bigUrl, bigSha);
  expect(sha256(p.curl.small.bytes)).toBe(smallSha);
  // verify says the object is damaged or missing, not only "missing": the pack file is there.
  const v = await runCli(['verify', '--archive', archive]);
  expect(v.code).toBe(1);
  expect(v.stdout + v.stderr).toMatch(new RegExp(`body ${bigSha} part \\d+ \\(object ${oid}\\) cannot be read from the archive \\(missing or damaged\\)`));
  // The repair writes the pack again without the damaged object (everything else in it stays) and fetches it back.
  await expectRepaired(archive, /repair: set aside 1 damaged object \(1 from packs\) in btrfly\/damaged\/\S+\n/);
  await expectPlaysBack(archive);
}, 90_000);

test('verify --repair: a damaged loose object and one in a fast-import pack are set aside and fetched again from a good remote', async () => {
  const archive = copyArchive();
  await pushToGoodRemote(archive);
  const bigOid = partOid(archive, bigSha);
  damageBothBodies(archive);
  await expectRepaired(archive, /repair: set aside 2 damaged objects \(1 loose, 1 from packs\) in btrfly\/damaged\/\S+\n/);
  await expectPlaysBack(archive);
  // The damaged copies are kept aside, out of the object store: the loose object and the pack that held the other.
  const [aside] = readdirSync(join(archive, 'btrfly', 'damaged'));
  expect(readdirSync(join(archive, 'btrfly', 'damaged', aside))).toEqual(expect.arrayContaining([bigOid, expect.stringMatching(/^pack-.*\.pack$/)]));
}, 90_000);

test('verify --repair with no remote sets the damage aside and says so; a re-recording then stores both bodies again', async () => {
  const archive = copyArchive();
  damageBothBodies(archive);
  const r = await runCli(['verify', '--repair', '--archive', archive]);
  expect(r.stderr).toMatch(/repair: 2 objects are absent and the archive has no remote to fetch them from\n/);
  expect(r.stderr.trim().split('\n').at(-1)).toMatch(
    /^btrfly: verify --repair left 2 problems in .*: no remote brought the bodies back: .* or re-record the tags named above; the damaged copies are kept in btrfly\/damaged\/\S+ \(delete it once verify is clean\)$/,
  );
  expect(r.code).toBe(1);
  // The servers are back (on another port: the same bodies at other URLs) and the build is recorded again.
  const again = await startOrigin();
  const from = { origin: again, bigUrl: again.urlFor(`/gen/${BIG}?seed=tamper`, 'tamper.test'), smallUrl: again.urlFor(`/gen/${SMALL}?seed=small`, 'tamper.test') };
  try {
    expect((await build('record', archive, from)).code).toBe(0);
  } finally {
    await again.close();
  }
  // Every recording checks out, the damaged first one too: its bodies are the same objects, stored again.
  const v = await runCli(['verify', '--archive', archive]);
  expect(v.stdout).toMatch(/^ok: 1 tags, 2 recordings, 2 bodies/m);
  expect(v.code).toBe(0);
  await expectPlaysBack(archive, from);
  const first = git(archive, 'rev-list', '--max-parents=0', 'tamper').trim();
  const old = await runCli(['run', '--playback', `--tag=tamper@${first}`, '--archive', archive, '--', 'curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', bigUrl]);
  expect([old.code, old.stdout]).toEqual([0, '200']);
}, 120_000);

/**
 * A new commit on the tag whose manifest is `edit`ed: a consistent git history, every object
 * intact, that says something else than the recording did (an archive edited by hand).
 */
function rewriteManifest(archive: string, edit: (m: { entries: { request: { url: string }; response: { headers: { name: string; value: string }[]; content: { size: number } } }[] }) => void): void {
  const env = { ...process.env, GIT_INDEX_FILE: join(tmpDir('btrfly-tamper-index-'), 'index'), GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' };
  const g = (args: string[], input?: string): string => execFileSync('git', ['--git-dir', archive, ...args], { env, input, encoding: 'utf8' }).trim();
  const manifest = JSON.parse(g(['show', 'tamper:manifest.json'])) as Parameters<typeof edit>[0];
  edit(manifest);
  g(['read-tree', 'tamper']);
  g(['update-index', '--cacheinfo', `100644,${g(['hash-object', '-w', '--stdin'], `${JSON.stringify(manifest, null, 2)}\n`)},manifest.json`]);
  g(['update-ref', 'refs/heads/tamper', g(['commit-tree', g(['write-tree']), '-p', 'tamper', '-m', 'edited'])]);
}

test('a manifest edited to say a body has 0 bytes: curl never gets a clean empty answer, the run exits 1 naming the body', async () => {
  const archive = copyArchive();
  rewriteManifest(archive, (m) => {
    for (const e of m.entries) if (e.request.url === smallUrl) e.response.content.size = 0;
  });
  const p = await build('playback', archive);
  expectNeverWrongBytes(p.curl.small, smallBytes);
  expect(p.curl.small.code).not.toBe(0);
  expectNamed(p, smallUrl, smallSha);
  expect(sha256(p.curl.big.bytes)).toBe(bigSha);
}, 60_000);

test('a manifest edited to hold a header HTTP cannot carry: the client gets 500 Internal Server Error, the run exits 1 naming the answer', async () => {
  const archive = copyArchive();
  rewriteManifest(archive, (m) => {
    for (const e of m.entries) if (e.request.url === smallUrl) e.response.headers.push({ name: 'X-Split', value: 'a\r\nSet-Cookie: injected=1' });
  });
  const play = await runCli(['run', '--playback', '--tag=tamper', '--archive', archive, '--', 'curl', '-sS', '-D', '-', '-o', '/dev/null', smallUrl]);
  expect(play.stdout).toMatch(/^HTTP\/1\.1 500 Internal Server Error\r$/m);
  expect(play.stdout).not.toMatch(/injected/);
  expect(play.stderr).toContain(`btrfly: the recorded answer to GET ${smallUrl} could not be sent (`);
  expect(play.code).toBe(1);
}, 60_000);

test('a checks key cut short (a crash while it was written): playback sends the recorded bytes and makes a new key', async () => {
  const archive = copyArchive();
  const key = join(archive, 'btrfly', 'checks', 'key');
  writeFileSync(key, '');
  await expectPlaysBack(archive);
  expect(statSync(key).size).toBe(16);
}, 60_000);

test('a damaged manifest is refused, never played back as recorded; verify --repair fetches the tag again from a good remote', async () => {
  const archive = copyArchive();
  await pushToGoodRemote(archive);
  const oid = git(archive, 'rev-parse', 'tamper:manifest.json').trim();
  const at = execFileSync('git', ['--git-dir', archive, 'cat-file', 'blob', oid]).indexOf('"application/octet-stream"');
  expect(at).toBeGreaterThan(0);
  // "application/octet-stream" becomes "application/5ctet-stream": still valid JSON, a header that was never recorded.
  damageObject(archive, oid, at + '"application/'.length);
  const play = await runCli(['run', '--playback', '--tag=tamper', '--archive', archive, '--', 'curl', '-sS', '-D', '-', '-o', '/dev/null', bigUrl]);
  expect(play.stdout).not.toMatch(/5ctet/);
  expect(play.stderr).toMatch(/^btrfly: git object [0-9a-f]{40} is damaged: its bytes hash to [0-9a-f]{40}: run "btrfly verify --repair"/m);
  expect(play.code).toBe(1);
  await expectRepaired(archive, /repair: set aside 1 damaged object \(1 loose\) in btrfly\/damaged\/\S+\n/);
  await expectPlaysBack(archive);
}, 90_000);

test('a refs/replace ref that swaps the recording tree for an edited one is ignored: the commit id plays back what it names', async () => {
  const archive = copyArchive();
  // Another tree for the same commit id: the big URL's entry names other bytes, stored beside them.
  const env = { ...process.env, GIT_INDEX_FILE: join(tmpDir('btrfly-tamper-index-'), 'index') };
  const g = (args: string[], input?: string | Buffer): string => execFileSync('git', ['--git-dir', archive, ...args], { env, input, encoding: 'utf8' }).trim();
  const evil = Buffer.from(bigBytes);
  flip(evil, 1000);
  const evilSha = sha256(evil);
  g(['read-tree', 'tamper']);
  g(['update-index', '--add', '--cacheinfo', `100644,${g(['hash-object', '-w', '--stdin'], evil)},bodies/${evilSha.slice(0, 2)}/${evilSha}/00000000`]);
  g(['update-index', '--cacheinfo', `100644,${g(['hash-object', '-w', '--stdin'], g(['show', 'tamper:manifest.json']).replaceAll(bigSha, evilSha) + '\n')},manifest.json`]);
  g(['replace', g(['rev-parse', 'tamper^{tree}']), g(['write-tree'])]);
  rmSync(join(archive, 'btrfly', 'cache'), { recursive: true, force: true });
  expect(sha256(execFileSync('git', ['--git-dir', archive, 'cat-file', 'blob', `tamper:bodies/${evilSha.slice(0, 2)}/${evilSha}/00000000`], { maxBuffer: 2 * BIG }))).toBe(evilSha);
  await expectPlaysBack(archive);
}, 60_000);

test('a tag ref edited to name a blob: the run and verify say so, and verify --repair sets no intact object aside', async () => {
  const archive = copyArchive();
  const commit = git(archive, 'rev-parse', 'tamper').trim();
  const manifest = git(archive, 'rev-parse', 'tamper:manifest.json').trim();
  writeFileSync(join(archive, 'refs', 'heads', 'tamper'), `${manifest}\n`); // git refuses a non-commit under refs/heads: a hand edit
  const said = `tag "tamper" points at a git blob (${manifest.slice(0, 12)}), not at a recording: its ref was edited: run "btrfly verify --repair tamper" to fetch the tag again from the archive's remotes, or "btrfly rm tamper" and record it again`;
  const play = await runCli(['run', '--playback', '--tag=tamper', '--archive', archive, '--', 'true']);
  expect(play.stderr).toContain(`btrfly: ${said}\n`);
  expect(play.code).not.toBe(0);
  const r = await runCli(['verify', '--repair', 'tamper', '--archive', archive]);
  expect(`${r.stdout}${r.stderr}`).toContain(`tamper: ${said}\n`);
  expect(r.stderr).not.toMatch(/set aside/);
  expect(r.code).toBe(1);
  // The recording is whole: with its ref put back, git and btrfly find nothing wrong.
  writeFileSync(join(archive, 'refs', 'heads', 'tamper'), `${commit}\n`);
  expect(execFileSync('git', ['-C', archive, 'fsck', '--full', '--no-dangling'], { encoding: 'utf8', stdio: 'pipe' })).toBe('');
  expect((await runCli(['verify', '--archive', archive])).code).toBe(0);
}, 60_000);

test('a checks store that cannot be written (a file where its directory goes): playback sends the recorded bytes, a range too', async () => {
  const archive = copyArchive();
  const dir = join(archive, 'btrfly', 'checks', bigSha.slice(0, 2));
  rmSync(dir, { recursive: true, force: true });
  writeFileSync(dir, 'not a directory\n');
  await expectPlaysBack(archive);
}, 60_000);

test('a manifest edited to say a body is gzip when it is not: a client that does not accept gzip gets a broken transfer, the run exits 1 naming the answer and what to do', async () => {
  const archive = copyArchive();
  rewriteManifest(archive, (m) => {
    for (const e of m.entries) {
      if (e.request.url !== bigUrl) continue;
      (e.response.content as { encoding?: string }).encoding = 'gzip';
      e.response.headers.push({ name: 'Content-Encoding', value: 'gzip' });
    }
  });
  const play = await runCli(['run', '--playback', '--tag=tamper', '--archive', archive, '--', 'curl', '-sS', '-H', 'Accept-Encoding: identity', '-o', '/dev/null', bigUrl]);
  expect(play.stderr).toMatch(/^curl: \((18|52|56)\)/m);
  expect(play.stderr).toContain(
    `btrfly: the recorded answer to GET ${bigUrl} was broken off after its headers (its body does not decode as its recorded Content-Encoding "gzip" says (incorrect header check): record the tag again, or restore its manifest from git history), so the client's transfer failed\n`,
  );
  expect(play.code).toBe(1);
}, 60_000);
