/**
 * Bench section "host": host mode's `btrfly start record --tag T` and `btrfly stop record` of an
 * empty recording, each against the 3 s target, with what a naive implementation pays measured
 * side by side: `update-ca-certificates` after adding the CA, and `--fresh` after removing it.
 * Every run is made in its own private mount and network namespace (`unshare --mount --net`)
 * over copies of this machine's resolver and Debian trust store, bind-mounted over the real ones,
 * so the machine's own files are never touched; after each btrfly run every copied file must be
 * byte for byte as before, or the section fails. `--base DIR` also runs another checkout's CLI
 * (its `bin/run.js`, built) in the same rounds, for an A/B in the same minute.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, lstat, mkdir, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { onPath } from '../engine/host/config/detect';
import { BTRFLY_BIN } from './http-kit';
import { fmtSpread, joinLines, log, machineLine, spread, takenLine, timed, type BenchOptions, type BenchSection } from './section';

const RESOLV = '/etc/resolv.conf';
const TRUST = '/usr/local/share/ca-certificates';
const CERTS = '/etc/ssl/certs';
/** Run with `+PEM`/`-PEM` by btrfly and the tool alike; masked by an empty directory (Java's hook writes dpkg state outside the copies). */
const HOOKS = '/etc/ca-certificates/update.d';
const TARGET_S = 3;

/** What this machine lacks for the section: root, a tool, a Debian trust store. */
function missing(): string[] {
  return [
    process.getuid?.() === 0 ? '' : 'root',
    ...['unshare', 'mount', 'ip', 'update-ca-certificates', 'openssl', 'getconf'].filter((c) => !onPath(c)),
    existsSync(TRUST) && existsSync(CERTS) ? '' : `a Debian trust store (${TRUST}, ${CERTS})`,
  ].filter(Boolean);
}

/** Path (relative to `dir`) → type, mode and content digest: what "byte for byte as before" compares. */
async function tree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of (await readdir(dir, { recursive: true })).sort()) {
    const p = join(dir, name);
    const st = await lstat(p);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out.set(name, `link -> ${await readlink(p)}`);
    else if (st.isDirectory()) out.set(name, `dir ${mode}`);
    else out.set(name, `file ${mode} ${st.uid}:${st.gid} ${createHash('sha256').update(await readFile(p)).digest('hex')}`);
  }
  return out;
}

/** The paths whose entry differs between two {@link tree}s. */
function differences(before: Map<string, string>, after: Map<string, string>): string[] {
  const names = new Set([...before.keys(), ...after.keys()]);
  return [...names].filter((n) => before.get(n) !== after.get(n)).sort();
}

/** Copies of the resolver and the trust store under `dir`, and the script lines that bind-mount them over the real ones. */
async function copiesOfHost(dir: string): Promise<string[]> {
  await mkdir(join(dir, 'hooks'), { recursive: true });
  await writeFile(join(dir, 'resolv.conf'), await readFile(RESOLV), { mode: 0o644 });
  await cp(TRUST, join(dir, 'local'), { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  await cp(CERTS, join(dir, 'certs'), { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  return [
    'set -eu',
    `mount --bind ${dir}/resolv.conf ${RESOLV}`,
    `mount --bind ${dir}/local ${TRUST}`,
    `mount --bind ${dir}/certs ${CERTS}`,
    existsSync(HOOKS) ? `mount --bind ${dir}/hooks ${HOOKS}` : 'true',
    'ip link set lo up',
    "TIMEFORMAT='%3R %3U %3S'",
  ];
}

/** Runs the script lines with bash in a fresh mount and network namespace; rejects with its output on a failure. */
function inNamespace(lines: string[]): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn('unshare', ['--mount', '--net', '--propagation', 'private', 'bash', '-c', lines.join('\n')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? done() : fail(new Error(`host section: the namespace script failed (${code}): ${out.trim().slice(-2000)}`))));
  });
}

/** `time`'s `real user sys` line, as wall and CPU seconds. */
async function readTime(file: string): Promise<{ wall: number; cpu: number }> {
  const [real, user, sys] = (await readFile(file, 'utf8')).trim().split(/\s+/).slice(-3).map(Number);
  return { wall: real, cpu: user + sys };
}

/** One CLI measured: a checkout's `bin/run.js`, with its own state, config and archive. */
interface Side {
  label: string;
  bin: string;
  dir: string;
  start: number[];
  stop: number[];
  /** CPU seconds of the `start` CLI plus the daemon it started, up to the moment `stop` begins. */
  startCpu: number[];
  stopCpu: number[];
  restored: string;
}

function side(label: string, bin: string, dir: string): Side {
  return { label, bin, dir, start: [], stop: [], startCpu: [], stopCpu: [], restored: '' };
}

/** One `btrfly start record` / `stop record` of an empty recording in a namespace over `copies`. */
async function hostRound(s: Side, mounts: string[], tag: string): Promise<{ start: number; stop: number; startCpu: number; stopCpu: number; restored: string }> {
  const d = s.dir;
  const cli = `"${process.execPath}" "${s.bin}"`;
  const daemonPid = `"${process.execPath}" -p "require('${d}/state/daemon.json').pid"`;
  await rm(join(d, 'out'), { recursive: true, force: true });
  await mkdir(join(d, 'out'));
  await inNamespace([
    ...mounts,
    `export BTRFLY_STATE_DIR=${d}/state BTRFLY_CONFIG_DIR=${d}/config`,
    // A daemon a failed run left behind is stopped with the namespace's script.
    `trap '[ ! -f ${d}/state/daemon.json ] || kill "$(${daemonPid})" 2>/dev/null || true' EXIT`,
    `{ time ${cli} start record --tag=${tag} --archive ${d}/archive > ${d}/out/start.log 2>&1; } 2> ${d}/out/start.time || { cat ${d}/out/start.log; exit 1; }`,
    // The daemon's CPU ticks (utime + stime of /proc/PID/stat) once start has returned.
    `stat=$(cat /proc/$(${daemonPid})/stat); set -- \${stat##*) }; echo "$((\${12} + \${13})) $(getconf CLK_TCK)" > ${d}/out/daemon.cpu`,
    `{ time ${cli} stop record > ${d}/out/stop.log 2>&1; } 2> ${d}/out/stop.time || { cat ${d}/out/stop.log; exit 1; }`,
  ]);
  const start = await readTime(join(d, 'out', 'start.time'));
  const stop = await readTime(join(d, 'out', 'stop.time'));
  const [ticks, hz] = (await readFile(join(d, 'out', 'daemon.cpu'), 'utf8')).trim().split(' ').map(Number);
  const restored = /^btrfly: restored (.*)$/m.exec(await readFile(join(d, 'out', 'stop.log'), 'utf8'))?.[1] ?? '';
  return { start: start.wall, stop: stop.wall, startCpu: start.cpu + ticks / hz, stopCpu: stop.cpu, restored };
}

/** The naive way: the CA's anchor added and `update-ca-certificates`; removed and `update-ca-certificates --fresh`. */
async function referenceRound(dir: string, mounts: string[], caPem: string): Promise<{ add: number; remove: number; addCpu: number; removeCpu: number }> {
  await inNamespace([
    ...mounts,
    `cp ${caPem} ${TRUST}/btrfly-ca.crt`,
    `{ time update-ca-certificates > ${dir}/add.log 2>&1; } 2> ${dir}/add.time`,
    `rm ${TRUST}/btrfly-ca.crt`,
    `{ time update-ca-certificates --fresh > ${dir}/remove.log 2>&1; } 2> ${dir}/remove.time`,
  ]);
  const add = await readTime(join(dir, 'add.time'));
  const remove = await readTime(join(dir, 'remove.time'));
  return { add: add.wall, remove: remove.wall, addCpu: add.cpu, removeCpu: remove.cpu };
}

export const hostSection: BenchSection = {
  name: 'host',
  async run(opts: BenchOptions): Promise<string> {
    const dir = opts.workDir;
    await mkdir(dir, { recursive: true });
    const before = machineLine();
    const lacking = missing();
    if (lacking.length) {
      const line = `Host mode could not be measured here: it needs ${lacking.join(', ')}.`;
      if (process.env.CI) throw new Error(`host section: ${line}`);
      return joinLines(['## Host mode start and stop', '', line, '', takenLine(before)]);
    }
    const baseDir = opts.flags.get('base');
    const sides = [side('this checkout', BTRFLY_BIN, join(dir, 'new'))];
    if (baseDir) sides.push(side(`base (${baseDir})`, join(resolve(baseDir), 'bin', 'run.js'), join(dir, 'base')));
    const copies = join(dir, 'copies');
    const mounts = await copiesOfHost(copies);
    const refDir = join(dir, 'reference');
    const refMounts = await copiesOfHost(join(refDir, 'copies'));
    const caPem = join(dir, 'ca.pem');
    for (const s of sides) {
      await mkdir(s.dir, { recursive: true });
      const env = { ...process.env, BTRFLY_CONFIG_DIR: join(s.dir, 'config') };
      // The CA and the archive exist before the first run, as on any host after its first session.
      await timed(process.execPath, [s.bin, 'ca', 'export', '-o', caPem], env);
      await timed(process.execPath, [s.bin, 'init', '--archive', join(s.dir, 'archive')], env);
    }
    const original = await tree(copies);
    const fileCount = [...original.values()].filter((v) => !v.startsWith('dir')).length;
    const check = async (who: string): Promise<void> => {
      const changed = differences(original, await tree(copies));
      if (changed.length) throw new Error(`host section: after ${who}'s stop, ${changed.length} copied file(s) differ from before: ${changed.slice(0, 10).join(', ')}`);
    };
    const ref = { add: [] as number[], remove: [] as number[], addCpu: [] as number[], removeCpu: [] as number[] };
    try {
      // One unmeasured round first: the page cache and each side's daemon log warmed alike.
      for (let i = 0; i <= opts.runs; i++) {
        for (const s of sides) {
          const r = await hostRound(s, mounts, `host-${i}`);
          await check(s.label);
          s.restored = r.restored;
          if (i === 0) continue;
          s.start.push(r.start);
          s.stop.push(r.stop);
          s.startCpu.push(r.startCpu);
          s.stopCpu.push(r.stopCpu);
        }
        const r = await referenceRound(refDir, refMounts, caPem);
        if (i === 0) continue;
        ref.add.push(r.add);
        ref.remove.push(r.remove);
        ref.addCpu.push(r.addCpu);
        ref.removeCpu.push(r.removeCpu);
        log(`host run ${i}: ${sides.map((s) => `${s.label} start ${s.start[i - 1].toFixed(2)} s, stop ${s.stop[i - 1].toFixed(2)} s`).join('; ')}; update-ca-certificates ${r.add.toFixed(2)} s, --fresh ${r.remove.toFixed(2)} s`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const [main] = sides;
    const verdict = (v: number[]): string => (spread(v).median <= TARGET_S ? `≤ ${TARGET_S} s: met` : `≤ ${TARGET_S} s: **missed**`);
    const rows = sides.flatMap((s) => [
      `| \`btrfly start record --tag=host-N\`${sides.length > 1 ? `, ${s.label}` : ''} | ${fmtSpread(spread(s.start))} | ${fmtSpread(spread(s.startCpu))} | ${verdict(s.start)} |`,
      `| \`btrfly stop record\`${sides.length > 1 ? `, ${s.label}` : ''} | ${fmtSpread(spread(s.stop))} | ${fmtSpread(spread(s.stopCpu))} | ${verdict(s.stop)} |`,
    ]);
    return joinLines([
      '## Host mode start and stop',
      '',
      '`sudo btrfly start record --tag=host-N` (the daemon started, its session open, `/etc/resolv.conf` pointed at',
      'it, its CA added to the Debian trust store) and `sudo btrfly stop record` of the empty recording (sealed, the',
      'daemon stopped, the host put back), each run in its own `unshare --mount --net` namespace over copies of this',
      `machine's \`${RESOLV}\`, \`${TRUST}\` and \`${CERTS}\` (${fileCount} files),`,
      `bind-mounted over the real ones; \`${HOOKS}\` is masked by an empty directory for btrfly and the`,
      'reference alike. The CA and the archive exist beforehand, as after a host\'s first session. Wall seconds, median',
      `of ${opts.runs} runs (min–max) after one unmeasured round; CPU seconds are the CLI's, and for start also the daemon's`,
      'up to the moment `start` returned. The reference, measured in the same rounds, is what a naive implementation',
      'pays for the trust store alone.',
      '',
      '| step | wall seconds | CPU seconds | target |',
      '| --- | --- | --- | --- |',
      ...rows,
      `| reference: \`update-ca-certificates\` with the CA's anchor added | ${fmtSpread(spread(ref.add))} | ${fmtSpread(spread(ref.addCpu))} | – |`,
      `| reference: \`update-ca-certificates --fresh\` with it removed | ${fmtSpread(spread(ref.remove))} | ${fmtSpread(spread(ref.removeCpu))} | – |`,
      '',
      'Each `btrfly stop record` restored:',
      ...(main.restored ? main.restored.split(', ').map((f) => `- \`${f}\``) : ['- nothing']),
      '',
      `and after every run all ${fileCount} copied files were byte for byte as before (type, mode, owner, content; the`,
      'section fails otherwise).',
      '',
      `All rows: \`npm run bench -- host --runs ${opts.runs}${baseDir ? ' --base DIR' : ''}\` (needs root; the machine's own files are not touched).`,
      '',
      takenLine(before),
    ]);
  },
};
