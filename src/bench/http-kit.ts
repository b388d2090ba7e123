/**
 * What the HTTP bench sections share: a throw-away test CA and leaf made with openssl, an
 * nginx on loopback serving a directory over HTTPS, btrfly's own CLI run as a child with
 * its peak RSS (VmHWM) sampled from /proc, and curl timing a download. Everything listens
 * on 127.0.0.1 only; names under `.test` are pinned there with `--resolve`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { spread, timed } from './section';

export const MiB = 1024 * 1024;

/** The compiled CLI entry point (bin/run.js re-execs itself in place, so its pid stays btrfly's). */
export const BTRFLY_BIN = join(__dirname, '..', '..', 'bin', 'run.js');

/** The host names the bench origins answer for (RFC 6761 `.test`, never real). */
export const BENCH_NAMES = ['bench.test', 'pkgs.test'] as const;

export interface BenchCa {
  caPath: string;
  certPath: string;
  keyPath: string;
}

/** A test CA and one ECDSA P-256 leaf for {@link BENCH_NAMES} and 127.0.0.1, made with openssl in `dir`. */
export async function makeBenchCa(dir: string): Promise<BenchCa> {
  await mkdir(dir, { recursive: true });
  const p = (f: string): string => join(dir, f);
  const ca: BenchCa = { caPath: p('ca.pem'), certPath: p('leaf.pem'), keyPath: p('leaf.key') };
  if (existsSync(ca.certPath)) return ca;
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await timed('openssl', ['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', ca.caPath, '-days', '30', '-subj', '/CN=btrfly bench CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await timed('openssl', ['req', ...ec, '-keyout', ca.keyPath, '-out', p('leaf.csr'), '-subj', '/CN=bench.test']);
  // 127.0.0.1 too, for a peer reached by address (the npm section's Verdaccio and its uplink).
  await writeFile(p('leaf.ext'), `subjectAltName=${BENCH_NAMES.map((n) => `DNS:${n}`).join(',')},IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  await timed('openssl', ['x509', '-req', '-in', p('leaf.csr'), '-CA', ca.caPath, '-CAkey', p('ca.key'), '-CAcreateserial', '-out', ca.certPath, '-days', '30', '-extfile', p('leaf.ext')]);
  return ca;
}

/** A free TCP port on loopback (closed again before it is returned). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Nginx {
  port: number;
  /** `https://NAME:PORT` for a bench name. */
  origin(name?: string): string;
  stop(): Promise<void>;
}

/**
 * nginx with one worker (a single process, as btrfly is) serving `root` over HTTPS (TLS 1.3)
 * on 127.0.0.1, access log off, keep-alive without a request limit.
 */
export async function startNginx(dir: string, root: string, ca: BenchCa): Promise<Nginx> {
  await mkdir(join(dir, 'tmp'), { recursive: true });
  const port = await freePort();
  // As root, nginx's workers would drop to "nobody", who cannot read a 0700 mkdtemp directory.
  const conf = join(dir, 'nginx.conf');
  const tmp = join(dir, 'tmp');
  await writeFile(
    conf,
    `${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'nginx-error.log')} warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  default_type application/octet-stream;
  types { application/json json; }
  client_body_temp_path ${tmp}/body; proxy_temp_path ${tmp}/proxy; fastcgi_temp_path ${tmp}/fcgi;
  uwsgi_temp_path ${tmp}/uwsgi; scgi_temp_path ${tmp}/scgi;
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate ${ca.certPath};
    ssl_certificate_key ${ca.keyPath};
    root ${root};
  }
}
`,
  );
  const child = spawn('nginx', ['-c', conf, '-p', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await waitForPort(port, child, { name: 'nginx', attempts: 100, everyMs: 50, why: () => stderr });
  return {
    port,
    origin: (name = BENCH_NAMES[0]) => `https://${name}:${port}`,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * Resolves once a TCP connection to 127.0.0.1:`port` is accepted, trying `attempts` times
 * `everyMs` apart; rejects as soon as `child` (`name`) has exited, or when the attempts are
 * used up, with `why()` (the child's stderr so far) in the message.
 */
export async function waitForPort(port: number, child: ChildProcess, o: { name: string; attempts: number; everyMs: number; why: () => string }): Promise<void> {
  for (let i = 0; i < o.attempts; i++) {
    if (child.exitCode !== null) throw new Error(`${o.name} exited: ${o.why()}`);
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, o.everyMs));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}: ${o.why()}`);
}

/**
 * Samples the peak resident set of process `pid` (VmHWM in /proc/PID/status) every `everyMs`
 * until `stop()`, which may be called more than once and returns the peak in MiB.
 */
export function samplePeakRss(pid: number | undefined, everyMs: number): { stop(): number } {
  let hwmKiB = 0;
  const timer = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) hwmKiB = Math.max(hwmKiB, Number(m[1]));
    } catch {
      // exited between two samples: the last sample stands
    }
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.round(hwmKiB / 1024);
    },
  };
}

/** `--resolve` arguments for curl: every bench name at 127.0.0.1 on `port`. */
export function curlResolve(port: number): string[] {
  return BENCH_NAMES.flatMap((n) => ['--resolve', `${n}:${port}:127.0.0.1`]);
}

/** The curl `-w` format every download prints: bytes and seconds, one line a URL. */
const CURL_WRITE_OUT = '%{size_download} %{time_total}\\n';

/** The curl command line downloading every URL to /dev/null, `curlArgs` first, one `bytes seconds` line each. */
export function curlCommand(urls: string[], curlArgs: string[] = []): string[] {
  return ['curl', '-sS', '--fail', ...curlArgs, ...urls.flatMap((u) => ['-o', '/dev/null', '-w', CURL_WRITE_OUT.replace('\\n', '\n'), u])];
}

/** Downloads each URL to /dev/null with curl, `curlArgs` first; resolves with seconds per URL. */
export async function curlTimes(urls: string[], curlArgs: string[], env?: NodeJS.ProcessEnv): Promise<number[]> {
  const [cmd, ...args] = curlCommand(urls, curlArgs);
  return parseCurlTimes((await timed(cmd, args, env)).stdout);
}

export function parseCurlTimes(stdout: string): number[] {
  return stdout
    .trim()
    .split('\n')
    .filter((l) => /^\d+ [\d.]+$/.test(l))
    .map((l) => Number(l.split(' ')[1]));
}

export interface BtrflyRun {
  /** Wall seconds of the whole `btrfly run`, start to exit. */
  seconds: number;
  stdout: string;
  stderr: string;
  /** Peak resident set of the btrfly process, MiB (VmHWM, sampled every 20 ms until it exits). */
  peakRssMiB: number;
}

export interface BtrflyRunOptions {
  mode: 'record' | 'playback';
  archive: string;
  tag: string;
  /** Directory for btrfly's CA (BTRFLY_CONFIG_DIR), shared by the section's runs. */
  configDir: string;
  ca: BenchCa;
  command: string[];
  extraEnv?: NodeJS.ProcessEnv;
  /** The environment btrfly starts from (before `BTRFLY_CONFIG_DIR` and `extraEnv`); default this process's. */
  baseEnv?: NodeJS.ProcessEnv;
  /** `btrfly run --isolate`: the command in its own network namespace. */
  isolate?: boolean;
}

/** The `btrfly run` arguments (without the node binary) for these options, as a user would type them. */
export function btrflyRunArgs(o: Pick<BtrflyRunOptions, 'mode' | 'archive' | 'tag' | 'isolate'> & { ca: Pick<BenchCa, 'caPath'> }): string[] {
  const upstream = o.mode === 'record' ? [...BENCH_NAMES.flatMap((n) => ['--resolve', `${n}:127.0.0.1`]), '--upstream-ca', o.ca.caPath] : [];
  return ['run', ...(o.isolate ? ['--isolate'] : []), '--archive', o.archive, `--${o.mode}`, '--tag', o.tag, ...upstream];
}

/** Runs `btrfly run ... -- COMMAND`; rejects when it exits non-zero. */
export function runBtrfly(o: BtrflyRunOptions): Promise<BtrflyRun> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    // BTRFLY_BENCH_CPU_PROF=DIR: each btrfly process writes a V8 CPU profile there (node --cpu-prof).
    const prof = process.env.BTRFLY_BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BTRFLY_BENCH_CPU_PROF] : [];
    const child = spawn(process.execPath, [...prof, BTRFLY_BIN, ...btrflyRunArgs(o), '--', ...o.command], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...(o.baseEnv ?? process.env), BTRFLY_CONFIG_DIR: o.configDir, ...o.extraEnv },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const rss = samplePeakRss(child.pid, 20);
    child.on('error', (e) => (rss.stop(), reject(e)));
    child.on('exit', () => rss.stop());
    child.on('close', (code, signal) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code === 0) resolve({ seconds, stdout, stderr, peakRssMiB: rss.stop() });
      else reject(new Error(`btrfly ${btrflyRunArgs(o).join(' ')} -- ${o.command.join(' ')} failed (${code ?? signal}): ${stderr.trim().slice(-2000)}`));
    });
  });
}

/** A shell command line for BENCHMARKS.md's "reproduce" column. */
export function shellLine(args: string[]): string {
  return args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** The `btrfly run` line of a "reproduce" column: scratch archive `A`, the test CA as `ca.pem`. */
export function btrflyRunLine(mode: BtrflyRunOptions['mode'], tag: string, command: string[], isolate = false): string {
  return shellLine(['btrfly', ...btrflyRunArgs({ mode, archive: 'A', tag, isolate, ca: { caPath: 'ca.pem' } }), '--', ...command]);
}

/** Median of the per-run ratios a/b, with min and max, as `**0.93×** (0.90–0.97)`. */
export function fmtRatio(ratios: number[]): string {
  const s = spread(ratios);
  return `**${s.median.toFixed(2)}×** (${s.min.toFixed(2)}–${s.max.toFixed(2)})`;
}
