/**
 * What changed between two recordings: the entries added, removed and changed (status, size
 * or digest), keyed by method, URL and ordinal; and its renderings for a terminal, a
 * pull-request comment (Markdown) and `--json`.
 */
import { compareEntries, entryKey } from './manifest';
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
}

export interface DiffChange {
  method: string;
  url: string;
  ordinal: number;
  from: DiffSide;
  to: DiffSide;
}

/** Plain data; this is also the `--json` form. */
export interface ManifestDiff {
  added: DiffEntry[];
  removed: DiffEntry[];
  changed: DiffChange[];
  unchanged: number;
}

/** What the renderers call the two sides, e.g. `example1@1a2b3c4`. */
export interface DiffLabels {
  from: string;
  to: string;
}

const side = (e: Entry): DiffSide => ({ status: e.response.status, size: e.response.content.size, sha256: e.response.content.sha256 });
const item = (e: Entry): DiffEntry => ({ method: e.request.method, url: e.request.url, ordinal: e.ordinal, ...side(e) });

/** Compares two recordings entry by entry (same method, URL and ordinal). Lists are in manifest order. */
export function diffManifests(a: Manifest, b: Manifest): ManifestDiff {
  const before = new Map(a.entries.map((e) => [entryKey(e), e]));
  const after = new Map(b.entries.map((e) => [entryKey(e), e]));
  const out: ManifestDiff = { added: [], removed: [], changed: [], unchanged: 0 };
  for (const e of [...b.entries].sort(compareEntries)) {
    const old = before.get(entryKey(e));
    if (!old) out.added.push(item(e));
    else if (old.response.status !== e.response.status || old.response.content.sha256 !== e.response.content.sha256) {
      out.changed.push({ method: e.request.method, url: e.request.url, ordinal: e.ordinal, from: side(old), to: side(e) });
    } else out.unchanged++;
  }
  for (const e of [...a.entries].sort(compareEntries)) if (!after.has(entryKey(e))) out.removed.push(item(e));
  return out;
}

const short = (sha: string): string => sha.slice(0, 12);
const ord = (o: number): string => (o ? ` #${o}` : '');
const delta = (d: ManifestDiff): number =>
  d.added.reduce((s, e) => s + e.size, 0) -
  d.removed.reduce((s, e) => s + e.size, 0) +
  d.changed.reduce((s, c) => s + c.to.size - c.from.size, 0);
const signed = (n: number): string => (n > 0 ? `+${formatSize(n)}` : n < 0 ? formatSize(n) : '±0 B');

/** One line: `2 added, 1 removed, 3 changed, 40 unchanged (+1.2 MiB)`. */
export function summarizeDiff(d: ManifestDiff): string {
  return `${d.added.length} added, ${d.removed.length} removed, ${d.changed.length} changed, ${d.unchanged} unchanged (${signed(delta(d))})`;
}

/** For a terminal: one line an entry, `+`, `-` or `~` first, then the summary. */
export function renderDiffText(d: ManifestDiff, labels?: DiffLabels): string {
  const lines: string[] = [];
  if (labels) lines.push(`--- ${labels.from}`, `+++ ${labels.to}`);
  const fmt = (s: DiffSide): string => `${s.status} ${formatSize(s.size)} ${short(s.sha256)}`;
  for (const e of d.removed) lines.push(`- ${e.method} ${e.url}${ord(e.ordinal)}  ${fmt(e)}`);
  for (const e of d.added) lines.push(`+ ${e.method} ${e.url}${ord(e.ordinal)}  ${fmt(e)}`);
  for (const c of d.changed) lines.push(`~ ${c.method} ${c.url}${ord(c.ordinal)}  ${fmt(c.from)} -> ${fmt(c.to)}`);
  lines.push(summarizeDiff(d));
  return lines.join('\n') + '\n';
}

/** Markdown table cells: a `|` would end the cell (GFM unescapes `\|` even in code spans) and a newline the row. */
function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/[\r\n]+/g, ' ');
}
const code = (s: string): string => `\`${s.replace(/`/g, "'")}\``;

/** For a pull-request comment: a summary line, then a table of added, removed and changed URLs. */
export function renderDiffMarkdown(d: ManifestDiff, labels?: DiffLabels): string {
  const title = labels ? `**btrfly diff** ${code(labels.from)} → ${code(labels.to)}: ` : '**btrfly diff**: ';
  const out = [title + summarizeDiff(d), ''];
  if (!d.added.length && !d.removed.length && !d.changed.length) return out.join('\n');
  out.push('| | Request | Status | Size | SHA-256 |', '|---|---|---|---|---|');
  const req = (e: { method: string; url: string; ordinal: number }): string => cell(`${e.method} ${code(e.url)}${ord(e.ordinal)}`);
  for (const e of d.added) out.push(`| added | ${req(e)} | ${e.status} | ${formatSize(e.size)} | ${code(short(e.sha256))} |`);
  for (const e of d.removed) out.push(`| removed | ${req(e)} | ${e.status} | ${formatSize(e.size)} | ${code(short(e.sha256))} |`);
  for (const c of d.changed) {
    const status = c.from.status === c.to.status ? `${c.to.status}` : `${c.from.status} → ${c.to.status}`;
    const size = `${formatSize(c.from.size)} → ${formatSize(c.to.size)}`;
    out.push(`| changed | ${req(c)} | ${status} | ${size} | ${code(short(c.from.sha256))} → ${code(short(c.to.sha256))} |`);
  }
  return out.join('\n') + '\n';
}

/** The `--json` form: the diff itself, with the labels when given. */
export function renderDiffJson(d: ManifestDiff, labels?: DiffLabels): string {
  return JSON.stringify({ ...(labels && { from: labels.from, to: labels.to }), ...d, summary: summarizeDiff(d) }, null, 2) + '\n';
}
