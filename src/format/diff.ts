/**
 * What changed between two recordings, led by packages: the package changes (added, removed,
 * upgraded, downgraded, changed, fetched from other URLs), the metadata documents counted
 * (refreshed, new, gone), then
 * the entries added, removed and changed (status, digest, or a header that decides what the client
 * does with the answer: its redirect target, type or coding), keyed by method, URL and ordinal;
 * and its renderings for a terminal, a pull-request comment (Markdown) and `--json`.
 */
import { compareEntries, entryKey } from './manifest';
import { diffPackages, formatPackageChange, formatSources, recordingPackages, type EntryClass, type PackageChange, type RecordingPackages } from './packages';
import { codeSpan, printable } from './printable';
import type { Entry, Manifest } from './types';
import { formatSize } from './size';

/** The answer of an entry, as the diff compares it. */
export interface DiffSide {
  status: number;
  size: number;
  sha256: string;
}

export interface DiffEntry extends DiffSide {
  method: string;
  url: string;
  ordinal: number;
  /** What the URL is: a package artifact (shown as a package change), a metadata document, or other. */
  class: EntryClass;
}

/** A response header that differs between the two answers; a side without it has no value. */
export interface HeaderChange {
  name: string;
  from?: string;
  to?: string;
}

export interface DiffChange {
  method: string;
  url: string;
  ordinal: number;
  class: EntryClass;
  from: DiffSide;
  to: DiffSide;
  /** The headers of {@link ANSWER_HEADERS} that differ (a redirect's new target...), when any does. */
  headers?: HeaderChange[];
}

/** Plain data; this is also the `--json` form. `added`, `removed` and `changed` list every URL, whatever its class. */
export interface ManifestDiff {
  packages: PackageChange[];
  /** Metadata documents (packuments, simple pages, `Packages`, `@v/list`...): changed (`refreshed`), added (`new`), removed (`gone`). */
  metadata: MetadataCounts;
  added: DiffEntry[];
  removed: DiffEntry[];
  changed: DiffChange[];
  unchanged: number;
}

export interface MetadataCounts {
  refreshed: number;
  new: number;
  gone: number;
}

/** What the renderers call the two sides, e.g. `example1@1a2b3c4`. */
export interface DiffLabels {
  from: string;
  to: string;
}

/** How much the renderers show. */
export interface DiffRenderOptions {
  /** List the metadata documents refreshed, not only count them. */
  all?: boolean;
}

/**
 * Response headers that change what a client does with the same status and body: where a
 * redirect sends it, how it reads the body. A re-recording that changes only one of them is a
 * change (a 302 whose body is the same page but whose target moved to another host).
 */
export const ANSWER_HEADERS: readonly string[] = ['Location', 'Content-Type', 'Content-Encoding'];

/** A header's value, repeated fields joined as HTTP does; undefined when absent. */
function headerOf(e: Entry, name: string): string | undefined {
  const lower = name.toLowerCase();
  const values = e.response.headers.filter((h) => h.name.toLowerCase() === lower).map((h) => h.value);
  return values.length ? values.join(', ') : undefined;
}

/** The {@link ANSWER_HEADERS} that differ between two answers, in that order. */
function headerChanges(a: Entry, b: Entry): HeaderChange[] {
  const out: HeaderChange[] = [];
  for (const name of ANSWER_HEADERS) {
    const from = headerOf(a, name);
    const to = headerOf(b, name);
    if (from !== to) out.push({ name, ...(from !== undefined && { from }), ...(to !== undefined && { to }) });
  }
  return out;
}

const side = (e: Entry): DiffSide => ({ status: e.response.status, size: e.response.content.size, sha256: e.response.content.sha256 });
const classOf = (p: RecordingPackages, e: Entry): EntryClass => p.classes.get(entryKey(e)) ?? 'other';
const item = (e: Entry, c: EntryClass): DiffEntry => ({ method: e.request.method, url: e.request.url, ordinal: e.ordinal, class: c, ...side(e) });

const isOther = (e: { class: EntryClass }): boolean => e.class === 'other';
const isMetadata = (e: { class: EntryClass }): boolean => e.class === 'metadata';

/** An entry changed between two classes: an artifact only if it is one on both sides (else its status changed), else metadata if either says so. */
function changedClass(x: EntryClass, y: EntryClass): EntryClass {
  if (x === 'artifact' && y === 'artifact') return 'artifact';
  return x === 'metadata' || y === 'metadata' ? 'metadata' : 'other';
}

/** Compares two recordings: their packages, then entry by entry (same method, URL and ordinal). Lists are in manifest order. */
export function diffManifests(a: Manifest, b: Manifest): ManifestDiff {
  const pa = recordingPackages(a);
  const pb = recordingPackages(b);
  const before = new Map(a.entries.map((e) => [entryKey(e), e]));
  const after = new Map(b.entries.map((e) => [entryKey(e), e]));
  const out: ManifestDiff = { packages: diffPackages(pa.artifacts, pb.artifacts), metadata: { refreshed: 0, new: 0, gone: 0 }, added: [], removed: [], changed: [], unchanged: 0 };
  for (const e of [...b.entries].sort(compareEntries)) {
    const old = before.get(entryKey(e));
    if (!old) {
      out.added.push(item(e, classOf(pb, e)));
      continue;
    }
    const headers = headerChanges(old, e);
    const answer = old.response.status !== e.response.status || old.response.content.sha256 !== e.response.content.sha256;
    if (answer || headers.length) {
      // A package file whose bytes stayed is no package change: its header change is listed with the other URLs.
      const c = answer ? changedClass(classOf(pa, old), classOf(pb, e)) : classOf(pb, e) === 'metadata' ? 'metadata' : 'other';
      out.changed.push({ method: e.request.method, url: e.request.url, ordinal: e.ordinal, class: c, from: side(old), to: side(e), ...(headers.length && { headers }) });
    } else out.unchanged++;
  }
  for (const e of [...a.entries].sort(compareEntries)) if (!after.has(entryKey(e))) out.removed.push(item(e, classOf(pa, e)));
  const count = (list: { class: EntryClass }[]): number => list.filter(isMetadata).length;
  out.metadata = { refreshed: count(out.changed), new: count(out.added), gone: count(out.removed) };
  return out;
}

const short = (sha: string): string => sha.slice(0, 12);
const ord = (o: number): string => (o ? ` #${o}` : '');
const delta = (d: ManifestDiff): number =>
  d.added.reduce((s, e) => s + e.size, 0) -
  d.removed.reduce((s, e) => s + e.size, 0) +
  d.changed.reduce((s, c) => s + c.to.size - c.from.size, 0);
/** `Location: https://a/x → https://b/x`, each header that changed, `; ` between; `(none)` for an absent side. */
const headerText = (hs: readonly HeaderChange[], arrow: string, value: (s: string) => string = printable): string =>
  hs.map((h) => `${h.name}: ${h.from === undefined ? '(none)' : value(h.from)} ${arrow} ${h.to === undefined ? '(none)' : value(h.to)}`).join('; ');
const signed = (n: number): string => (n > 0 ? `+${formatSize(n)}` : n < 0 ? formatSize(n) : '±0 B');


/** The entries of one class, as a smaller diff (for listing). */
function only(d: ManifestDiff, keep: (e: { class: EntryClass }) => boolean): Pick<ManifestDiff, 'added' | 'removed' | 'changed'> {
  return { added: d.added.filter(keep), removed: d.removed.filter(keep), changed: d.changed.filter(keep) };
}

/** How a kind of package change is counted in the summary. */
const COUNTED: Record<PackageChange['change'], string> = {
  upgraded: 'upgraded',
  downgraded: 'downgraded',
  added: 'added',
  removed: 'removed',
  changed: 'changed',
  source: 'from another source',
};

/** `1 upgraded, 2 added`: the package changes counted by kind, in the order they are listed. */
function countPackages(packages: PackageChange[]): string {
  const counts = new Map<string, number>();
  for (const p of packages) counts.set(COUNTED[p.change], (counts.get(COUNTED[p.change]) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${n} ${k}`).join(', ') || 'none';
}

/** `3 refreshed, 10 new, 0 gone`. */
const countMetadata = (m: MetadataCounts): string => `${m.refreshed} refreshed, ${m.new} new, ${m.gone} gone`;
const metadataTotal = (m: MetadataCounts): number => m.refreshed + m.new + m.gone;

/** Whether the diff touches packages or metadata at all; when not, it reads as a plain URL diff. */
const showsPackages = (d: ManifestDiff): boolean =>
  d.packages.length > 0 || [...d.added, ...d.removed, ...d.changed].some((e) => !isOther(e));

/**
 * One line. Without packages or metadata: `2 added, 1 removed, 3 changed, 40 unchanged (+1.2 MiB)`.
 * With them: `packages: 1 upgraded, 1 added; metadata: 12 refreshed, 1 new, 0 gone; other URLs: 0 added, 0 removed, 1 changed; 40 unchanged (+1.2 MiB)`.
 */
export function summarizeDiff(d: ManifestDiff): string {
  const o = only(d, isOther);
  const urls = `${o.added.length} added, ${o.removed.length} removed, ${o.changed.length} changed`;
  const tail = `${d.unchanged} unchanged (${signed(delta(d))})`;
  if (!showsPackages(d)) return `${urls}, ${tail}`;
  return `packages: ${countPackages(d.packages)}; metadata: ${countMetadata(d.metadata)}; other URLs: ${urls}; ${tail}`;
}

/** URL lines for a terminal, `+`, `-` or `~` first; method and URL printable. */
function urlLines(d: Pick<ManifestDiff, 'added' | 'removed' | 'changed'>, indent = ''): string[] {
  const fmt = (s: DiffSide): string => `${s.status} ${formatSize(s.size)} ${short(s.sha256)}`;
  const req = (e: { method: string; url: string; ordinal: number }): string => `${printable(e.method)} ${printable(e.url)}${ord(e.ordinal)}`;
  return [
    ...d.removed.map((e) => `${indent}- ${req(e)}  ${fmt(e)}`),
    ...d.added.map((e) => `${indent}+ ${req(e)}  ${fmt(e)}`),
    ...d.changed.map((c) => `${indent}~ ${req(c)}  ${fmt(c.from)} -> ${fmt(c.to)}${c.headers ? `  ${headerText(c.headers, '->')}` : ''}`),
  ];
}

/**
 * For a terminal: the package changes one a line (`upgraded   axios 1.7.8 → 1.7.9 (npm)`,
 * `source     axios 1.7.9 (npm): <url> → <url>`), the metadata counts (listed with `all`),
 * the other URLs one a line, then the summary. Every name, version and URL is printable.
 */
export function renderDiffText(d: ManifestDiff, labels?: DiffLabels, opts: DiffRenderOptions = {}): string {
  const lines: string[] = [];
  if (labels) lines.push(`--- ${printable(labels.from)}`, `+++ ${printable(labels.to)}`);
  for (const p of d.packages) lines.push(`${p.change.padEnd(10)} ${formatPackageChange(p, printable)}`);
  if (showsPackages(d)) {
    lines.push(`metadata: ${countMetadata(d.metadata)}`);
    if (opts.all) lines.push(...urlLines(only(d, isMetadata), '  '));
  }
  lines.push(...urlLines(only(d, isOther)));
  lines.push(summarizeDiff(d));
  return lines.join('\n') + '\n';
}

/** Markdown table cells: a `|` would end the cell (GFM unescapes `\|` even in code spans). Line breaks are already escaped by {@link printable}. */
function cell(s: string): string {
  return s.replace(/\|/g, '\\|');
}
const code = codeSpan;

/** A Markdown table of URLs: added, removed, changed. */
function urlTable(d: Pick<ManifestDiff, 'added' | 'removed' | 'changed'>): string[] {
  if (!d.added.length && !d.removed.length && !d.changed.length) return [];
  const out = ['| | Request | Status | Size | SHA-256 |', '|---|---|---|---|---|'];
  const req = (e: { method: string; url: string; ordinal: number }): string => cell(`${printable(e.method)} ${code(e.url)}${ord(e.ordinal)}`);
  for (const e of d.added) out.push(`| added | ${req(e)} | ${e.status} | ${formatSize(e.size)} | ${code(short(e.sha256))} |`);
  for (const e of d.removed) out.push(`| removed | ${req(e)} | ${e.status} | ${formatSize(e.size)} | ${code(short(e.sha256))} |`);
  for (const c of d.changed) {
    const codes = c.from.status === c.to.status ? `${c.to.status}` : `${c.from.status} → ${c.to.status}`;
    const status = c.headers ? `${codes} (${cell(headerText(c.headers, '→', codeSpan))})` : codes;
    const size = `${formatSize(c.from.size)} → ${formatSize(c.to.size)}`;
    out.push(`| changed | ${req(c)} | ${status} | ${size} | ${code(short(c.from.sha256))} → ${code(short(c.to.sha256))} |`);
  }
  return out;
}

/** The Version cell of a package change: `1.7.9 → 1.7.8`, `2.1.3 (other bytes)`, `2.1.3 (other source)`. */
function versionCell(p: PackageChange): string {
  const v = (s: string | undefined): string => printable(s ?? '');
  if (p.change === 'added') return v(p.to);
  if (p.change === 'removed') return v(p.from);
  if (p.change === 'source') return `${v(p.to)} (other source)`;
  return p.from === p.to ? `${v(p.to)} (other bytes)` : `${v(p.from)} → ${v(p.to)}`;
}

/**
 * For a pull-request comment: a summary line, a table of package changes, where each version
 * that changed bytes or source was fetched from, the metadata counts (a table of them with
 * `all`), then a table of the other URLs.
 */
export function renderDiffMarkdown(d: ManifestDiff, labels?: DiffLabels, opts: DiffRenderOptions = {}): string {
  const title = labels ? `**btrfly diff** ${code(labels.from)} → ${code(labels.to)}: ` : '**btrfly diff**: ';
  const out = [title + summarizeDiff(d), ''];
  if (d.packages.length) {
    out.push('| Package | Change | Version | Ecosystem |', '|---|---|---|---|');
    for (const p of d.packages) out.push(`| ${cell(code(p.name))} | ${p.change} | ${cell(versionCell(p))} | ${p.ecosystem} |`);
    out.push('');
    const sourced = d.packages.filter((p) => p.urls);
    for (const p of sourced) out.push(`- ${code(p.name)} ${printable(p.to ?? '')} (${p.ecosystem}) from ${formatSources(p.urls!, code)}`);
    if (sourced.length) out.push('');
  }
  if (showsPackages(d)) {
    const m = d.metadata;
    out.push(`Metadata: ${countMetadata(m)}${metadataTotal(m) && !opts.all ? ' (`btrfly diff --all` lists them)' : ''}`, '');
    if (opts.all && metadataTotal(m)) out.push(...urlTable(only(d, isMetadata)), '');
  }
  const others = urlTable(only(d, isOther));
  if (others.length) out.push(...others, '');
  return fitComment(out).join('\n').replace(/\n+$/, '\n');
}

/**
 * The longest comment btrfly prints: GitHub refuses a comment of more than 65,536 characters
 * (GitLab's limit is higher), and a diff of thousands of URLs is longer than that.
 */
export const MAX_COMMENT_CHARS = 60_000;

/**
 * The comment's lines, cut at a line so that it stays under {@link MAX_COMMENT_CHARS}, with a
 * last line saying how many were left out and how to see them (the summary, first, keeps every count).
 */
function fitComment(lines: string[]): string[] {
  let total = 0;
  for (let i = 0; i < lines.length; i++) {
    total += lines[i].length + 1;
    if (total > MAX_COMMENT_CHARS - 200) {
      const rest = lines.slice(i).filter((l) => l.startsWith('|') && !l.startsWith('|---') && !l.startsWith('| |') && !l.startsWith('| Package |')).length;
      return [...lines.slice(0, i), '', `… ${rest} more rows left out to keep the comment under ${MAX_COMMENT_CHARS.toLocaleString('en')} characters: \`btrfly diff\` (text or --format json) lists every change.`];
    }
  }
  return lines;
}

/** The `--json` form: the diff itself (every URL, each with its class), with the labels when given. */
export function renderDiffJson(d: ManifestDiff, labels?: DiffLabels): string {
  return JSON.stringify({ ...(labels && { from: labels.from, to: labels.to }), ...d, summary: summarizeDiff(d) }, null, 2) + '\n';
}
