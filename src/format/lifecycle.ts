/**
 * The pure pieces of a recording's life outside the happy path: what a commit message may
 * say (never the command line), a URL without its `user:password@`, who owns a temp file,
 * a full disk told in one line, and what to do with a recording left aside.
 */
import { basename } from 'node:path';
import { BtrflyError } from '../errors';

/**
 * The message of a recording made by `btrfly run`: the tag, the entry count and the program's
 * name only. Its arguments often carry secrets (`-H 'Authorization: …'`, `-u user:pass`, a
 * `?token=`), and a commit message goes to every remote the archive is pushed to.
 */
export function recordCommitMessage(tag: string, program: string | undefined, entries: number): string {
  const name = programName(program);
  return `record ${tag}: ${entries} entr${entries === 1 ? 'y' : 'ies'}${name ? ` from ${name}` : ''}\n`;
}

/** The base name of a program, or undefined when even that looks like it could hold a secret (`user:pass@host`, `KEY=value`). */
export function programName(program: string | undefined): string | undefined {
  if (!program) return undefined;
  const name = basename(program);
  return /^[A-Za-z0-9._+-]{1,64}$/.test(name) ? name : undefined;
}

/** The URL without `user:password@` in its authority; everything else byte for byte. */
export function stripUserinfo(url: string): string {
  return url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#]*@/, '$1');
}

/** Prefix of the temp files and stage directories a process makes, so `gc` can tell whose they are. */
export function ownedTempName(pid: number, rest: string): string {
  return `p${pid}-${rest}`;
}

/** The process that made a temp file named by {@link ownedTempName}, or undefined for another name. */
export function tempOwner(name: string): number | undefined {
  const m = /^p(\d+)-/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Whether `e` (or what caused it) is a full disk or an exhausted quota. */
export function isNoSpace(e: unknown): boolean {
  for (let cur = e, depth = 0; cur && depth < 8; cur = (cur as { cause?: unknown }).cause, depth++) {
    const err = cur as { code?: string; message?: string; data?: { noSpace?: boolean } };
    if (err.code === 'ENOSPC' || err.code === 'EDQUOT' || err.code === 'NO_SPACE' || err.data?.noSpace) return true;
    if (typeof err.message === 'string' && /No space left on device|Disk quota exceeded|Out of diskspace|ENOSPC/i.test(err.message)) return true;
  }
  return false;
}

/**
 * The mount point holding `absPath`, from the text of `/proc/self/mountinfo` (the longest
 * mount point that is a prefix of the path); `/` when nothing matches.
 */
export function mountPointOf(absPath: string, mountinfo: string): string {
  let best = '/';
  for (const line of mountinfo.split('\n')) {
    const field = line.split(' ')[4];
    if (!field) continue;
    const mount = field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    const inside = mount === '/' || absPath === mount || absPath.startsWith(mount.endsWith('/') ? mount : mount + '/');
    if (inside && mount.length > best.length) best = mount;
  }
  return best;
}

/** Whole MiB to free so that `needed` bytes fit in `available`; at least 1. */
export function mibToFree(needed: number, available: number): number {
  return Math.max(1, Math.ceil((needed - available) / (1024 * 1024)));
}

/** The one line a full disk gets (exit 1): where, how much, what to do. */
export function noSpaceError(mount: string, freeMib: number, cause?: unknown): BtrflyError {
  return new BtrflyError('NO_SPACE', `no space left on ${mount}: free ${freeMib} MiB or move the archive`, { cause, data: { mount, freeMib } });
}

/** A recording that is not the tag: left aside by a failed command, or by a process that stopped. */
export interface AsideRecording {
  id: string;
  tag: string;
  entries: number;
  started: string;
  /** Set when the recording was kept aside on purpose: the command's exit status. */
  exitCode?: number;
  /** Set when connections btrfly could not carry held the recording back (run --isolate). */
  leaks?: number;
  /** The recording process; set when it died without sealing. */
  deadPid?: number;
}

/** Why a recording was kept aside on purpose: the command's failure, the connections btrfly could not carry, or both. */
export function asideWhy(exitCode: number, leaks?: number): string {
  const leaked = leaks ? `${leaks} connection${leaks === 1 ? '' : 's'} btrfly cannot carry (leaks) ${leaks === 1 ? 'was' : 'were'} refused` : '';
  if (exitCode === 0) return leaked ? `the recorded command exited 0 but ${leaked}` : 'the recorded command exited 0';
  return `the recorded command failed (exit ${exitCode})${leaked ? ` and ${leaked}` : ''}`;
}

/** What became of it and what to do, in one line (status, the next record of the tag, `pending list`). */
export function asideAdvice(p: AsideRecording): string {
  const why =
    p.exitCode === undefined
      ? `it was interrupted (process ${p.deadPid ?? 'unknown'} stopped without sealing it)`
      : p.leaks
        ? `${asideWhy(p.exitCode, p.leaks)} (it would miss what they fetch)`
        : asideWhy(p.exitCode);
  return (
    `recording ${p.id} of tag "${p.tag}" (${p.entries} entr${p.entries === 1 ? 'y' : 'ies'}, started ${p.started}) is not the tag: ${why}; ` +
    `"btrfly pending seal ${p.id}" makes it the tag, "btrfly pending drop ${p.id}" drops it`
  );
}
