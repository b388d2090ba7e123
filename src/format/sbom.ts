/**
 * `btrfly sbom`: the build's real bill of materials. Every package *artifact* a recording
 * downloaded (by the rules of package-rules.ts: a tarball, a wheel, a .deb, a module zip...),
 * with its purl, the SHA-256 of the bytes received and where they came from, as CycloneDX
 * 1.6 JSON (through the CycloneDX library's models and serializer) or SPDX 2.3 JSON
 * (written here: a flat document the library does not model). What the build fetched, not
 * what a lockfile claims.
 *
 * The output is a function of the recording alone: times are the recording's commit time,
 * identifiers are derived from its commit id, lists are sorted. The same recording gives the
 * same bytes on any machine, so an SBOM can itself be diffed and signed.
 */
import { createHash } from 'node:crypto';
import { Enums, Models, Serialize, Spec } from '@cyclonedx/cyclonedx-library';
import { PackageURL } from 'packageurl-js';
import type { Archive } from './archive';
import { loadRecording } from './archive-report';
import { writeFileAtomically } from './atomic-file';
import { stripUserinfo } from './lifecycle';
import { compareStrings } from './manifest';
import { type ArtifactClass, type Ecosystem } from './package-rules';
import { recordingPackages } from './packages';
import type { Entry } from './types';

export type SbomFormat = 'cyclonedx' | 'spdx';
export const SBOM_FORMATS: readonly SbomFormat[] = ['cyclonedx', 'spdx'];

/** One artifact of the bill: a package file the build received, once per distinct purl and bytes. */
export interface SbomArtifact {
  ecosystem: Ecosystem;
  /** The name as package-rules gives it (`@types/node`, `org.slf4j:slf4j-api`). */
  name: string;
  version: string;
  /** The purl's namespace and name: npm scope, Maven group, Go module prefix, GitHub owner. */
  namespace?: string;
  purlName: string;
  purl: string;
  /** SHA-256 (hex) of the bytes as received, the body's address in the archive. */
  sha256: string;
  size: number;
  /** The URL's last path segment. */
  file: string;
  /** Where it was downloaded from, sorted, userinfo dropped; a redacted query value stays as stored (`btrfly-hmac:…` or `btrfly-redacted`). */
  urls: string[];
  /** The response's Content-Encoding when it had one: `sha256` is then of the encoded bytes. */
  encoding?: string;
}

/** What an SBOM is made from: one recording. */
export interface SbomSource {
  tag: string;
  commit: string;
  /** The recording's commit time: the document's creation time. */
  date: Date;
  entries: readonly Entry[];
  /** btrfly's version, named as the tool that made the document. */
  toolVersion: string;
}

/**
 * The artifacts among `entries`, as package-rules and packages.ts read a recording (GET
 * requests answered 2xx, a redirect followed to the bytes it led to), deduplicated by purl and
 * SHA-256 (the same file fetched twice, or from two mirrors, is one artifact with two URLs),
 * sorted by purl then digest. A HEAD, a 404 or a metadata document is not something the build
 * received as a package.
 */
export function sbomArtifacts(entries: readonly Entry[]): SbomArtifact[] {
  const byKey = new Map<string, SbomArtifact>();
  for (const p of recordingPackages({ entries: [...entries] }).artifacts) {
    const urls = p.urls.map(stripUserinfo);
    const purl = toPurl({ kind: 'artifact', ...p }, p.sha256, urls[0]);
    const key = `${purl.toString()} ${p.sha256}`;
    const seen = byKey.get(key);
    if (seen) {
      for (const url of urls) if (!seen.urls.includes(url)) seen.urls.push(url);
      continue;
    }
    byKey.set(key, {
      ecosystem: p.ecosystem,
      name: p.name,
      version: purl.version ?? p.version,
      ...(purl.namespace && { namespace: purl.namespace }),
      purlName: purl.name,
      purl: purl.toString(),
      sha256: p.sha256,
      size: p.size,
      file: p.file,
      urls,
      ...(p.encoding !== undefined && { encoding: p.encoding }),
    });
  }
  const out = [...byKey.values()];
  for (const a of out) a.urls = [...new Set(a.urls)].sort(compareStrings);
  return out.sort((a, b) => compareStrings(a.purl, b.purl) || compareStrings(a.sha256, b.sha256));
}

/**
 * The purl of an artifact (https://github.com/package-url/purl-spec, PURL-TYPES.rst): the
 * name split into namespace and name where the type has one; an OCI object named by its
 * digest with the repository (and a tag) as qualifiers; a PyPI file named, since a wheel and
 * an sdist of one version are different bytes.
 */
export function toPurl(a: ArtifactClass, sha256: string, url: string): PackageURL {
  const q = { ...a.qualifiers };
  let namespace: string | undefined;
  let name = a.name;
  let version = a.version;
  const split = (sep: string): void => {
    const at = a.name.lastIndexOf(sep);
    if (at > 0) [namespace, name] = [a.name.slice(0, at), a.name.slice(at + 1)];
  };
  switch (a.ecosystem) {
    case 'npm':
    case 'golang':
    case 'github':
      split('/');
      break;
    case 'maven':
      split(':');
      break;
    case 'pypi':
      q.file_name = a.file;
      break;
    case 'oci': {
      const u = new URL(url);
      name = a.name.slice(a.name.lastIndexOf('/') + 1);
      q.repository_url = `${u.host}/${a.name}`;
      // A manifest fetched by tag is named by its digest, which is the SHA-256 of its bytes.
      if (!/^sha(256|512):/.test(a.version)) {
        q.tag = a.version;
        version = `sha256:${sha256}`;
      }
      break;
    }
    default:
      break;
  }
  return new PackageURL(a.ecosystem, namespace, name, version, Object.keys(q).length ? q : undefined, undefined);
}

// ---------------------------------------------------------------------------------------
// Identifiers derived from the recording

/** An RFC 9562 name-based UUID (version 5, SHA-1) of `name`, the same for the same name everywhere. */
export function nameUuid(name: string): string {
  const h = createHash('sha1').update(`btrfly-sbom:${name}`).digest();
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

const recordingName = (src: SbomSource): string => `${src.tag}@${src.commit}`;

/** bom-ref of an artifact: its purl, made unique by the digest when two artifacts share one. */
function bomRefs(artifacts: readonly SbomArtifact[]): string[] {
  const count = new Map<string, number>();
  for (const a of artifacts) count.set(a.purl, (count.get(a.purl) ?? 0) + 1);
  return artifacts.map((a) => (count.get(a.purl)! > 1 ? `${a.purl}#sha256:${a.sha256}` : a.purl));
}

// ---------------------------------------------------------------------------------------
// CycloneDX 1.6

/** The recording as a CycloneDX 1.6 JSON document (2-space indent, trailing newline). */
export function renderCycloneDx(src: SbomSource, artifacts: readonly SbomArtifact[] = sbomArtifacts(src.entries)): string {
  const refs = bomRefs(artifacts);
  const components = artifacts.map((a, i) => {
    const hashes = new Models.HashDictionary([[Enums.HashAlgorithm['SHA-256'], a.sha256]]);
    return new Models.Component(Enums.ComponentType.Library, a.purlName, {
      bomRef: refs[i],
      ...(a.namespace && { group: a.namespace }),
      version: a.version,
      purl: a.purl,
      hashes,
      externalReferences: new Models.ExternalReferenceRepository(
        a.urls.map((u) => new Models.ExternalReference(u, Enums.ExternalReferenceType.Distribution, { hashes: new Models.HashDictionary(hashes) })),
      ),
      properties: new Models.PropertyRepository([
        new Models.Property('btrfly:file', a.file),
        new Models.Property('btrfly:size', String(a.size)),
        ...(a.encoding ? [new Models.Property('btrfly:content-encoding', a.encoding)] : []),
      ]),
    });
  });
  const recording = new Models.Component(Enums.ComponentType.Application, src.tag, {
    bomRef: `btrfly:${recordingName(src)}`,
    version: src.commit,
    description: `the downloads of the build recorded as btrfly tag ${recordingName(src)}`,
    dependencies: new Models.BomRefRepository(components.map((c) => c.bomRef)),
  });
  const bom = new Models.Bom({
    serialNumber: `urn:uuid:${nameUuid(`cyclonedx:${recordingName(src)}`)}`,
    metadata: new Models.Metadata({
      timestamp: src.date,
      tools: new Models.Tools({
        components: new Models.ComponentRepository([new Models.Component(Enums.ComponentType.Application, 'btrfly', { version: src.toolVersion })]),
      }),
      component: recording,
    }),
    components: new Models.ComponentRepository(components),
  });
  const serializer = new Serialize.JsonSerializer(new Serialize.JSON.Normalize.Factory(Spec.Spec1dot6));
  return serializer.serialize(bom, { sortLists: true, space: 2 }) + '\n';
}

// ---------------------------------------------------------------------------------------
// SPDX 2.3

/** SPDX identifiers allow letters, digits, `.` and `-` only. */
const spdxIdPart = (s: string): string => s.replace(/[^A-Za-z0-9.-]+/g, '-').replace(/^-+|-+$/g, '');

/** `ids` with a `-2`, `-3`... on a repeat (artifacts that differ only in purl qualifiers). */
function uniqueIds(ids: string[]): string[] {
  const seen = new Map<string, number>();
  return ids.map((id) => {
    const n = (seen.get(id) ?? 0) + 1;
    seen.set(id, n);
    return n > 1 ? `${id}-${n}` : id;
  });
}

/** The recording as an SPDX 2.3 JSON document (2-space indent, trailing newline). */
export function renderSpdx(src: SbomSource, artifacts: readonly SbomArtifact[] = sbomArtifacts(src.entries)): string {
  const rootId = 'SPDXRef-Recording';
  const ids = uniqueIds(artifacts.map((a) => `SPDXRef-Package-${spdxIdPart(a.ecosystem)}-${spdxIdPart(a.name)}-${spdxIdPart(a.version)}-${a.sha256.slice(0, 12)}`));
  const doc = {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `btrfly ${recordingName(src)}`,
    documentNamespace: `urn:uuid:${nameUuid(`spdx:${recordingName(src)}`)}`,
    creationInfo: {
      // SPDX dates are ISO 8601 in UTC to the second (`2023-01-02T03:04:05Z`).
      created: src.date.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      creators: [`Tool: btrfly-${src.toolVersion}`],
    },
    packages: [
      {
        name: src.tag,
        SPDXID: rootId,
        versionInfo: src.commit,
        downloadLocation: 'NOASSERTION',
        filesAnalyzed: false,
        primaryPackagePurpose: 'APPLICATION',
        comment: `the downloads of the build recorded as btrfly tag ${recordingName(src)}`,
      },
      ...artifacts.map((a, i) => ({
        name: a.name,
        SPDXID: ids[i],
        versionInfo: a.version,
        packageFileName: a.file,
        downloadLocation: a.urls[0],
        filesAnalyzed: false,
        checksums: [{ algorithm: 'SHA256', checksumValue: a.sha256 }],
        externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: a.purl }],
        primaryPackagePurpose: 'LIBRARY',
        ...(a.urls.length > 1 && { comment: `also downloaded from ${a.urls.slice(1).join(' ')}` }),
      })),
    ],
    relationships: [
      { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: rootId },
      ...ids.map((id) => ({ spdxElementId: rootId, relationshipType: 'DEPENDS_ON', relatedSpdxElement: id })),
    ],
  };
  return JSON.stringify(doc, null, 2) + '\n';
}

/** The document of `format` for `src`. */
export function renderSbom(src: SbomSource, format: SbomFormat, artifacts: readonly SbomArtifact[] = sbomArtifacts(src.entries)): string {
  return format === 'spdx' ? renderSpdx(src, artifacts) : renderCycloneDx(src, artifacts);
}

/** What `btrfly sbom` made. */
export interface SbomResult {
  /** `tag@1a2b3c4`. */
  label: string;
  format: SbomFormat;
  artifacts: number;
  /** The file written, or `-` for stdout. */
  file: string;
}

/**
 * Writes the SBOM of the recording `spec` (`T` or `T@REV`) to `file`, atomically, or to
 * `stdout` when `file` is `-`.
 * @throws BtrflyError TAG_NOT_FOUND, REV_NOT_FOUND and the like
 */
export async function writeSbom(
  archive: Archive,
  spec: string,
  format: SbomFormat,
  file: string,
  opts: { toolVersion: string; stdout?: NodeJS.WritableStream },
): Promise<SbomResult> {
  const { rec, label, date } = await loadRecording(archive, spec);
  const artifacts = sbomArtifacts(rec.manifest.entries);
  const text = renderSbom({ tag: rec.tag, commit: rec.commit, date, entries: rec.manifest.entries, toolVersion: opts.toolVersion }, format, artifacts);
  if (file === '-') (opts.stdout ?? process.stdout).write(text);
  else await writeFileAtomically(file, [text]);
  return { label, format, artifacts: artifacts.length, file };
}
