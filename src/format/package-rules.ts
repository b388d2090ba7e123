/**
 * Packages from URLs: one table of rules that says, for a recorded request, whether it
 * fetched a package *artifact* (ecosystem, name, version), a *metadata* document (an index
 * that names versions and changes whenever anything upstream is published), or something
 * *other*. Rules look at the URL's path only (plus, for npm packuments, the request's
 * `Accept`), never at its host, so mirrors and private registries that keep the public
 * layouts are recognised too. The ecosystems are named by their purl types
 * (https://github.com/package-url/purl-spec/blob/master/PURL-TYPES.rst).
 */

import type { Entry } from './types';

/** A purl type: the ecosystem a package belongs to. */
export type Ecosystem = 'npm' | 'pypi' | 'deb' | 'golang' | 'cargo' | 'maven' | 'gem' | 'nuget' | 'github' | 'oci';

/** A package file: what a build installs or unpacks. */
export interface ArtifactClass {
  kind: 'artifact';
  ecosystem: Ecosystem;
  /** The name as people write it: `@types/node`, `requests`, `example.test/greet`, `org.slf4j:slf4j-api`. */
  name: string;
  /** The version as the ecosystem writes it: `1.7.9`, `1:2.36-9`, `v1.1.0`, an OCI tag or digest. */
  version: string;
  /** Extra purl qualifiers: `arch` of a .deb, `classifier`/`type` of a Maven file, `platform` of a gem. */
  qualifiers?: Record<string, string>;
  /** The URL's last path segment, decoded: which file of the package this is. */
  file: string;
}

/** An index naming versions: a packument, a simple page, `Packages`, `@v/list`, `maven-metadata.xml`... */
export interface MetadataClass {
  kind: 'metadata';
  ecosystem: Ecosystem;
  /** The package the document is about, when it is about one. */
  name?: string;
}

export interface OtherClass {
  kind: 'other';
}

export type UrlClass = ArtifactClass | MetadataClass | OtherClass;

/** What a rule may look at besides the URL. */
export interface RequestHints {
  /** The recorded request's `Accept` header. */
  accept?: string;
  /** The response's MIME type. */
  mimeType?: string;
}

type Result = Omit<ArtifactClass, 'ecosystem' | 'kind' | 'file'> | Omit<MetadataClass, 'ecosystem' | 'kind'> | undefined;

interface Rule {
  ecosystem: Ecosystem;
  kind: 'artifact' | 'metadata';
  /** What the rule recognises, for the docs and the tests. */
  shape: string;
  /** Tried against the decoded path (no query); its groups feed `take`. */
  path: RegExp;
  /** Name and version from the match; undefined rejects the match. */
  take?: (m: RegExpExecArray, hints: RequestHints) => Result;
}

/** PEP 503 normalisation: `Foo_Bar.baz` → `foo-bar-baz`. */
export const pep503 = (name: string): string => name.toLowerCase().replace(/[-_.]+/g, '-');

/** Go module proxy case-encoding: `!b` stands for `B` (https://go.dev/ref/mod#goproxy-protocol). */
const goDecode = (s: string): string => s.replace(/!([a-z])/g, (_m, c: string) => c.toUpperCase());

/** A module path starts at its first element with a dot (`example.test/greet`), whatever prefix a proxy puts before it. */
function goModule(path: string): string {
  const parts = path.split('/').filter(Boolean);
  const first = parts.findIndex((p) => p.includes('.'));
  return goDecode(parts.slice(first < 0 ? 0 : first).join('/'));
}

/** Path segments a Maven repository manager puts before the group (`/maven2/`, `/repository/<name>/`...). */
const MAVEN_PREFIX = /^(?:.*?\/(?:maven2|m2|maven)(?=\/)|.*?\/(?:repository|repositories|groups|artifactory|releases|snapshots)\/[^/]+(?=\/))?/;

function mavenGroup(path: string): string {
  return path.replace(MAVEN_PREFIX, '').split('/').filter(Boolean).join('.');
}

const npmAccept = (h: RequestHints): boolean => /application\/vnd\.npm\.install-v1\+json/.test(h.accept ?? '');

/** The table. First match wins; order matters only where shapes overlap (noted). */
export const PACKAGE_RULES: readonly Rule[] = [
  // ---- npm
  {
    ecosystem: 'npm',
    kind: 'artifact',
    shape: '/<name>/-/<name>-<version>.tgz, /@<scope>/<name>/-/<name>-<version>.tgz',
    path: /\/((?:@[^/]+\/)?([^/@][^/]*))\/-\/\2-(\d[^/]*)\.tgz$/,
    take: (m) => ({ name: m[1], version: m[3] }),
  },
  {
    ecosystem: 'npm',
    kind: 'metadata',
    shape: 'the audit endpoints /-/npm/v1/security/advisories/bulk and /audits/quick (their answer changes with every advisory)',
    path: /\/-\/npm\/v1\/security\/(?:advisories\/bulk|audits(?:\/quick)?)$/,
  },
  {
    ecosystem: 'npm',
    kind: 'metadata',
    shape: 'a packument /<name> or /@<scope>/<name>, asked for with Accept: application/vnd.npm.install-v1+json',
    path: /^(?:\/.*?)??\/((?:@[^/]+\/)?[^/@][^/]*)$/,
    take: (m, h) => (npmAccept(h) ? { name: m[1] } : undefined),
  },
  // ---- PyPI
  {
    ecosystem: 'pypi',
    kind: 'metadata',
    shape: '<wheel or sdist>.metadata (PEP 658: the core metadata pip reads before it downloads)',
    path: /\/([^/-]+)-[^/]+\.(?:whl|tar\.gz|zip)\.metadata$/,
    take: (m) => ({ name: pep503(m[1]) }),
  },
  {
    ecosystem: 'pypi',
    kind: 'artifact',
    shape: '<name>-<version>(-<build>)?-<python>-<abi>-<platform>.whl (PEP 427)',
    path: /\/([^/-]+)-([^/-]+)(?:-\d[^/-]*)?-[^/-]+-[^/-]+-[^/-]+\.whl$/,
    take: (m) => ({ name: pep503(m[1]), version: m[2] }),
  },
  {
    ecosystem: 'pypi',
    kind: 'artifact',
    shape: '/packages/.../<name>-<version>.tar.gz|.zip (an sdist)',
    path: /\/packages\/(?:[^/]+\/)*([^/]+)-(\d[^/-]*)\.(?:tar\.gz|zip|tar\.bz2)$/,
    take: (m) => ({ name: pep503(m[1]), version: m[2] }),
  },
  {
    ecosystem: 'pypi',
    kind: 'metadata',
    shape: '/simple/ and /simple/<project>/ (PEP 503, PEP 691); /pypi/<project>/json',
    path: /\/(?:simple\/(?:([^/]+)\/?)?|pypi\/([^/]+)(?:\/[^/]+)?\/json)$/,
    take: (m) => ({ name: m[1] || m[2] ? pep503(m[1] || m[2]) : undefined }),
  },
  // ---- Debian, Ubuntu
  {
    ecosystem: 'deb',
    kind: 'artifact',
    shape: '/pool/<component>/<p>/<source>/<name>_<version>_<arch>.deb (.udeb, .ddeb)',
    path: /\/([a-z0-9][a-z0-9+.-]*)_([^/_]+)_([a-z0-9-]+)\.[ud]?deb$/,
    take: (m) => ({ name: m[1], version: m[2], qualifiers: { arch: m[3] } }),
  },
  {
    ecosystem: 'deb',
    kind: 'metadata',
    shape: '/dists/<suite>/...: InRelease, Release, Packages, Sources, Contents, Translation, by-hash',
    path: /\/dists\/[^/]+\/.+$/,
  },
  // ---- Go module proxy
  {
    ecosystem: 'golang',
    kind: 'artifact',
    // Only the zip: go reads the go.mod of every version in the module graph (and of newer ones,
    // for retractions), most of which it never builds, so a .mod is metadata.
    shape: '/<module>/@v/<version>.zip',
    path: /^(.*)\/@v\/([^/]+)\.zip$/,
    take: (m) => ({ name: goModule(m[1]), version: goDecode(m[2]) }),
  },
  {
    ecosystem: 'golang',
    kind: 'metadata',
    shape: '/<module>/@v/list, /<module>/@v/<version>.info and .mod, /<module>/@latest, /sumdb/..., a checksum database\'s /lookup/<module>@<version> and /tile/...',
    path: /^(?:(.*)\/@(?:v\/list|v\/[^/]+\.(?:info|mod)|latest)|(?:.*)\/sumdb\/.+|\/lookup\/(.+)@v[^/]+|\/tile\/\d+\/(?:data\/)?[\d/x.p]+)$/,
    take: (m) => ({ name: m[1] || m[2] ? goModule(m[1] ?? m[2]) : undefined }),
  },
  // ---- crates
  {
    ecosystem: 'cargo',
    kind: 'artifact',
    shape: '/api/v1/crates/<name>/<version>/download, /crates/<name>/<name>-<version>.crate',
    path: /\/(?:crates\/([^/]+)\/([^/]+)\/download|crates\/([^/]+)\/\3-(\d[^/]*)\.crate)$/,
    take: (m) => ({ name: m[1] ?? m[3], version: m[2] ?? m[4] }),
  },
  {
    ecosystem: 'cargo',
    kind: 'metadata',
    shape: 'sparse index: /1/<n>, /2/<nn>, /3/<c>/<nnn>, /<ab>/<cd>/<abcd...>, /config.json',
    path: /\/(?:(?:1|2)\/([^/]+)|3\/([^/])\/(\2[^/]{2})|([^/]{2})\/([^/]{2})\/(\4\5[^/]*))$/,
    take: (m) => {
      const name = m[1] ?? m[3] ?? m[6];
      if (m[1] && m[1].length > 2) return undefined;
      return /^[a-z0-9_-]+$/.test(name) ? { name } : undefined;
    },
  },
  // ---- GitHub releases
  {
    ecosystem: 'github',
    kind: 'artifact',
    shape: '/<owner>/<repo>/releases/download/<tag>/<asset>; /<owner>/<repo>/archive/refs/tags/<tag>.tar.gz|.zip; the archive host\'s /<owner>/<repo>/tar.gz|zip/refs/tags/<tag>',
    path: /^\/([^/]+)\/([^/]+)\/(?:releases\/download\/([^/]+)\/[^/]+|archive\/refs\/tags\/(.+?)\.(?:tar\.gz|zip)|(?:tar\.gz|zip|legacy\.tar\.gz|legacy\.zip)\/refs\/tags\/(.+))$/,
    take: (m) => ({ name: `${m[1]}/${m[2]}`, version: m[3] ?? m[4] ?? m[5] }),
  },
  {
    ecosystem: 'github',
    kind: 'metadata',
    shape: 'API /repos/<owner>/<repo>/releases, /releases/latest, /releases/tags/<tag>',
    path: /\/repos\/([^/]+)\/([^/]+)\/releases(?:\/latest|\/tags\/[^/]+)?$/,
    take: (m) => ({ name: `${m[1]}/${m[2]}` }),
  },
  // ---- Maven (checksums and signatures of an artifact are metadata beside it)
  {
    ecosystem: 'maven',
    kind: 'metadata',
    shape: '/<group>/<artifact>/maven-metadata.xml (and its .sha1/.md5); <artifact file>.sha1|.md5|.asc|.sha256|.sha512',
    path: /^(.*)\/([^/]+)\/(?:[^/]+\/)?(?:maven-metadata(?:-[^/]+)?\.xml(?:\.\w+)?|\2-[^/]+\.(?:sha1|md5|asc|sha256|sha512))$/,
    take: (m) => ({ name: `${mavenGroup(m[1])}:${m[2]}` }),
  },
  {
    ecosystem: 'maven',
    kind: 'artifact',
    shape: '/<group path>/<artifact>/<version>/<artifact>-<version>(-<classifier>)?.<ext>',
    path: /^(.*)\/([^/]+)\/([^/]+)\/\2-\3(?:-([^/.]+))?\.((?:tar\.)?[a-z0-9]+)$/,
    take: (m) => {
      const group = mavenGroup(m[1]);
      if (!group) return undefined;
      const qualifiers: Record<string, string> = {};
      if (m[4]) qualifiers.classifier = m[4];
      if (m[5] !== 'jar') qualifiers.type = m[5];
      return { name: `${group}:${m[2]}`, version: m[3], qualifiers };
    },
  },
  // ---- RubyGems
  {
    ecosystem: 'gem',
    kind: 'artifact',
    shape: '/gems/<name>-<version>(-<platform>)?.gem',
    path: /\/gems\/([^/]+?)-(\d[^/-]*)(?:-([^/]+))?\.gem$/,
    take: (m) => ({ name: m[1], version: m[2], qualifiers: m[3] ? { platform: m[3] } : undefined }),
  },
  {
    ecosystem: 'gem',
    kind: 'metadata',
    shape: '/specs.4.8.gz and friends, /quick/Marshal.4.8/<gem>.gemspec.rz, /api/v1/dependencies, compact index /info/<name> (text/plain)',
    path: /\/(?:(?:latest_|prerelease_)?specs\.4\.8(?:\.gz)?|quick\/Marshal\.4\.8\/([^/]+?)-\d[^/]*\.gemspec\.rz|api\/v1\/dependencies(?:\.json)?|info\/([^/]+))$/,
    take: (m, h) => (m[2] && !/^text\/plain/.test(h.mimeType ?? '') ? undefined : { name: m[1] ?? m[2] }),
  },
  // ---- NuGet
  {
    ecosystem: 'nuget',
    kind: 'artifact',
    shape: 'v3 flat container /<id>/<version>/<id>.<version>.nupkg; v2 /api/v2/package/<id>/<version>',
    path: /\/(?:([^/]+)\/([^/]+)\/\1\.\2\.nupkg|api\/v2\/package\/([^/]+)\/([^/]+))$/i,
    take: (m) => ({ name: m[1] ?? m[3], version: m[2] ?? m[4] }),
  },
  {
    ecosystem: 'nuget',
    kind: 'metadata',
    shape: '/v3/index.json; /v3-flatcontainer/<id>/index.json and .nuspec; /registration*/<id>/index.json and pages',
    path: /\/(?:v3\/index\.json|[^/]*flatcontainer\/([^/]+)\/(?:index\.json|[^/]+\/[^/]+\.nuspec)|registration[^/]*\/([^/]+)\/(?:index|page\/[^/]+\/[^/]+|[^/]+)\.json)$/i,
    take: (m) => ({ name: m[1] ?? m[2] }),
  },
  // ---- OCI distribution (https://github.com/opencontainers/distribution-spec)
  {
    ecosystem: 'oci',
    kind: 'artifact',
    shape: '/v2/<name>/manifests/<tag or digest>, /v2/<name>/blobs/<digest>',
    path: /\/v2\/(.+)\/(?:manifests\/([^/]+)|blobs\/(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}))$/,
    take: (m) => ({ name: m[1], version: m[2] ?? m[3] }),
  },
  {
    ecosystem: 'oci',
    kind: 'metadata',
    shape: '/v2/<name>/tags/list, /v2/<name>/referrers/<digest>',
    path: /\/v2\/(.+)\/(?:tags\/list|referrers\/[^/]+)$/,
    take: (m) => ({ name: m[1] }),
  },
];

/** Percent-decoding that leaves a malformed escape as it was. */
function decodePath(p: string): string {
  try {
    return decodeURIComponent(p);
  } catch {
    return p;
  }
}

/**
 * Classifies one recorded URL by the first rule of {@link PACKAGE_RULES} that matches it.
 * @param url an absolute URL as the manifest holds it
 */
export function classifyUrl(url: string, hints: RequestHints = {}): UrlClass {
  let rawPath: string;
  try {
    rawPath = new URL(url).pathname;
  } catch {
    return { kind: 'other' };
  }
  const path = decodePath(rawPath);
  const file = path.slice(path.lastIndexOf('/') + 1);
  for (const rule of PACKAGE_RULES) {
    const m = rule.path.exec(path);
    if (!m) continue;
    const got = rule.take ? rule.take(m, hints) : {};
    if (!got) continue;
    if (rule.kind === 'metadata') return { kind: 'metadata', ecosystem: rule.ecosystem, ...(got.name !== undefined && { name: got.name }) };
    const a = got as Omit<ArtifactClass, 'ecosystem' | 'kind' | 'file'>;
    const qualifiers = a.qualifiers && Object.keys(a.qualifiers).length ? a.qualifiers : undefined;
    return { kind: 'artifact', ecosystem: rule.ecosystem, name: a.name, version: a.version, ...(qualifiers && { qualifiers }), file };
  }
  return { kind: 'other' };
}

/** Classifies a recorded entry: its URL, with its request's `Accept` and its response's MIME type as hints. */
export function classifyEntry(entry: Entry): UrlClass {
  const accept = entry.request.headers.find((h) => h.name.toLowerCase() === 'accept')?.value;
  return classifyUrl(entry.request.url, { accept, mimeType: entry.response.content.mimeType });
}
