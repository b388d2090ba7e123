import { Args, Flags } from '@oclif/core';
import { BtrflyCommand, type JsonResult, BtrflyError } from '../cli/base';
import { transferOptions } from '../cli/transfer';
import { Archive } from '../format/archive';
import { verifyWithReport, type VerifyReport } from '../format/archive-report';
import { repairBodies, type RepairResult } from '../format/body-repair';
import { formatSize } from '../format/size';
import { validateTagName } from '../format/names';
import { pauseAt } from '../test-pause';

/** `btrfly verify [T...] [--repair [--from REMOTE]]`: every body of every recording read back and checked. */
export default class Verify extends BtrflyCommand {
  static override summary = 'Check that every body is present and matches its digest';
  static override description =
    'Reads back every body of every recording in the history of the given tags (default: all tags) and checks its size and SHA-256. ' +
    'Prints "ok" with what was checked, or lists each problem and exits 1. ' +
    'With --repair, a damaged body is set aside (out of the object store, into btrfly/damaged/) and fetched again from the ' +
    "archive's remotes (or those named with --from) as a fresh clone would; then everything is checked again. " +
    'A repair is refused while a recording runs in the archive; a remote that sends nothing for btrfly.transferTimeout seconds (git config, default 60) is given up; ' +
    'Ctrl-C stops it with its lock released.';
  static override examples = [
    '<%= config.bin %> verify',
    '<%= config.bin %> verify example1 example2',
    '<%= config.bin %> verify --repair',
    '<%= config.bin %> verify team/app --repair --from origin',
  ];
  static override strict = false;
  static override args = { tag: Args.string({ description: 'tags to check (default: all)', required: false }) };
  static override flags = {
    repair: Flags.boolean({ description: 'set damaged bodies aside and fetch them again from the remotes', default: false }),
    from: Flags.string({ description: 'with --repair: the remote to fetch from (default: every remote, in order)', multiple: true }),
    progress: Flags.boolean({ description: "with --repair: show git's transfer progress; default: on when stderr is a terminal", allowNo: true }),
  };

  async run(): Promise<JsonResult> {
    const { argv, flags } = await this.parse(Verify);
    // Not oclif's dependsOn: a boolean's default counts as given there, so --from alone was ignored.
    if (flags.from && !flags.repair) throw new BtrflyError('USAGE', `--from names the remote a repair fetches from: add --repair ("btrfly verify --repair --from ${flags.from[0]}")`);
    const tags = (argv as string[]).map(validateTagName);
    const archive = await Archive.open(flags.archive, flags.repair ? { writes: 'btrfly verify --repair' } : {});
    this.onTeardown(() => archive.close());
    const asked = tags.length ? tags : undefined;
    let report = await verifyWithReport(archive, asked);
    let repair: RepairResult | undefined;
    if (report.problems.length && flags.repair) {
      if (!this.jsonEnabled()) this.listProblems(report);
      const signal = this.stopOnSignals('the repair stopped, its lock released: run "btrfly verify --repair" again to finish it (what it set aside stays in btrfly/damaged/)');
      repair = await repairBodies(archive, report.problems, {
        remotes: flags.from,
        transfer: { ...transferOptions({ force: false, progress: flags.progress, json: this.jsonEnabled() }), signal },
      });
      if (!this.jsonEnabled()) for (const line of describeRepair(repair)) process.stderr.write(`repair: ${line}\n`);
      // The repair is over, its lock released: the check that follows only reads, and Ctrl-C ends it at once.
      this.stopTakingSignals();
      signal.throwIfAborted();
      await pauseAt('repair-verify');
      report = await verifyWithReport(archive, asked);
    }
    const counts = `${report.tags} tags, ${report.recordings} recordings, ${report.bodies} bodies (${formatSize(report.bytes)})`;
    const n = report.problems.length;
    if (n === 0) {
      if (this.jsonEnabled()) return { ok: true, ...report, ...(repair && { repair }) };
      return this.log(`ok: ${counts} checked${repair ? ', after the repair' : ''}`);
    }
    // With --json, the error (printed by the base command) carries the whole report.
    if (!this.jsonEnabled()) this.listProblems(report);
    const problems = `${n} problem${n === 1 ? '' : 's'}`;
    const data = { ok: false, ...report, ...(repair && { repair }) };
    if (!repair) {
      throw new BtrflyError(
        'BODY_CORRUPT',
        `verify found ${problems} in ${counts}: run "btrfly verify --repair" to set the damaged copies aside and fetch them again from the archive's remotes`,
        { data },
      );
    }
    const kept = repair.asideDir ? `; the damaged copies are kept in ${repair.asideDir} (delete it once verify is clean)` : '';
    throw new BtrflyError(
      'BODY_CORRUPT',
      `verify --repair left ${problems} in ${counts}: no remote brought the bodies back: pull them from a remote that has them ("btrfly remote add NAME URL", then "btrfly verify --repair --from NAME"), or re-record the tags named above${kept}`,
      { data },
    );
  }

  private listProblems(report: VerifyReport): void {
    for (const p of report.problems) this.log(`${p.tag}${p.commit ? `@${p.commit.slice(0, 7)}` : ''}: ${p.message}`);
  }
}

/** What a repair did, a line a step. */
function describeRepair(r: RepairResult): string[] {
  const lines: string[] = [];
  const { loose, packed } = r.setAside;
  if (loose + packed) {
    const where = [loose && `${loose} loose`, packed && `${packed} from packs`].filter(Boolean).join(', ');
    lines.push(`set aside ${loose + packed} damaged object${loose + packed === 1 ? '' : 's'} (${where}) in ${r.asideDir}`);
  }
  if (r.absent && r.fetched.length === 0) lines.push(`${r.absent} object${r.absent === 1 ? ' is' : 's are'} absent and the archive has no remote to fetch ${r.absent === 1 ? 'it' : 'them'} from`);
  for (const f of r.fetched) {
    const came = r.absent ? `: ${f.restored} of the absent objects came back` : '';
    if (f.restored === 0 && f.error) lines.push(`could not fetch ${r.tags.join(', ')} again from ${f.remote}: ${f.error}`);
    else lines.push(`fetched ${r.tags.join(', ')} again from ${f.remote}${came}${f.error ? ` (${f.error})` : ''}`);
  }
  // A refetch brings whole tags, the objects this archive kept as well.
  if (r.fetched.some((f) => f.restored > 0 || !f.error)) lines.push('the fetch brought whole tags again: "btrfly gc" packs away the copies the archive already had');
  return lines;
}
