/**
 * Real build tools end to end (issue 4): pip against a Python package index on
 * `pypi.test` (PEP 691 JSON and PEP 503 HTML simple API, wheels built at test time) and
 * npm against a registry on `registry.test` (packuments, `npm pack`-shaped tarballs), each
 * served over HTTPS by test/fixtures/package-index.js.
 *
 * For each tool, in command mode: record the build through `btrfly run` in a namespace
 * whose only link leads to the origin's namespace; stop the origin; play the build back in
 * an empty namespace and get the same installed files, byte for byte, exit 0, no miss, and
 * not one packet on the origin's link. Then a build with one dependency bumped plays back
 * to exit 3 with the new URL in the miss list. In host mode (btrfly's DNS and the system
 * trust store, inside a private mount and network namespace): the same record, playback
 * with the origins stopped, same files, no packet towards an origin's address; both tools
 * in one host-mode session.
 */
import { join } from 'node:path';
import {
  BUILD_TOOLS,
  CLI_ENTRY,
  STOP_ORIGINS,
  buildToolEnv,
  cliEnv,
  cliWorkDir,
  createNetns,
  gitFsck,
  hasNetns,
  hostModeMissing,
  inNamespace,
  linkNetns,
  linkStats,
  namespaceHost,
  snapshot,
  startOrigin,
  tmpDir,
  type BuildTool,
  type Netns,
  type Origin,
  type RunResult,
  type VethLink,
} from '../helpers';
import { describeWhen, testWhen } from '../helpers/when';

const describeNetns = describeWhen(hasNetns() ? undefined : 'network namespaces (root and iproute2)');
const hostMissing = hostModeMissing(['iptables']);
if (hostMissing.length) console.warn(`build-tools.e2e: host mode skipped, this machine lacks: ${hostMissing.join(', ')}`);

/** Runs `btrfly ARGS` inside `ns` with the build tools' environment. */
function btrflyIn(ns: Netns, args: readonly string[]): Promise<RunResult> {
  return ns.exec(process.execPath, [CLI_ENTRY, ...args], { cwd: cliWorkDir(), env: buildToolEnv(cliEnv()), timeoutMs: 120_000 });
}

/** The files a build produced, each with its SHA-256; fails on an empty or missing tree. */
async function installed(tool: BuildTool, dir: string): Promise<Record<string, string>> {
  const tree = await snapshot(tool.resultDir(dir));
  expect(Object.keys(tree).length).toBeGreaterThan(3);
  return tree;
}

/**
 * Paths each tool must have asked its origin for while recording: for pip, the JSON simple
 * API (pip prefers PEP 691) and the HTML-only one; for npm, each packument and tarball.
 */
const ASKED: Record<BuildTool['name'], string[]> = {
  pip: ['/simple/btrfly-demo-app/', '/legacy/simple/btrfly-demo-util/', '/packages/btrfly_demo_util-1.0.0-py3-none-any.whl'],
  npm: ['/btrfly-demo-top', '/btrfly-demo-mid', '/btrfly-demo-leaf', '/btrfly-demo-leaf/-/btrfly-demo-leaf-1.0.0.tgz'],
};

/** A few files each tool's build must have produced, so "the same result" is never two empty trees. */
const EXPECTED: Record<BuildTool['name'], string[]> = {
  pip: [
    'site/btrfly_demo_app/__init__.py',
    'site/btrfly_demo_util-1.0.0.dist-info/METADATA',
    'wheels/btrfly_demo_app-1.0.0-py3-none-any.whl',
    'wheels/btrfly_demo_util-1.0.0-py3-none-any.whl',
  ],
  npm: [
    'node_modules/btrfly-demo-top/package.json',
    'node_modules/btrfly-demo-mid/index.js',
    'node_modules/btrfly-demo-leaf/package.json',
    'package-lock.json',
  ],
};

describe.each(BUILD_TOOLS.map((tool) => [tool.name, tool] as const))('%s through btrfly', (name, tool) => {
  const missing = tool.missing();
  if (missing) console.warn(`build-tools.e2e: ${name} skipped, this machine lacks ${missing}`);
  const maybe = testWhen(missing);

  describeNetns('command mode (btrfly run), hermetic playback', () => {
    let builder: Netns;
    let originNs: Netns;
    let link: VethLink;
    let origin: Origin;
    let archive: string;
    let base: string;
    let recorded: Record<string, string>;
    const tag = `${name}-build`;

    beforeAll(async () => {
      if (missing) return;
      builder = await createNetns();
      originNs = await createNetns();
      link = await linkNetns(builder, originNs);
      origin = await startOrigin({ https: true, kind: tool.kind, netns: originNs, host: link.b.address, names: [tool.host] });
      archive = join(tmpDir(), 'archive');
      base = origin.urlFor('/', tool.host).replace(/\/$/, '');
    });

    maybe('records the build from the origin through the proxy, trusting btrfly\'s CA from the child environment', async () => {
      const dir = tmpDir();
      tool.writeProject(dir);
      const upstream = ['--resolve', `${tool.host}:${link.b.address}`, '--upstream-ca', origin.caPath!];
      const rec = await btrflyIn(builder, ['run', '--record', `--tag=${tag}`, '--archive', archive, ...upstream, '--', 'bash', '-c', tool.command(dir, base)]);
      expect(rec.stderr).toMatch(new RegExp(`recorded tag "${tag}"`));
      expect(rec.code).toBe(0);
      recorded = await installed(tool, dir);
      for (const file of EXPECTED[name]) expect(Object.keys(recorded)).toContain(file);
      const stats = await origin.stats();
      for (const path of ASKED[name]) expect(Object.keys(stats.byPath)).toContain(path);
      if (name === 'pip') {
        const index = stats.requests.find((r) => r.url === '/simple/btrfly-demo-app/');
        expect(index?.headers.accept).toMatch(/application\/vnd\.pypi\.simple\.v1\+json/);
      }
      await gitFsck(archive);
    });

    maybe('plays it back in an empty namespace with the origin stopped: same files and hashes, exit 0, no packet on the origin\'s link', async () => {
      await origin.close();
      const before = await linkStats(link.b);
      const sealed = await createNetns();
      const dir = tmpDir();
      tool.writeProject(dir);
      const play = await btrflyIn(sealed, ['run', '--playback', `--tag=${tag}`, '--archive', archive, '--', 'bash', '-c', tool.command(dir, base)]);
      expect(play.stderr).toMatch(/ 0 misses/);
      expect(play.code).toBe(0);
      expect(await installed(tool, dir)).toEqual(recorded);
      expect(await linkStats(link.b)).toEqual(before);
    });

    maybe('a build with a bumped dependency fails in playback with exit 3 and names the new URL', async () => {
      const sealed = await createNetns();
      const dir = tmpDir();
      tool.writeProject(dir, true);
      const play = await btrflyIn(sealed, ['run', '--playback', `--tag=${tag}`, '--archive', archive, '--', 'bash', '-c', tool.command(dir, base)]);
      expect(play.code).toBe(3);
      expect(play.stderr).toMatch(/request\(s\) missed/);
      expect(play.stderr).toContain(`GET ${tool.divergedUrl(base)}`);
    });
  });
});

/** Each tool's origin in the host namespace: its own name on its own loopback address, port 443. */
const HOST_TOOLS = BUILD_TOOLS.filter((tool) => !tool.missing()).map((tool, i) => ({ tool, address: `127.0.0.${5 + i}` }));
const hostTest = testWhen(hostMissing.length ? hostMissing : HOST_TOOLS.length ? undefined : 'any of the package managers');

hostTest(`host mode: ${HOST_TOOLS.map((t) => t.tool.name).join(' and ')} record through btrfly's DNS and the system trust store, play back with the origins stopped, same files, no packet to an origin`, async () => {
  const work = tmpDir('btrfly-host-tools-');
  // One session for every tool: host mode's start and stop (resolver, trust store) are the slow part.
  const { copies, prelude, upstreamFlags } = await namespaceHost(
    work,
    'nameserver 192.0.2.53\n',
    HOST_TOOLS.map(({ tool, address }) => ({ name: tool.host, address, kind: tool.kind })),
  );
  const before = await snapshot(copies);
  const cli = `"${process.execPath}" "${CLI_ENTRY}"`;
  const archive = join(work, 'archive');
  const builds = (phase: string) =>
    HOST_TOOLS.map(({ tool }) => {
      const dir = join(work, phase, tool.name);
      tool.writeProject(dir);
      return `(${tool.command(dir, `https://${tool.host}`)}) && echo "${phase} ${tool.name} exit 0"`;
    });
  // Loopback traffic passes OUTPUT: these rules count every packet sent towards an origin.
  const counters = HOST_TOOLS.map(({ address }) => `iptables -A OUTPUT -d ${address}`);
  const countOrigins = `iptables -L OUTPUT -v -n -x | awk '$NF ~ /^127\\.0\\.0\\./ { print "packets to " $NF " " $1 }'`;
  const trust = HOST_TOOLS.flatMap(({ tool }) => Object.entries(tool.systemTrustEnv).map(([k, v]) => `export ${k}=${v}`));
  const script = [
    ...prelude,
    ...trust,
    ...counters,
    `${cli} start record --tag=host-tools --archive ${archive} ${upstreamFlags}`,
    ...builds('record'),
    `${cli} stop record`,
    STOP_ORIGINS,
    'iptables -Z OUTPUT',
    `${cli} start playback --tag=host-tools --archive ${archive}`,
    ...builds('playback'),
    `${cli} stop playback && echo "stop playback exit 0" || echo "stop playback exit $?"`,
    countOrigins,
  ];
  const ns = inNamespace(script, { env: buildToolEnv(), timeoutMs: 120_000 });
  const out = ns.stdout + ns.stderr;
  expect(out).toMatch(/recorded tag "host-tools"/);
  expect(out).toMatch(/ 0 misses/);
  expect(out).toMatch(/stop playback exit 0/);
  for (const { tool, address } of HOST_TOOLS) {
    expect(out).toContain(`record ${tool.name} exit 0`);
    expect(out).toContain(`playback ${tool.name} exit 0`);
    expect(out).toContain(`packets to ${address} 0\n`);
  }
  expect(ns.status).toBe(0);
  for (const { tool } of HOST_TOOLS) {
    const recorded = await installed(tool, join(work, 'record', tool.name));
    for (const file of EXPECTED[tool.name]) expect(Object.keys(recorded)).toContain(file);
    expect(await installed(tool, join(work, 'playback', tool.name))).toEqual(recorded);
  }
  expect(await snapshot(copies)).toEqual(before);
}, 150_000);
