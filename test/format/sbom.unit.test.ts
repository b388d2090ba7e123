/**
 * The SBOM mapping: which recorded entries are artifacts, their purls, deduplication, what
 * happens to credentials in URLs, and both documents checked against the official schemas
 * (test/helpers/sbom-schemas.ts). The end-to-end test records real downloads
 * (test/commands/sbom.e2e.test.ts).
 */
import { renderCycloneDx, renderSpdx, sbomArtifacts, type SbomSource } from '../../src/format/sbom';
import type { Entry } from '../../src/format/types';
import { cycloneDxValidator, schemaErrors, spdxValidator } from '../helpers/sbom-schemas';
import { entry, sha } from './format-test-data';

const H = 'https://mirror.example';
const COMMIT = '0123456789abcdef0123456789abcdef01234567';
const DATE = new Date('2026-03-04T05:06:07Z');
const source = (entries: Entry[], over: Partial<SbomSource> = {}): SbomSource => ({ tag: 'build', commit: COMMIT, date: DATE, entries, toolVersion: '1.2.3', ...over });

/** URL → the purl its artifact gets (body `x`, whose digest some purls carry). */
const PURLS: Array<[string, string]> = [
  [`${H}/axios/-/axios-1.7.9.tgz`, 'pkg:npm/axios@1.7.9'],
  [`${H}/@types/node/-/node-20.11.30.tgz`, 'pkg:npm/%40types/node@20.11.30'],
  [`${H}/packages/xx/btrfly_demo_util-1.0.0-py3-none-any.whl`, 'pkg:pypi/btrfly-demo-util@1.0.0?file_name=btrfly_demo_util-1.0.0-py3-none-any.whl'],
  [`${H}/packages/source/p/pyyaml/pyyaml-6.0.1.tar.gz`, 'pkg:pypi/pyyaml@6.0.1?file_name=pyyaml-6.0.1.tar.gz'],
  [`${H}/debian/pool/main/c/curl/curl_7.88.1-10+deb12u5_amd64.deb`, 'pkg:deb/curl@7.88.1-10+deb12u5?arch=amd64'],
  [`${H}/example.test/greet/@v/v1.1.0.zip`, 'pkg:golang/example.test/greet@v1.1.0'],
  [`${H}/maven2/org/slf4j/slf4j-api/2.0.9/slf4j-api-2.0.9.jar`, 'pkg:maven/org.slf4j/slf4j-api@2.0.9'],
  [`${H}/maven2/org/slf4j/slf4j-api/2.0.9/slf4j-api-2.0.9.pom`, 'pkg:maven/org.slf4j/slf4j-api@2.0.9?type=pom'],
  [`${H}/api/v1/crates/serde/1.0.197/download`, 'pkg:cargo/serde@1.0.197'],
  [`${H}/gems/nokogiri-1.16.2-x86_64-linux.gem`, 'pkg:gem/nokogiri@1.16.2?platform=x86_64-linux'],
  [`${H}/v3-flatcontainer/newtonsoft.json/13.0.3/newtonsoft.json.13.0.3.nupkg`, 'pkg:nuget/newtonsoft.json@13.0.3'],
  [`${H}/cli/cli/releases/download/v2.45.0/gh_2.45.0_linux_amd64.tar.gz`, 'pkg:github/cli/cli@v2.45.0'],
  [`${H}/v2/library/alpine/manifests/3.19`, `pkg:oci/alpine@sha256:${sha('x')}?repository_url=mirror.example%2Flibrary%2Falpine&tag=3.19`],
  [`${H}/v2/library/alpine/blobs/sha256:${'a'.repeat(64)}`, `pkg:oci/alpine@sha256:${'a'.repeat(64)}?repository_url=mirror.example%2Flibrary%2Falpine`],
];

describe('sbomArtifacts', () => {
  it.each(PURLS)('%s is the artifact %s', (...[url, purl]) => {
    const [a] = sbomArtifacts([entry(url, 'x')]);
    expect(a).toMatchObject({ purl, sha256: sha('x'), size: 1, urls: [url] });
  });

  it('leaves out what the build did not receive as a package: non-2xx answers, HEAD, metadata and other URLs', () => {
    const tgz = `${H}/axios/-/axios-1.7.9.tgz`;
    const entries = [
      entry(tgz, 'not found', { status: 404 }),
      entry(`${H}/lodash/-/lodash-4.17.21.tgz`, '', { status: 304 }),
      entry(`${H}/left-pad/-/left-pad-1.3.0.tgz`, '', { status: 302 }),
      entry(`${H}/chalk/-/chalk-5.3.0.tgz`, '', { method: 'HEAD' }),
      entry(`${H}/axios`, '{}', { reqHeaders: [{ name: 'Accept', value: 'application/vnd.npm.install-v1+json' }] }),
      entry(`${H}/simple/requests/`, '<html>'),
      entry(`${H}/index.html`, '<html>'),
    ];
    expect(sbomArtifacts(entries)).toEqual([]);
    expect(sbomArtifacts([...entries, entry(tgz, 'tarball', { ordinal: 1 })]).map((a) => a.purl)).toEqual(['pkg:npm/axios@1.7.9']);
  });

  it('follows a redirect to the bytes: a release asset served from another host is the artifact, with the URL the build asked for', () => {
    const asset = `${H}/cli/cli/releases/download/v2.45.0/gh_2.45.0_linux_amd64.tar.gz`;
    const target = 'https://objects.example/signed/abc?X-Sig=btrfly-hmac:1234';
    const [a, ...rest] = sbomArtifacts([entry(asset, '', { status: 302, headers: [{ name: 'Location', value: target }] }), entry(target, 'release bytes')]);
    expect(rest).toEqual([]);
    expect(a).toMatchObject({ purl: 'pkg:github/cli/cli@v2.45.0', sha256: sha('release bytes'), urls: [asset] });
  });

  it('is one artifact per purl and digest: the same file twice or from two mirrors is one, with each URL once, sorted', () => {
    const a = sbomArtifacts([
      entry('https://m2.example/axios/-/axios-1.7.9.tgz', 'tarball'),
      entry('https://m1.example/axios/-/axios-1.7.9.tgz', 'tarball'),
      entry('https://m1.example/axios/-/axios-1.7.9.tgz', 'tarball', { ordinal: 1 }),
    ]);
    expect(a).toHaveLength(1);
    expect(a[0].urls).toEqual(['https://m1.example/axios/-/axios-1.7.9.tgz', 'https://m2.example/axios/-/axios-1.7.9.tgz']);
  });

  it('keeps two artifacts of one purl whose bytes differ (one version, other bytes on two mirrors), sorted by purl then digest', () => {
    const a = sbomArtifacts([entry('https://m1.example/axios/-/axios-1.7.9.tgz', 'one'), entry('https://m2.example/axios/-/axios-1.7.9.tgz', 'two'), entry(`${H}/example.test/greet/@v/v1.0.0.zip`, 'zip')]);
    const [first, second] = [sha('one'), sha('two')].sort();
    expect(a.map((x) => [x.purl, x.sha256])).toEqual([
      ['pkg:golang/example.test/greet@v1.0.0', sha('zip')],
      ['pkg:npm/axios@1.7.9', first],
      ['pkg:npm/axios@1.7.9', second],
    ]);
  });

  it('drops a user:password@ from the download URL and keeps a redacted query value as its hash', () => {
    const hmac = `btrfly-hmac:${'b'.repeat(64)}`;
    const [a] = sbomArtifacts([entry(`https://user:s3cret@mirror.example/packages/x/btrfly_demo_util-1.0.0-py3-none-any.whl?token=${hmac}`, 'w')]);
    expect(a.urls).toEqual([`https://mirror.example/packages/x/btrfly_demo_util-1.0.0-py3-none-any.whl?token=${hmac}`]);
  });
});

describe('CycloneDX 1.6', () => {
  const entries = [...PURLS.map(([url], i) => entry(url, `body ${i}`)), entry('https://m2.example/example.test/greet/@v/v1.1.0.zip', 'other bytes'), entry(`${H}/simple/x/`, 'meta')];
  const text = renderCycloneDx(source(entries));
  const bom = JSON.parse(text) as {
    serialNumber: string;
    metadata: { timestamp: string; tools: { components: Array<{ name: string; version: string }> }; component: { name: string; version: string; 'bom-ref': string } };
    components: Array<{ 'bom-ref': string; purl: string; hashes: Array<{ alg: string; content: string }>; externalReferences: Array<{ type: string; url: string }> }>;
    dependencies: Array<{ ref: string; dependsOn?: string[] }>;
  };

  it('is valid against the official schema', () => {
    expect(schemaErrors(cycloneDxValidator(), bom)).toEqual([]);
  });

  it('holds each artifact with its purl, SHA-256 and download URL, and bom-refs unique', () => {
    expect(bom.components).toHaveLength(PURLS.length + 1);
    const wheel = bom.components.find((c) => c.purl.startsWith('pkg:pypi/btrfly-demo-util@1.0.0'))!;
    expect(wheel.hashes).toEqual([{ alg: 'SHA-256', content: sha('body 2') }]);
    expect(wheel.externalReferences).toEqual([expect.objectContaining({ type: 'distribution', url: PURLS[2][0] })]);
    const refs = bom.components.map((c) => c['bom-ref']);
    expect(new Set(refs).size).toBe(refs.length);
    expect(refs).toContain('pkg:npm/axios@1.7.9');
  });

  it('names btrfly as the tool and the recording (tag, commit, time) as the subject, which depends on every artifact', () => {
    expect(bom.metadata.tools.components).toEqual([expect.objectContaining({ name: 'btrfly', version: '1.2.3' })]);
    expect(bom.metadata.component).toMatchObject({ name: 'build', version: COMMIT });
    expect(new Date(bom.metadata.timestamp)).toEqual(DATE);
    const root = bom.dependencies.find((d) => d.ref === bom.metadata.component['bom-ref'])!;
    expect(root.dependsOn?.sort()).toEqual(bom.components.map((c) => c['bom-ref']).sort());
  });

  it('is reproducible: the same recording gives the same bytes, another commit another serial number', () => {
    expect(renderCycloneDx(source([...entries].reverse()))).toBe(text);
    expect(bom.serialNumber).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(JSON.parse(renderCycloneDx(source(entries, { commit: 'f'.repeat(40) }))).serialNumber).not.toBe(bom.serialNumber);
  });

  it('is valid for a recording without any artifact', () => {
    expect(schemaErrors(cycloneDxValidator(), JSON.parse(renderCycloneDx(source([entry(`${H}/index.html`, 'x')]))))).toEqual([]);
  });
});

describe('SPDX 2.3', () => {
  const entries = PURLS.map(([url], i) => entry(url, `body ${i}`));
  const text = renderSpdx(source(entries));
  const doc = JSON.parse(text) as {
    documentNamespace: string;
    creationInfo: { created: string; creators: string[] };
    packages: Array<{ SPDXID: string; name: string; versionInfo: string; downloadLocation: string; checksums?: unknown; externalRefs?: unknown }>;
    relationships: Array<{ spdxElementId: string; relationshipType: string; relatedSpdxElement: string }>;
  };

  it('is valid against the official schema', () => {
    expect(schemaErrors(spdxValidator(), doc)).toEqual([]);
  });

  it('holds each artifact as a package with its purl, SHA-256 and download location', () => {
    const deb = doc.packages.find((p) => p.name === 'curl')!;
    expect(deb).toMatchObject({
      versionInfo: '7.88.1-10+deb12u5',
      downloadLocation: PURLS[4][0],
      checksums: [{ algorithm: 'SHA256', checksumValue: sha('body 4') }],
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: 'pkg:deb/curl@7.88.1-10+deb12u5?arch=amd64' }],
    });
    const ids = doc.packages.map((p) => p.SPDXID);
    expect(new Set(ids).size).toBe(PURLS.length + 1);
    for (const id of ids) expect(id).toMatch(/^SPDXRef-[A-Za-z0-9.-]+$/);
  });

  it('describes the recording, which depends on every artifact', () => {
    const root = doc.packages[0];
    expect(root).toMatchObject({ name: 'build', versionInfo: COMMIT });
    expect(doc.relationships.filter((r) => r.relationshipType === 'DESCRIBES')).toEqual([
      { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: root.SPDXID },
    ]);
    expect(doc.relationships.filter((r) => r.relationshipType === 'DEPENDS_ON').map((r) => r.relatedSpdxElement).sort()).toEqual(
      doc.packages.slice(1).map((p) => p.SPDXID).sort(),
    );
  });

  it('is reproducible: created is the recording\'s time, the namespace comes from the commit', () => {
    expect(doc.creationInfo).toEqual({ created: '2026-03-04T05:06:07Z', creators: ['Tool: btrfly-1.2.3'] });
    expect(renderSpdx(source([...entries].reverse()))).toBe(text);
    expect(JSON.parse(renderSpdx(source(entries, { commit: 'f'.repeat(40) }))).documentNamespace).not.toBe(doc.documentNamespace);
  });
});

describe('the schemas', () => {
  it('reject what the formats forbid, so a pass above means something', () => {
    expect(schemaErrors(spdxValidator(), { SPDXID: 'SPDXRef-DOCUMENT', name: 'x', dataLicense: 'CC0-1.0', creationInfo: { created: 'x', creators: [] } })).not.toEqual([]);
    expect(schemaErrors(cycloneDxValidator(), { bomFormat: 'CycloneDX', specVersion: '1.6', components: [{ type: 'library', version: '1' }] })).not.toEqual([]);
    expect(schemaErrors(cycloneDxValidator(), { bomFormat: 'CycloneDX', specVersion: '1.6', metadata: { timestamp: 'yesterday' } })).not.toEqual([]);
  });
});
