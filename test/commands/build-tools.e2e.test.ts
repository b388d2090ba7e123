/**
 * Real build tools end to end (issue 4): apt-get against a signed apt repository over plain
 * HTTP (deb.test, by-hash indexes), curl -LO and curl -C - against a download host that
 * redirects to a CDN (files.test -> cdn.test, HTTPS), the go command against a Go module
 * proxy (goproxy.test, HTTPS; curl when go is not installed), and git clone over smart HTTP.
 * Each build records, the origins stop, and the same build plays back with the same bytes,
 * exit 0, no miss, and not one packet to an origin; a diverged build (a bumped module
 * version) fails its playback with exit 3 and names the new URL; re-recorded with an apt
 * package and the module bumped, `diff`, `sbom` and the `packages.lock` diff name exactly
 * those two bumps (issue 15; npm and PyPI bumps: package-diff.e2e).
 *
 * Command mode: `btrfly run` in a builder namespace linked to an origin namespace; playback
 * in an empty namespace. Host mode: `btrfly start` inside `unshare --mount --net`, tools with
 * no proxy settings at all (btrfly's DNS and the system trust store send them to btrfly).
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { onPath } from '../../src/engine/host/config';
import {
  BUILD_ORIGIN_NAMES,
  BUILD_TOOLS_SCRIPT,
  CLI_IN_SCRIPT as cli,
  GIT_SERVER_SCRIPT,
  backgroundServer,
  btrflyIn,
  buildOriginsArgs,
  createNetns,
  genBodySha256,
  hasNetns,
  hostModeMissing,
  inNamespace,
  linkNetns,
  linkStats,
  makeBuildOriginContent,
  runCli,
  runOk,
  makeGitRepo,
  namespaceHost,
  startBuildOrigins,
  testCa,
  tmpDir,
  type BuildOriginContent,
  type BuildOrigins,
  type Netns,
  type VethLink,
} from '../helpers';
import { describeWhen, testWhen } from '../helpers/when';

const TOOLS = ['apt-get', 'dpkg-deb', 'gpg', 'gpgconf', 'curl', 'sha256sum'];
const missingTools = TOOLS.filter((t) => !onPath(t));
// NO_GO=1 (passed on to the build script) takes the curl path even where go is installed.
const HAS_GO = onPath('go') && !process.env.NO_GO;
if (!HAS_GO) console.warn('build-tools.e2e: go is not installed (or NO_GO is set); the Go module proxy is fetched with curl');
const CDN_SIZE = 3 * 1024 * 1024 + 17;
const TAG = 'tools';

/** What every build must have fetched, whoever serves it: the .debs, the CDN file twice, the module. */
async function expectBuildResult(result: string, content: BuildOriginContent): Promise<void> {
  for (const [deb, sha] of Object.entries(content.debs)) expect(result).toContain(`apt ${deb}: ${sha}\n`);
  expect(result).toContain('apt readme: hello from deb.test\n');
  const cdnSha = await genBodySha256(CDN_SIZE, 'tool-1.0.tar.gz');
  expect(result).toContain(`cdn tool-1.0.tar.gz: ${cdnSha}\n`);
  expect(result).toContain(`cdn resumed.tar.gz: ${cdnSha}\n`);
  expect(result).toContain('go versions: ');
  expect(result).toMatch(HAS_GO ? /go\.sum: example\.test\/greet v1\.0\.0 h1:/ : /go zip: [0-9a-f]{64}/);
}

// In CI a missing tool is a failure, not a skip: .ci/packages.txt installs them all.
const describeNetns = describeWhen([...missingTools, ...(hasNetns() ? [] : ['network namespaces (root and iproute2)'])]);

describeNetns('apt, a CDN, a Go proxy through btrfly run: record, then hermetic playback', () => {
  let builder: Netns;
  let originNs: Netns;
  let link: VethLink;
  let content: BuildOriginContent;
  let origins: BuildOrigins;
  let archive: string;
  let recorded: string;
  let upstream: string[];
  const build = (out: string) => ['--', 'bash', BUILD_TOOLS_SCRIPT, out, content.aptKey];
  const env = { CDN_SIZE: String(CDN_SIZE) };

  beforeAll(async () => {
    [builder, originNs] = await Promise.all([createNetns(), createNetns()]);
    link = await linkNetns(builder, originNs);
    content = makeBuildOriginContent();
    origins = await startBuildOrigins(originNs, link.b.address, content);
    archive = path.join(tmpDir(), 'archive');
    upstream = ['--upstream-ca', testCa().caPath, ...BUILD_ORIGIN_NAMES.flatMap((name) => ['--resolve', `${name}:${link.b.address}`])];
  });

  it('records apt-get update/download, curl -LO and -C - through a redirect, and go get', async () => {
    recorded = path.join(tmpDir(), 'out');
    const rec = await btrflyIn(builder, ['run', '--record', `--tag=${TAG}`, '--archive', archive, ...upstream, ...build(recorded)], env, 120_000);
    expect(rec.stderr).toMatch(new RegExp(`recorded tag "${TAG}"`));
    expect(`${rec.stderr}exit ${rec.code}`).toMatch(/\nexit 0$/);
    await expectBuildResult(readFileSync(path.join(recorded, 'result.txt'), 'utf8'), content);
    const { byHost, requests } = await origins.stats();
    expect(Object.keys(byHost).sort()).toEqual([...BUILD_ORIGIN_NAMES].sort());
    // apt went by hash, as the Release file asks.
    expect(requests.map((r) => r.url)).toContainEqual(expect.stringMatching(/^\/debian\/dists\/stable\/main\/binary-amd64\/by-hash\/SHA256\/[0-9a-f]{64}$/));
  }, 150_000);

  it('plays the same build back in an empty namespace with the origins stopped: same bytes, exit 0, no packet to an origin', async () => {
    await origins.close();
    const before = await linkStats(link.b);
    const sealed = await createNetns();
    const out = path.join(tmpDir(), 'out');
    const play = await btrflyIn(sealed, ['run', '--playback', `--tag=${TAG}`, '--archive', archive, ...build(out)], env, 120_000);
    expect(play.stderr).toMatch(/ 0 misses/);
    expect(`${play.stderr}exit ${play.code}`).toMatch(/\nexit 0$/);
    expect(readFileSync(path.join(out, 'result.txt'), 'utf8')).toBe(readFileSync(path.join(recorded, 'result.txt'), 'utf8'));
    expect(await linkStats(link.b)).toEqual(before);
  }, 150_000);

  it('a diverged build (module bumped to v1.1.0) fails its playback with exit 3 and names the new URL', async () => {
    const sealed = await createNetns();
    const out = path.join(tmpDir(), 'out');
    const play = await btrflyIn(sealed, ['run', '--playback', `--tag=${TAG}`, '--archive', archive, ...build(out)], { ...env, STEPS: 'go', GREET_VERSION: 'v1.1.0' }, 60_000);
    expect(play.code).toBe(3);
    // go finds v1.1.0's .info and .mod (`go list -m -versions` read them during record, to
    // look for retractions) and misses the zip; curl misses the .info and stops there.
    const missed = play.stderr.split(/request\(s\) missed.*\n/)[1]?.split('\n').filter((l) => l.startsWith('  GET ')) ?? [];
    expect(missed).toContainEqual(expect.stringMatching(/^ {2}GET https:\/\/goproxy\.test\/example\.test\/greet\/@v\/v1\.1\.0\.(info|zip)$/));
    for (const line of missed) expect(line).toContain('v1.1.0');
  }, 90_000);

  it('re-recorded with one apt package and the Go module bumped: diff, sbom and the packages.lock diff name exactly those bumps', async () => {
    const first = (await runOk('git', ['--git-dir', archive, 'rev-parse', TAG])).stdout.trim();
    const bumped = makeBuildOriginContent([
      { name: 'btrfly-hello', version: '1.1', text: 'hello again from deb.test\n' },
      { name: 'btrfly-tools', version: '2.0' },
    ]);
    const origins2 = await startBuildOrigins(originNs, link.b.address, bumped);
    try {
      const out = path.join(tmpDir(), 'out');
      const rec = await btrflyIn(builder, ['run', '--record', `--tag=${TAG}`, '--archive', archive, ...upstream, '--', 'bash', BUILD_TOOLS_SCRIPT, out, bumped.aptKey], { ...env, GREET_VERSION: 'v1.1.0' }, 120_000);
      expect(`${rec.stderr}exit ${rec.code}`).toMatch(/\nexit 0$/);
    } finally {
      await origins2.close();
    }
    const diff = await runCli(['diff', `${TAG}@${first}`, TAG, '--archive', archive]);
    expect(diff.code).toBe(0);
    const packageLines = diff.stdout.split('\n').filter((l) => /^(upgraded|downgraded|added|removed|changed|source) /.test(l));
    expect(packageLines).toEqual(['upgraded   btrfly-hello 1.0 → 1.1 (deb)', 'upgraded   example.test/greet v1.0.0 → v1.1.0 (golang)']);
    // The apt indexes and the Go version list changed with the bumps: counted, listed only with --all.
    expect(diff.stdout).toMatch(/^metadata: [1-9]\d* refreshed, \d+ new, \d+ gone$/m);
    expect(diff.stdout).not.toContain('/dists/');
    expect((await runCli(['diff', `${TAG}@${first}`, TAG, '--all', '--archive', archive])).stdout).toContain('/dists/stable/');

    const sbom = JSON.parse((await runCli(['sbom', TAG, '--archive', archive])).stdout) as { components: Array<{ purl: string }> };
    const purls = sbom.components.map((c) => c.purl);
    expect(purls).toContainEqual(expect.stringMatching(/^pkg:deb\/btrfly-hello@1\.1\b/));
    expect(purls).toContainEqual(expect.stringMatching(/^pkg:golang\/example\.test\/greet@v1\.1\.0\b/));
    expect(purls.filter((p) => /btrfly-hello@1\.0\b|greet@v1\.0\.0\b/.test(p))).toEqual([]);

    const lock = await runOk('git', ['--git-dir', archive, 'diff', first, TAG, '--', 'packages.lock']);
    const changed = lock.stdout.split('\n').filter((l) => /^[-+](?![-+])/.test(l));
    expect(changed.length).toBeGreaterThanOrEqual(4);
    for (const l of changed) expect(l).toMatch(/^-deb btrfly-hello 1\.0 |^\+deb btrfly-hello 1\.1 |^-golang example\.test\/greet v1\.0\.0 |^\+golang example\.test\/greet v1\.1\.0 /);
  }, 180_000);
});

const hostMissing = [...hostModeMissing(TOOLS), ...(onPath('iptables') ? [] : ['iptables'])];
const maybeHost = testWhen(hostMissing);

maybeHost('host mode: apt, curl through a CDN redirect, go and git clone record, then play back with the origins gone and no packet to them', async () => {
  const work = tmpDir('btrfly-host-tools-');
  const { prelude } = await namespaceHost(work, 'nameserver 192.0.2.53\noptions timeout:1\n');
  const content = makeBuildOriginContent();
  const repos = tmpDir('btrfly-host-repos-');
  const head = await makeGitRepo(repos);
  const archive = path.join(work, 'archive');
  const gitCert = content.cert;
  const resolve = [...BUILD_ORIGIN_NAMES.map((n) => `--resolve ${n}:127.0.0.5`), '--resolve git.test:127.0.0.6'].join(' ');
  const buildAndClone = (out: string) => [
    `CDN_SIZE=${CDN_SIZE} bash ${BUILD_TOOLS_SCRIPT} ${out} ${content.aptKey}`,
    `git clone -q https://git.test/proj.git ${out}/clone`,
    `git -C ${out}/clone rev-parse HEAD > ${out}/clone.head`,
  ];
  // Packets to the origins' addresses, counted by the kernel from the end of record on.
  const originPackets = `iptables -L OUTPUT -v -x -n | awk '$NF == "127.0.0.5" || $NF == "127.0.0.6" {n += $1} END {print "origin packets " n}'`;
  const script = [
    ...prelude,
    ...backgroundServer('ORIGINS', `"${process.execPath}" ${buildOriginsArgs(content, '127.0.0.5').join(' ')}`, `${work}/origins.out`),
    ...backgroundServer('GIT', `"${process.execPath}" ${GIT_SERVER_SCRIPT} --host 127.0.0.6 --port 443 --root ${repos} --cert ${gitCert.certPath} --key ${gitCert.keyPath}`, `${work}/git.out`),
    'iptables -A OUTPUT -d 127.0.0.5',
    'iptables -A OUTPUT -d 127.0.0.6',
    `${cli} start record --tag=${TAG} --archive ${archive} ${resolve} --upstream-ca ${testCa().caPath}`,
    ...buildAndClone(`${work}/rec`),
    `${cli} stop record`,
    'kill $ORIGINS $GIT; wait $ORIGINS $GIT || true',
    'iptables -Z OUTPUT',
    `${cli} start playback --tag=${TAG} --archive ${archive}`,
    ...buildAndClone(`${work}/play`),
    `${cli} stop playback && echo "stop playback exit 0" || echo "stop playback exit $?"`,
    originPackets,
  ];
  const ns = inNamespace(script, 150_000);
  const out = ns.stdout + ns.stderr;
  expect(out).toMatch(/played back tag "tools" .* 0 misses/);
  expect(out).toMatch(/stop playback exit 0/);
  expect(out).toMatch(/origin packets 0\n/);
  expect(ns.status).toBe(0);
  const read = (f: string) => readFileSync(path.join(work, f), 'utf8');
  await expectBuildResult(read('rec/result.txt'), content);
  expect(read('play/result.txt')).toBe(read('rec/result.txt'));
  expect(read('rec/clone.head').trim()).toBe(head);
  expect(read('play/clone.head').trim()).toBe(head);
  expect(existsSync(path.join(work, 'play', 'clone', 'blob.bin'))).toBe(true);
}, 180_000);
