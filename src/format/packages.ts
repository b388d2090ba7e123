/**
 * The packages of a recording, read off its manifest with the rules of package-rules.ts:
 * each entry's class (artifact, metadata, other), the artifacts the build downloaded with
 * the SHA-256 of what it received, their canonical `packages.lock` text, and the package
 * changes between two recordings (added, removed, upgraded, downgraded, changed).
 */
import { compareStrings, entryKey } from './manifest';
import { classifyEntry, type ArtifactClass, type Ecosystem } from './package-rules';
import { compareVersions } from './package-versions';
import type { Entry, Manifest } from './types';

export type EntryClass = 'artifact' | 'metadata' | 'other';

/** One artifact the build downloaded. */
export interface PackageArtifact {
  ecosystem: Ecosystem;
  name: string;
  version: string;
  qualifiers?: Record<string, string>;
  /** The file of the package (the artifact URL's last segment). */
  file: string;
  /** The URL the build asked for first (a redirect's target is followed for the bytes). */
  url: string;
  /** Every URL the build asked for these bytes of this file (mirrors, repeats), sorted. */
  urls: string[];
  /** SHA-256 of the bytes the build received. */
  sha256: string;
  size: number;
  /** The answer's Content-Encoding when it had one: `sha256` is then of the encoded bytes. */
  encoding?: string;
}

/** A recording read as packages. */
export interface RecordingPackages {
  /** Sorted by ecosystem, name, version, file; one per distinct file and digest. */
  artifacts: PackageArtifact[];
  /** The class of every entry, by {@link entryKey}. A redirect's target takes its artifact's class. */
  classes: Map<string, EntryClass>;
}

const MAX_REDIRECTS = 10;
const ok = (e: Entry): boolean => e.response.status >= 200 && e.response.status < 300;
const isRedirect = (e: Entry): boolean => [301, 302, 303, 307, 308].includes(e.response.status);

/** Follows an entry's redirects through the recording (release assets and blobs often live on another host). */
function finalAnswer(e: Entry, byUrl: Map<string, Entry>): Entry[] {
  const chain = [e];
  let cur = e;
  while (isRedirect(cur) && chain.length <= MAX_REDIRECTS) {
    const location = cur.response.headers.find((h) => h.name.toLowerCase() === 'location')?.value;
    if (!location) break;
    let target: string;
    try {
      target = new URL(location, cur.request.url).href;
    } catch {
      break;
    }
    const next = byUrl.get(target);
    if (!next || chain.includes(next)) break;
    chain.push(next);
    cur = next;
  }
  return chain;
}

function compareArtifacts(a: PackageArtifact, b: PackageArtifact): number {
  return (
    compareStrings(a.ecosystem, b.ecosystem) ||
    compareStrings(a.name, b.name) ||
    compareStrings(a.version, b.version) ||
    compareStrings(a.file, b.file) ||
    compareStrings(a.sha256, b.sha256)
  );
}

/** Reads a recording's manifest as packages: which entries are artifacts, metadata or other, and the artifacts. */
export function recordingPackages(manifest: Pick<Manifest, 'entries'>): RecordingPackages {
  const byUrl = new Map<string, Entry>();
  for (const e of manifest.entries) if (e.request.method === 'GET' && e.ordinal === 0) byUrl.set(e.request.url, e);
  const classes = new Map<string, EntryClass>();
  const artifacts = new Map<string, PackageArtifact>();
  for (const e of manifest.entries) {
    const c = classifyEntry(e);
    const key = entryKey(e);
    if (c.kind !== 'artifact') {
      if (!classes.has(key)) classes.set(key, c.kind);
      continue;
    }
    const chain = finalAnswer(e, byUrl);
    const last = chain[chain.length - 1];
    if (e.request.method !== 'GET' || !ok(last)) {
      if (!classes.has(key)) classes.set(key, 'other');
      continue;
    }
    for (const hop of chain) classes.set(entryKey(hop), 'artifact');
    const a = artifactOf(c, e.request.url, last);
    const same = `${a.ecosystem} ${a.name} ${a.version} ${a.file} ${a.sha256}`;
    const seen = artifacts.get(same);
    if (!seen) artifacts.set(same, a);
    else if (!seen.urls.includes(a.url)) seen.urls.push(a.url);
  }
  for (const a of artifacts.values()) a.urls.sort(compareStrings);
  const result = { artifacts: [...artifacts.values()].sort(compareArtifacts), classes };
  markPackuments(manifest, result);
  return result;
}

/** `origin` + decoded path of a URL, without its query: how a packument and a tarball URL are matched. */
function pathKey(url: string): string | undefined {
  try {
    const u = new URL(url);
    return u.origin + decodeURIComponent(u.pathname);
  } catch {
    return undefined;
  }
}

/**
 * npm fetches packuments with `Accept: application/json` too (npm 11 asks for full ones), which
 * the URL rules cannot tell from any JSON API. A GET of `<registry>/<name>` is a packument
 * when the same recording downloaded a tarball `<registry>/<name>/-/...` of that package.
 */
function markPackuments(manifest: Pick<Manifest, 'entries'>, p: RecordingPackages): void {
  const packuments = new Set<string>();
  for (const a of p.artifacts) {
    if (a.ecosystem !== 'npm') continue;
    const key = pathKey(a.url);
    if (key?.includes('/-/')) packuments.add(key.slice(0, key.lastIndexOf('/-/')));
  }
  if (!packuments.size) return;
  for (const e of manifest.entries) {
    const key = entryKey(e);
    if (e.request.method !== 'GET' || p.classes.get(key) !== 'other') continue;
    const path = pathKey(e.request.url);
    if (path && packuments.has(path)) p.classes.set(key, 'metadata');
  }
}

function artifactOf(c: ArtifactClass, url: string, answer: Entry): PackageArtifact {
  return {
    ecosystem: c.ecosystem,
    name: c.name,
    version: c.version,
    ...(c.qualifiers && { qualifiers: c.qualifiers }),
    file: c.file,
    url,
    urls: [url],
    sha256: answer.response.content.sha256,
    size: answer.response.content.size,
    ...(answer.response.content.encoding !== undefined && { encoding: answer.response.content.encoding }),
  };
}

// ---------------------------------------------------------------------------------------
// packages.lock

export const PACKAGES_LOCK = 'packages.lock';
const LOCK_HEADER = '# btrfly packages.lock: the artifacts this recording downloaded, one a line, sorted.\n# ecosystem name version sha256 file\n';

/** A field of a lock line: spaces and line breaks would split it, so they are percent-encoded. */
const field = (s: string): string => s.replace(/[%\s]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);

/**
 * The canonical text of `packages.lock`: a comment header, then one artifact a line
 * (`npm axios 1.7.9 <sha256> axios-1.7.9.tgz`) in a fixed order. No hosts and no URLs, so
 * a mirror or a credential in a URL never shows, and a re-recording's diff is one line a bump.
 */
export function serializePackagesLock(artifacts: readonly PackageArtifact[]): string {
  const lines = new Set(
    [...artifacts].sort(compareArtifacts).map((a) => [a.ecosystem, a.name, a.version, a.sha256, a.file].map(field).join(' ')),
  );
  return LOCK_HEADER + [...lines].map((l) => `${l}\n`).join('');
}

// ---------------------------------------------------------------------------------------
// Package changes between two recordings

/** `source`: the same version and bytes, fetched from other URLs (another host, another mirror). */
export type PackageChangeKind = 'added' | 'removed' | 'upgraded' | 'downgraded' | 'changed' | 'source';

/** One line of a package diff: `axios 1.7.9 → 1.7.8 (npm)`. */
export interface PackageChange {
  change: PackageChangeKind;
  ecosystem: Ecosystem;
  name: string;
  /** The version before (absent when added). */
  from?: string;
  /** The version after (absent when removed). */
  to?: string;
  /** The URLs the version was fetched from on each side (sorted), for `changed` and `source` of one version. */
  urls?: { from: string[]; to: string[] };
}

/** One version of a package in a recording: the files and digests received, and the URLs asked. */
interface VersionFiles {
  digests: Set<string>;
  urls: Set<string>;
}

/** Versions of each package, by `ecosystem name`, each with the digests received for it and the URLs. */
function versionsByPackage(artifacts: readonly PackageArtifact[]): Map<string, Map<string, VersionFiles>> {
  const out = new Map<string, Map<string, VersionFiles>>();
  for (const a of artifacts) {
    const id = `${a.ecosystem}\0${a.name}`;
    if (!out.has(id)) out.set(id, new Map());
    const versions = out.get(id)!;
    if (!versions.has(a.version)) versions.set(a.version, { digests: new Set(), urls: new Set() });
    const v = versions.get(a.version)!;
    v.digests.add(`${a.file}\0${a.sha256}`);
    for (const u of a.urls) v.urls.add(u);
  }
  return out;
}

const sameSet = (a: Set<string>, b: Set<string>): boolean => a.size === b.size && [...a].every((x) => b.has(x));
const sorted = (s: Set<string>): string[] => [...s].sort(compareStrings);
const ORDER: Record<PackageChangeKind, number> = { upgraded: 0, downgraded: 1, added: 2, removed: 3, changed: 4, source: 5 };

/**
 * The package changes from one recording's artifacts to another's. Versions of one package
 * that went away are paired, oldest with oldest, with versions that came; the pair is an
 * upgrade or a downgrade by the ecosystem's version order. The same version with other bytes
 * is `changed`; so is a pair the ecosystem cannot order (OCI digests).
 */
export function diffPackages(before: readonly PackageArtifact[], after: readonly PackageArtifact[]): PackageChange[] {
  const a = versionsByPackage(before);
  const b = versionsByPackage(after);
  const out: PackageChange[] = [];
  for (const id of new Set([...a.keys(), ...b.keys()])) {
    const [ecosystem, name] = id.split('\0') as [Ecosystem, string];
    const va = a.get(id) ?? new Map<string, VersionFiles>();
    const vb = b.get(id) ?? new Map<string, VersionFiles>();
    const byOrder = (x: string, y: string): number => compareVersions(ecosystem, x, y) || compareStrings(x, y);
    const gone = [...va.keys()].filter((v) => !vb.has(v)).sort(byOrder);
    const came = [...vb.keys()].filter((v) => !va.has(v)).sort(byOrder);
    for (const [v, x] of va) {
      const y = vb.get(v);
      if (!y) continue;
      const bytes = sameSet(x.digests, y.digests);
      if (bytes && sameSet(x.urls, y.urls)) continue;
      out.push({ change: bytes ? 'source' : 'changed', ecosystem, name, from: v, to: v, urls: { from: sorted(x.urls), to: sorted(y.urls) } });
    }
    const pairs = Math.min(gone.length, came.length);
    for (let i = 0; i < pairs; i++) {
      const order = compareVersions(ecosystem, gone[i], came[i]);
      const change = order === undefined || order === 0 ? 'changed' : order < 0 ? 'upgraded' : 'downgraded';
      out.push({ change, ecosystem, name, from: gone[i], to: came[i] });
    }
    for (const v of gone.slice(pairs)) out.push({ change: 'removed', ecosystem, name, from: v });
    for (const v of came.slice(pairs)) out.push({ change: 'added', ecosystem, name, to: v });
  }
  return out.sort(
    (x, y) =>
      ORDER[x.change] - ORDER[y.change] ||
      compareStrings(x.ecosystem, y.ecosystem) ||
      compareStrings(x.name, y.name) ||
      compareStrings(x.from ?? x.to ?? '', y.from ?? y.to ?? ''),
  );
}

/** `a`, `a, b`, or `a → b`: where one version was fetched from, before and after. */
export function formatSources(urls: { from: string[]; to: string[] }, show: (s: string) => string = (s) => s): string {
  const from = urls.from.map(show).join(', ');
  const to = urls.to.map(show).join(', ');
  return from === to ? to : `${from} → ${to}`;
}

/**
 * `axios 1.7.9 → 1.7.8 (npm)`, `left-pad 1.3.0 (npm)`, `axios 1.7.9 (npm), other bytes: <url>`,
 * `axios 1.7.9 (npm): <url> → <url>` (same bytes from elsewhere). `show` makes each name,
 * version and URL safe to print (see safe-text.ts).
 */
export function formatPackageChange(c: PackageChange, show: (s: string) => string = (s) => s): string {
  const eco = ` (${c.ecosystem})`;
  const name = show(c.name);
  const from = c.from === undefined ? '' : show(c.from);
  const to = c.to === undefined ? '' : show(c.to);
  const where = c.urls ? `: ${formatSources(c.urls, show)}` : '';
  if (c.change === 'added') return `${name} ${to}${eco}`;
  if (c.change === 'removed') return `${name} ${from}${eco}`;
  if (c.change === 'source') return `${name} ${from}${eco}${where}`;
  if (c.from === c.to) return `${name} ${from}${eco}, other bytes${where}`;
  return `${name} ${from} → ${to}${eco}`;
}
