/**
 * The end-of-session lines on stderr, shared by `btrfly run` and `btrfly stop`: here, apart from
 * run-command.ts, so that `btrfly stop` does not load the runtime, the proxy and DNS to print them.
 */
import { repairAdvice, tagLeftAdvice } from '../../format/types';
import { asideWhy } from '../../format/lifecycle';
import { formatSize } from '../../format/size';
import { printable } from '../../format/printable';
import type { DamagedBody, Mode } from '../proxy/session';
import type { SessionResult } from '../session/runtime';

/** The end-of-run summary (stderr): tag, recording, requests, bytes, hits, misses, and each miss. */
export function summarize(mode: Mode, r: SessionResult, unused: boolean): string[] {
  const s = r.info.stats;
  const id = (r.commit ?? r.info.rev ?? '').slice(0, 12);
  if (r.aside) {
    const { id, entries, exitCode, leaks } = r.aside;
    const kept = `tag "${r.info.tag}" is unchanged; its recording (${entries} entr${entries === 1 ? 'y' : 'ies'}) is kept aside as ${id}`;
    if (leaks) {
      return [
        `btrfly: ${asideWhy(exitCode, leaks)} (listed below), so the recording would miss what they fetch: ${kept}: remove them from the build and record again, or accept them: "btrfly pending seal ${id}" makes this recording the tag (--allow-leaks does so at once), "btrfly pending drop ${id}" drops it`,
      ];
    }
    return [
      `btrfly: the command failed (exit ${exitCode}): tag "${r.info.tag}" is unchanged; its recording (${entries} entr${entries === 1 ? 'y' : 'ies'}) is kept aside as ${id}: "btrfly pending seal ${id}" makes it the tag, "btrfly pending drop ${id}" drops it (--seal-on-failure seals a failed build's recording at once)`,
    ];
  }
  if (mode === 'record' && !r.commit) return [`btrfly: nothing was recorded: tag "${r.info.tag}" is unchanged`];
  const lines =
    mode === 'record'
      ? [`btrfly: recorded tag "${r.info.tag}" (recording ${id || 'none'}): ${s.requests} requests, ${s.recorded} entries, ${formatSize(s.bytes)}${s.upstreamErrors ? `, ${s.upstreamErrors} upstream errors` : ''}`]
      : [`btrfly: played back tag "${r.info.tag}" (recording ${(r.info.rev ?? '').slice(0, 12)}): ${s.requests} requests, ${formatSize(s.bytes)}, ${s.hits} hits, ${s.misses} misses${s.corrupt ? `, ${s.corrupt} damaged` : ''}${s.upstreamErrors ? `, ${s.upstreamErrors} upstream errors` : ''}`];
  for (const d of r.damaged ?? []) lines.push(damagedLine(r.info.tag, r.info.rev ?? '', d));
  for (const u of r.unanswered ?? []) {
    if (u.brokenOff) lines.push(`btrfly: the recorded answer to ${printable(u.method)} ${printable(u.url)} was broken off after its headers (${u.why}), so the client's transfer failed`);
    else lines.push(`btrfly: the recorded answer to ${printable(u.method)} ${printable(u.url)} could not be sent (${u.why}), so the client got 500: record the tag again, or restore its manifest from git history`);
  }
  if (mode === 'playback' && r.commit) lines.push(`btrfly: --append recorded ${s.recorded} missing entr${s.recorded === 1 ? 'y' : 'ies'} as recording ${r.commit.slice(0, 12)} of tag "${r.info.tag}"`);
  if (r.misses.length > 0) {
    lines.push(`btrfly: ${r.misses.length} request(s) missed (not in the recording):`);
    for (const m of r.misses) {
      lines.push(`  ${printable(m.method)} ${printable(m.url)}`);
      for (const n of m.nearest) lines.push(`    nearest: ${printable(n, true)}`);
    }
    lines.push(`btrfly: re-record with "btrfly run --record --append --tag=${r.info.tag} -- ..." or make the build request what was recorded`);
  }
  if (unused && r.unused && r.unused.length > 0) {
    lines.push(`btrfly: ${r.unused.length} recorded entr${r.unused.length === 1 ? 'y' : 'ies'} nothing asked for:`);
    for (const e of r.unused) lines.push(`  ${printable(e.request.method)} ${printable(e.request.url)}`);
  }
  return lines;
}

/** One line per damaged body: which, and what to do (the client's transfer of it was broken off). */
function damagedLine(tag: string, commit: string, d: DamagedBody): string {
  const head = `btrfly: the body of ${printable(d.method)} ${printable(d.url)} (sha256 ${d.sha256})`;
  if (d.left) return `${head} is gone from the archive, so its transfer was broken off: ${tagLeftAdvice(tag, commit, d.left)}`;
  const what = d.code === 'BODY_MISSING' ? 'cannot be read from the archive (an object is missing or damaged)' : 'is damaged in the archive (it does not match its SHA-256)';
  return `${head} ${what}, so its transfer was broken off: ${repairAdvice(tag)}`;
}
