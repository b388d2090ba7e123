/**
 * `btrfly sbom` of a real recorded build (issue 15.3). Under `btrfly run --record`, real npm
 * installs a dependency chain from the npm fixture registry, real pip installs and
 * downloads wheels from the Python fixture index (both over HTTPS on loopback, see
 * test/fixtures/package-index.js), and curl fetches two .deb files from an apt pool on a
 * loopback origin, one with a password in the URL's userinfo, one with basic auth and a
 * token in a redacted query, plus a .deb path the origin answers 404. Then `btrfly sbom`, in
 * CycloneDX (stdout) and SPDX (`-o FILE`), is validated against the official schemas and must
 * list exactly the packages downloaded, each with its purl and the SHA-256 of the bytes the
 * origin serves, and none of the planted credentials.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  buildToolEnv,
  makeBuildOriginContent,
  npmTool,
  pipTool,
  run,
  runCli,
  startOrigin,
  testCa,
  tmpDir,
  type BuildOriginContent,
  type Origin,
} from '../helpers';
import { cycloneDxValidator, schemaErrors, spdxValidator } from '../helpers/sbom-schemas';
import { describeWhen } from '../helpers/when';

const PASSWORD = 'SBOM-userinfo-7c1e';
const BASIC = 'SBOM-basic-4f20';
const TOKEN = 'SBOM-token-b83d';
const NEEDLES = [PASSWORD, BASIC, TOKEN, Buffer.from(`user:${PASSWORD}`).toString('base64'), Buffer.from(`user:${BASIC}`).toString('base64')];

const missing = [npmTool.missing(), pipTool.missing()].filter((m): m is string => Boolean(m));
const describeTools = describeWhen(missing);

interface CdxBom {
  metadata: { component: { name: string; version: string }; tools: { components: Array<{ name: string }> } };
  components: Array<{ purl: string; hashes: Array<{ alg: string; content: string }>; externalReferences: Array<{ type: string; url: string }> }>;
}
interface SpdxDoc {
  packages: Array<{ SPDXID: string; downloadLocation: string; checksums?: Array<{ algorithm: string; checksumValue: string }>; externalRefs?: Array<{ referenceLocator: string }> }>;
  relationships: Array<{ relationshipType: string }>;
}

describeTools('btrfly sbom of a recorded npm, pip and apt-pool build', () => {
  let npm: Origin;
  let pypi: Origin;
  let files: Origin;
  let content: BuildOriginContent;
  let archive: string;
  let commit: string;
  let cdxText: string;
  let spdxText: string;
  const pool = '/files/deb/debian/pool/main';

  beforeAll(async () => {
    content = makeBuildOriginContent();
    npm = await startOrigin({ https: true, kind: 'npm', names: ['registry.test'] });
    pypi = await startOrigin({ https: true, kind: 'pypi', names: ['pypi.test'] });
    files = await startOrigin({ dir: content.root });
    archive = join(tmpDir(), 'archive');
    const dir = tmpDir();
    npmTool.writeProject(join(dir, 'npm'));
    pipTool.writeProject(join(dir, 'pip'));
    const deb = (name: string) => `http://deb.test:${files.port}${pool}/b/${name}/${name}_${name === 'btrfly-hello' ? '1.0' : '2.0'}_all.deb`;
    const script = [
      npmTool.command(join(dir, 'npm'), npm.urlFor('', 'registry.test').replace(/\/$/, '')),
      pipTool.command(join(dir, 'pip'), pypi.urlFor('', 'pypi.test').replace(/\/$/, '')),
      `curl -sSf -o ${dir}/hello.deb ${deb('btrfly-hello').replace('http://', `http://user:${PASSWORD}@`)}`,
      `curl -sSf -o ${dir}/tools.deb -u user:${BASIC} '${deb('btrfly-tools')}?token=${TOKEN}'`,
      `test "$(curl -s -o /dev/null -w '%{http_code}' http://deb.test:${files.port}${pool}/n/nope/nope_1.0_all.deb)" = 404`,
    ].join(' && ');
    const resolve = ['registry.test', 'pypi.test', 'deb.test'].flatMap((name) => ['--resolve', `${name}:127.0.0.1`]);
    const rec = await runCli(
      ['run', '--record', '--tag=deps', '--archive', archive, ...resolve, '--upstream-ca', testCa().caPath, '--redact-query=token', '--', 'bash', '-c', script],
      { env: buildToolEnv(), timeoutMs: 240_000 },
    );
    expect(rec.stderr).toMatch(/recorded tag "deps"/);
    expect(rec.code).toBe(0);
    commit = (await run('git', ['--git-dir', archive, 'rev-parse', 'refs/heads/deps'])).stdout.trim();

    const cdx = await runCli(['sbom', 'deps', '--archive', archive]);
    expect(cdx.stderr).toBe('');
    expect(cdx.code).toBe(0);
    cdxText = cdx.stdout;
    const out = join(tmpDir(), 'deps.spdx.json');
    const spdx = await runCli(['sbom', `deps@${commit.slice(0, 8)}`, '--format', 'spdx', '-o', out, '--archive', archive]);
    expect(spdx.code).toBe(0);
    expect(spdx.stdout).toBe(`wrote the SPDX 2.3 SBOM of deps@${commit.slice(0, 7)} (7 artifacts) to ${out}\n`);
    spdxText = readFileSync(out, 'utf8');
  }, 300_000);

  /** The SHA-256 of what the origin serves at `url` (a name of the SBOM, resolved to loopback), fetched by curl. */
  async function servedSha256(url: string): Promise<string> {
    const u = new URL(url);
    const r = await run('sh', ['-c', `curl -sSf --cacert "$1" --resolve "$2" "$3" | sha256sum`, 'sh', testCa().caPath, `${u.hostname}:${u.port}:127.0.0.1`, url]);
    expect(r.code).toBe(0);
    return r.stdout.split(' ')[0];
  }

  const EXPECTED_PURLS = [
    'pkg:deb/btrfly-hello@1.0?arch=all',
    'pkg:deb/btrfly-tools@2.0?arch=all',
    'pkg:npm/btrfly-demo-leaf@1.0.0',
    'pkg:npm/btrfly-demo-mid@1.0.0',
    'pkg:npm/btrfly-demo-top@1.0.0',
    'pkg:pypi/btrfly-demo-app@1.0.0?file_name=btrfly_demo_app-1.0.0-py3-none-any.whl',
    'pkg:pypi/btrfly-demo-util@1.0.0?file_name=btrfly_demo_util-1.0.0-py3-none-any.whl',
  ];

  test('CycloneDX (the default, on stdout) is valid against the official 1.6 schema and lists exactly the packages downloaded, each once', () => {
    const bom = JSON.parse(cdxText) as CdxBom;
    expect(schemaErrors(cycloneDxValidator(), bom)).toEqual([]);
    expect(bom.components.map((c) => c.purl)).toEqual(EXPECTED_PURLS);
    expect(bom.metadata.component).toMatchObject({ name: 'deps', version: commit });
    expect(bom.metadata.tools.components.map((t) => t.name)).toEqual(['btrfly']);
  });

  test('each component\'s SHA-256 is that of the bytes the origin serves at its download URL', async () => {
    const bom = JSON.parse(cdxText) as CdxBom;
    for (const c of bom.components) {
      const [dist] = c.externalReferences.filter((r) => r.type === 'distribution');
      expect(c.hashes).toEqual([{ alg: 'SHA-256', content: await servedSha256(dist.url) }]);
    }
    const debs = bom.components.filter((c) => c.purl.startsWith('pkg:deb/'));
    expect(debs.map((c) => c.hashes[0].content)).toEqual([content.debs['btrfly-hello_1.0_all.deb'], content.debs['btrfly-tools_2.0_all.deb']]);
  });

  test('SPDX (-o FILE) is valid against the official 2.3 schema, with purls, SHA-256 checksums and download locations', async () => {
    const doc = JSON.parse(spdxText) as SpdxDoc;
    expect(schemaErrors(spdxValidator(), doc)).toEqual([]);
    const artifacts = doc.packages.slice(1);
    expect(artifacts.map((p) => p.externalRefs?.[0].referenceLocator).sort()).toEqual(EXPECTED_PURLS);
    for (const p of artifacts) expect(p.checksums).toEqual([{ algorithm: 'SHA256', checksumValue: await servedSha256(p.downloadLocation) }]);
    expect(doc.relationships.filter((r) => r.relationshipType === 'DESCRIBES')).toHaveLength(1);
  });

  test('no planted credential is in either document; the redacted token stays a hash and userinfo is dropped', () => {
    for (const text of [cdxText, spdxText]) {
      for (const needle of NEEDLES) expect(text).not.toContain(needle);
      expect(text).not.toMatch(/\/\/[^/"]*@deb\.test/);
      expect(text).toMatch(new RegExp(`http://deb\\.test:${files.port}${pool}/b/btrfly-tools/btrfly-tools_2\\.0_all\\.deb\\?token=btrfly-hmac:[0-9a-f]{64}"`));
      expect(text).toContain(`"http://deb.test:${files.port}${pool}/b/btrfly-hello/btrfly-hello_1.0_all.deb"`);
    }
  });

  test('the same recording gives the same bytes again, by tag or by commit', async () => {
    const again = await runCli(['sbom', `deps@${commit}`, '--format', 'cyclonedx', '--archive', archive]);
    expect(again.stdout).toBe(cdxText);
    const spdx = await runCli(['sbom', 'deps', '--format', 'spdx', '--archive', archive]);
    expect(spdx.stdout).toBe(spdxText);
  });

  test('a tag that does not exist is one line and exit 1, and no file is written', async () => {
    const out = join(tmpDir(), 'none.json');
    const r = await runCli(['sbom', 'nope', '-o', out, '--archive', archive]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`btrfly: tag "nope" not found in archive ${archive}: run "btrfly tags" to list tags\n`);
    expect(() => readFileSync(out)).toThrow(/ENOENT/);
  });
});
