/**
 * Bench section "transfer": `btrfly push` and `btrfly pull` of a tag holding one large body
 * (random bytes) to and from a remote on a local path, against git itself moving the same bytes:
 * `git push` of a plain repository (git's defaults) holding the file in one commit, and
 * `git clone --bare file://` of that remote back. Each run pushes to a new empty remote and
 * pulls into a new archive; btrfly and git alternate.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { archiveChild, makeSource } from './archive';
import { BTRFLY_BIN, fmtRatio, MiB, samplePeakRss, shellLine } from './http-kit';
import { fmtSpread, joinLines, log, machineLine, spread, takenLine, timed, type BenchOptions, type BenchSection } from './section';

/** Runs by default: a run moves the body four times (~2 min for 1 GiB), and the whole bench keeps under 15 minutes. */
const DEFAULT_RUNS = 2;

interface Pair {
  btrfly: number[];
  git: number[];
  /** Peak RSS of the btrfly process per run, MiB. */
  rss: number[];
}

export const transferSection: BenchSection = {
  name: 'transfer',
  async run(opts: BenchOptions): Promise<string> {
    const sizeMiB = Number(opts.flags.get('size-mib') ?? 1024);
    const runs = Number(opts.flags.get('transfer-runs') ?? Math.min(opts.runs, DEFAULT_RUNS));
    const dir = opts.workDir;
    await mkdir(dir, { recursive: true });
    const before = machineLine();
    const env = { ...process.env, BTRFLY_CONFIG_DIR: join(dir, 'config') };
    const btrfly = async (...args: string[]): Promise<{ seconds: number; rssMiB: number }> => {
      let peak: ReturnType<typeof samplePeakRss> | undefined;
      const { seconds } = await timed(process.execPath, [BTRFLY_BIN, ...args], env, (c) => (peak = samplePeakRss(c.pid, 20)));
      return { seconds, rssMiB: peak!.stop() };
    };
    const timedBtrfly = async (p: Pair, ...args: string[]): Promise<void> => {
      const r = await btrfly(...args);
      p.btrfly.push(r.seconds);
      p.rss.push(r.rssMiB);
    };
    const git = (...args: string[]): Promise<{ seconds: number }> => timed('git', args);
    const gitIdentity = ['-c', 'user.name=bench', '-c', 'user.email=bench@localhost'];

    // The same bytes twice: a btrfly tag, and a plain repository with the file in one commit.
    const body = join(dir, 'body.bin');
    await makeSource(body, 'random', sizeMiB * MiB);
    const archive = join(dir, 'archive');
    await archiveChild(['tag', archive, body]);
    const plain = join(dir, 'plain');
    await git('init', '-q', plain);
    await timed('cp', [body, join(plain, 'body.bin')]);
    await git('-C', plain, 'add', 'body.bin');
    await git('-C', plain, ...gitIdentity, 'commit', '-q', '-m', 'the body');
    log(`transfer: ${sizeMiB} MiB in a btrfly tag and in a plain repository`);

    const push: Pair = { btrfly: [], git: [], rss: [] };
    const pull: Pair = { btrfly: [], git: [], rss: [] };
    try {
      for (let i = 0; i < runs; i++) {
        const remote = join(dir, `remote-${i}.git`);
        const plainRemote = join(dir, `plain-remote-${i}.git`);
        const pulled = join(dir, `pulled-${i}`);
        const cloned = join(dir, `cloned-${i}.git`);
        await git('init', '-q', '--bare', remote);
        await git('init', '-q', '--bare', plainRemote);
        await btrfly('remote', 'add', 'r', remote, '--archive', archive);
        await timedBtrfly(push, 'push', 'r', 'big', '--archive', archive);
        push.git.push((await git('-C', plain, 'push', '-q', plainRemote, 'HEAD:refs/heads/main')).seconds);
        await btrfly('remote', 'add', 'r', remote, '--archive', pulled);
        await timedBtrfly(pull, 'pull', 'r', 'big', '--archive', pulled);
        pull.git.push((await git('clone', '-q', '--bare', `file://${plainRemote}`, cloned)).seconds);
        await btrfly('remote', 'remove', 'r', '--archive', archive);
        log(`transfer run ${i + 1}: push btrfly ${push.btrfly[i].toFixed(1)} s, git ${push.git[i].toFixed(1)} s; pull btrfly ${pull.btrfly[i].toFixed(1)} s, git clone ${pull.git[i].toFixed(1)} s`);
        for (const d of [remote, plainRemote, pulled, cloned]) await rm(d, { recursive: true, force: true });
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }

    const mibs = (sec: number): string => (sizeMiB / sec).toFixed(0);
    const row = (what: string, p: Pair, ref: string, cmd: string): string => {
      const b = spread(p.btrfly);
      const g = spread(p.git);
      return `| ${what} | ${fmtSpread(b, 1)} | ${mibs(b.median)} | ${ref} | ${fmtSpread(g, 1)} | ${mibs(g.median)} | ${fmtRatio(p.btrfly.map((s, k) => p.git[k] / s))} | ${Math.max(...p.rss)} | ${cmd} |`;
    };
    return joinLines([
      '## Push and pull',
      '',
      `A tag holding one ${sizeMiB} MiB body of random bytes, \`btrfly push\` to a git remote on a local path (a new empty`,
      'bare repository each run) and `btrfly pull` of it into a new archive (fetched into quarantine refs, every body read',
      'back and checked against its SHA-256 before the tag moves), against git moving the same bytes: `git push` of a plain',
      "repository (git's defaults) holding the file in one commit to a new bare repository, and `git clone --bare file://`",
      `of that back (\`file://\` so that git runs its transport rather than hard-linking). Median of ${runs} runs (min–max),`,
      "alternating; the ratio is git's time over btrfly's, per run (≥ 1: btrfly is faster). Peak RSS is the btrfly",
      "process's VmHWM (sampled every 20 ms; the git processes it starts are not counted).",
      '',
      '| btrfly | btrfly s | btrfly MiB/s | reference | reference s | reference MiB/s | ratio | btrfly peak RSS MiB | reproduce (btrfly / reference) |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      row('push', push, '`git push`', `\`${shellLine(['btrfly', 'push', 'r', 'big'])}\` / \`git push R HEAD:refs/heads/main\``),
      row('pull', pull, '`git clone --bare file://`', `\`${shellLine(['btrfly', 'pull', 'r', 'big'])}\` / \`git clone --bare file://R C\``),
      '',
      `All rows: \`npm run bench -- transfer --size-mib ${sizeMiB} --transfer-runs ${runs}\`.`,
      '',
      "What limits it. Both sides are git's transport; what btrfly's archive saves is git's work on the bytes: its parts of",
      "8 MiB are stored loose without compression and kept out of delta search (docs/decisions.md, \"Archive storage\"), so",
      '`git push` packs them at `pack.compression=0` with nothing to compare, and the receiving side keeps the pack whole',
      "(`receive.unpackLimit=1`) instead of exploding it, where a plain repository pays zlib on every byte that does not",
      "compress. What remains is git's SHA-1 over every byte on both sides (pack-objects, index-pack) and, on a pull, btrfly",
      'reading every new body back and checking its SHA-256 (filling the body cache as it goes) before the tag moves.',
      '',
      takenLine(before),
    ]);
  },
};
