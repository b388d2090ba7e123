/**
 * Hermetic playback in command mode (issue 3): a build records through `btrfly run --record`
 * inside a "builder" network namespace whose only link leads to an "origin" namespace (an
 * HTTPS origin serving a 2 GiB body and 200 small ones, and a real `git http-backend` behind
 * HTTPS); then, with the origin stopped, the same build plays back inside an empty namespace
 * (loopback only) and gets the same bytes. The peak RSS of the btrfly process is measured
 * while the 2 GiB body records and while it plays back.
 */
import { readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  btrflyIn,
  createNetns,
  genBodySha256,
  gitFsck,
  hasNetns,
  linkNetns,
  linkStats,
  makeGitRepo,
  startGitServer,
  startOrigin,
  stopChild,
  tmpDir,
  type Netns,
  type Origin,
  type VethLink,
} from '../helpers';
import { describeWhen } from '../helpers/when';

const describeNetns = describeWhen(hasNetns() ? undefined : 'network namespaces (root and iproute2)');

const GIB2 = 2 * 1024 * 1024 * 1024;
const MID = 64 * 1024 * 1024;
const SMALLS = 200;
const RSS_LIMIT_KIB = 250 * 1024;

/** The build: a 2 GiB download, 200 small ones in one curl, ranges and a resume, node (fetch and https), git clone. */
function buildScript(base: string, gitUrl: string): string {
  return [
    'set -eu',
    'OUT="$1"',
    `curl -sSf "${base}/gen/${GIB2}?seed=42" | sha256sum | cut -d' ' -f1 > "$OUT/big.sha"`,
    // The btrfly process is this script's parent: its peak RSS right after the 2 GiB body.
    'grep VmHWM "/proc/$PPID/status" > "$OUT/big.hwm"',
    'mkdir -p "$OUT/small"',
    `curl -sSf -K "$SMALLS_CFG"`,
    '(cd "$OUT/small" && sha256sum * > "$OUT/small.sums")',
    `curl -sSf -r 1000000-9000000 -o "$OUT/range" "${base}/gen/${MID}?seed=5"`,
    `curl -sSf -r 0-30000000 -o "$OUT/resume" "${base}/gen/${MID}?seed=5"`,
    `curl -sSf -C - -o "$OUT/resume" "${base}/gen/${MID}?seed=5"`,
    `"$NODE" -e "fetch(process.argv[1]).then(async r=>{if(!r.ok)throw new Error(r.status);require('fs').writeFileSync(process.argv[2],Buffer.from(await r.arrayBuffer()))})" "${base}/gen/300000?seed=node1" "$OUT/node-fetch"`,
    `"$NODE" -e "require('https').get(process.argv[1],r=>{if(r.statusCode!==200)process.exit(9);r.pipe(require('fs').createWriteStream(process.argv[2]))}).on('error',e=>{console.error(e);process.exit(8)})" "${base}/gen/200000?seed=node2" "$OUT/node-https"`,
    `git clone -q "${gitUrl}" "$OUT/clone"`,
    'git -C "$OUT/clone" rev-parse HEAD > "$OUT/clone.head"',
    '(cd "$OUT/clone" && sha256sum blob.bin file*.txt > "$OUT/clone.sums")',
    'if [ -n "${BIG_RANGES:-}" ]; then',
    // Across the 8 MiB part boundary at 1 GiB, and the last 1000 bytes (suffix range).
    `  curl -sSf -r 1073741000-1082131000 "${base}/gen/${GIB2}?seed=42" | sha256sum | cut -d' ' -f1 > "$OUT/big-mid.sha"`,
    `  curl -sSf -r -1000 "${base}/gen/${GIB2}?seed=42" | sha256sum | cut -d' ' -f1 > "$OUT/big-tail.sha"`,
    'fi',
    '',
  ].join('\n');
}

describeNetns('btrfly run: hermetic playback from an empty network namespace', () => {
  let builder: Netns;
  let originNs: Netns;
  let link: VethLink;
  let origin: Origin;
  let git: Awaited<ReturnType<typeof startGitServer>>;
  let head: string;
  let archive: string;
  let script: string;
  let smallsCfg: (out: string) => string;
  let upstream: string[];
  let recorded: string;

  beforeAll(async () => {
    builder = await createNetns();
    originNs = await createNetns();
    link = await linkNetns(builder, originNs);
    origin = await startOrigin({ https: true, netns: originNs, host: link.b.address });
    const repos = tmpDir();
    head = await makeGitRepo(repos);
    git = await startGitServer(originNs, link.b.address, repos);
    archive = join(tmpDir(), 'archive');
    const base = origin.urlFor('/', 'origin.test').replace(/\/$/, '');
    script = join(tmpDir(), 'build.sh');
    writeFileSync(script, buildScript(base, `https://git.test:${git.port}/proj.git`));
    smallsCfg = (out) => {
      const cfg = join(out, 'smalls.cfg');
      const lines: string[] = [];
      for (let i = 1; i <= SMALLS; i++) lines.push(`url = "${base}/gen/${i * 97}?seed=s${i}"`, `output = "${out}/small/${String(i).padStart(3, '0')}"`);
      writeFileSync(cfg, lines.join('\n') + '\n');
      return cfg;
    };
    upstream = ['--upstream-ca', origin.caPath!, '--resolve', `origin.test:${link.b.address}`, '--resolve', `git.test:${link.b.address}`];
  });

  it('records the build from the origin namespace; flat memory for the 2 GiB body', async () => {
    recorded = tmpDir();
    const env = { SMALLS_CFG: smallsCfg(recorded), NODE: process.execPath };
    const rec = await btrflyIn(builder, ['run', '--record', '--tag=hermetic', '--archive', archive, ...upstream, '--', 'bash', script, recorded], env);
    const scriptHwm = Number(/(\d+)/.exec(readFileSync(join(recorded, 'big.hwm'), 'utf8'))![1]);
    process.stderr.write(`record: peak RSS of btrfly ${(rec.peakRssKiB / 1024).toFixed(1)} MiB (after the 2 GiB body: ${(scriptHwm / 1024).toFixed(1)} MiB)\n`);
    expect(rec.stderr).toMatch(/recorded tag "hermetic"/);
    expect(rec.code).toBe(0);
    expect(scriptHwm).toBeLessThan(RSS_LIMIT_KIB);
    expect(rec.peakRssKiB).toBeLessThan(RSS_LIMIT_KIB);

    expect(readFileSync(join(recorded, 'big.sha'), 'utf8').trim()).toBe(await genBodySha256(GIB2, 42));
    expect(readdirSync(join(recorded, 'small'))).toHaveLength(SMALLS);
    expect(readFileSync(join(recorded, 'small', '200'))).toHaveLength(200 * 97);
    expect(readFileSync(join(recorded, 'clone.head'), 'utf8').trim()).toBe(head);
    const stats = await origin.stats();
    expect(stats.byPath[`/gen/${GIB2}`]).toBe(1);
    expect((await git.stats()).total).toBeGreaterThanOrEqual(2);
    await gitFsck(archive);
  }, 240_000); // a 2 GiB record beside two other suites on 2 cores took over 120 s once

  it('plays the build back in an empty namespace with the origin stopped: same bytes, exit 0, nothing reaches the origin', async () => {
    await origin.close();
    await stopChild(git.child);
    const before = await linkStats(link.b);
    const sealed = await createNetns();
    const out = tmpDir();
    mkdirSync(join(out, 'small'));
    const env = { SMALLS_CFG: smallsCfg(out), NODE: process.execPath, BIG_RANGES: '1' };
    const play = await btrflyIn(sealed, ['run', '--playback', '--tag=hermetic', '--archive', archive, '--', 'bash', script, out], env);
    process.stderr.write(`playback: peak RSS of btrfly ${(play.peakRssKiB / 1024).toFixed(1)} MiB\n`);
    expect(play.stderr).toMatch(/ 0 misses/);
    expect(play.code).toBe(0);
    expect(play.peakRssKiB).toBeLessThan(RSS_LIMIT_KIB);
    expect(await linkStats(link.b)).toEqual(before);

    for (const f of ['big.sha', 'small.sums', 'clone.head', 'clone.sums']) {
      expect(`${f}: ${readFileSync(join(out, f), 'utf8')}`).toBe(`${f}: ${readFileSync(join(recorded, f), 'utf8')}`);
    }
    for (const f of ['range', 'resume', 'node-fetch', 'node-https']) {
      expect(`${f}: ${readFileSync(join(out, f)).equals(readFileSync(join(recorded, f)))}`).toBe(`${f}: true`);
    }
    expect(readFileSync(join(out, 'resume'))).toHaveLength(MID);
    expect(readFileSync(join(out, 'node-fetch'))).toHaveLength(300000);
    expect(readFileSync(join(out, 'big-mid.sha'), 'utf8').trim()).toBe(await genBodySha256(GIB2, 42, { start: 1073741000, end: 1082131001 }));
    expect(readFileSync(join(out, 'big-tail.sha'), 'utf8').trim()).toBe(await genBodySha256(GIB2, 42, { start: GIB2 - 1000 }));
  });

  it('a playback miss from curl, node and git is a 404 X-Btrfly: miss, named in the summary, exit 3; even with the origin reachable nothing goes upstream', async () => {
    // The origin back, reachable from the builder namespace: playback must still not ask it.
    const origin2 = await startOrigin({ https: true, netns: originNs, host: link.b.address });
    const base = origin2.urlFor('/', 'origin.test').replace(/\/$/, '');
    const dir = tmpDir();
    const cmd = [
      `curl -sS -D "${dir}/curl.head" -o "${dir}/curl.body" "${base}/gen/12345?seed=missing"`,
      `"${process.execPath}" -e "fetch(process.argv[1]).then(async r=>{require('fs').writeFileSync(process.argv[2], r.status+' '+r.headers.get('x-btrfly'))})" "${base}/gen/999?seed=node-miss" "${dir}/node"`,
      `git clone -q "https://git.test:${git.port}/other.git" "${dir}/other" 2> "${dir}/git.err"; echo $? > "${dir}/git.code"`,
      'true',
    ].join('\n');
    const before = await linkStats(link.b);
    const play = await btrflyIn(builder, ['run', '--playback', '--tag=hermetic', '--archive', archive, '--', 'bash', '-c', cmd]);
    expect(play.code).toBe(3);
    expect(readFileSync(join(dir, 'curl.head'), 'utf8')).toMatch(/^HTTP\/1\.1 404[\s\S]*x-btrfly: miss/im);
    expect(readFileSync(join(dir, 'curl.body'), 'utf8')).toContain('tag "hermetic"');
    expect(readFileSync(join(dir, 'node'), 'utf8')).toBe('404 miss');
    expect(readFileSync(join(dir, 'git.code'), 'utf8').trim()).not.toBe('0');
    expect(readFileSync(join(dir, 'git.err'), 'utf8')).toMatch(/not found/);
    expect(play.stderr).toContain(`GET ${base}/gen/12345?seed=missing`);
    expect(play.stderr).toContain(`GET ${base}/gen/999?seed=node-miss`);
    expect(play.stderr).toMatch(new RegExp(`GET https://git\\.test:${git.port}/other\\.git/info/refs\\?service=git-upload-pack`));
    expect(play.stderr).toMatch(/3 request\(s\) missed/);
    expect((await origin2.stats()).total).toBe(0);
    expect(await linkStats(link.b)).toEqual(before);
    await origin2.close();
  });
});
