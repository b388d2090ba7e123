/**
 * What the HTTP bench sections share: a throw-away test CA and leaf made with openssl, an
 * nginx on loopback serving a directory over HTTPS, btrfly's own CLI run as a child with
 * its peak RSS (VmHWM) sampled from /proc, and curl timing a download. Everything listens
 * on 127.0.0.1 only; names under `.test` are pinned there with `--resolve`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
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

/** A test CA and one ECDSA P-256 leaf for {@link BENCH_NAMES}, made with openssl in `dir`. */
export async function makeBenchCa(dir: string): Promise<BenchCa> {
  await mkdir(dir, { recursive: true });
  const p = (f: string): string => join(dir, f);
  const ca: BenchCa = { caPath: p('ca.pem'), certPath: p('leaf.pem'), keyPath: p('leaf.key') };
  if (existsSync(ca.certPath)) return ca;
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await timed('openssl', ['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', ca.caPath, '-days', '30', '-subj', '/CN=btrfly bench CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await timed('openssl', ['req', ...ec, '-keyout', ca.keyPath, '-out', p('leaf.csr'), '-subj', '/CN=bench.test']);
  await writeFile(p('leaf.ext'), `subjectAltName=${BENCH_NAMES.map((n) => `DNS:${n}`).join(',')}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
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
  await waitForPort(port, child, () => stderr);
  return {
    port,
    origin: (name = BENCH_NAMES[0]) => `https://${name}:${port}`,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function waitForPort(port: number, child: ChildProcess, why: () => string): Promise<void> {
  const { connect } = await import('node:net');
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${why()}`);
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}: ${why()}`);
}

/** `--resolve` arguments for curl: every bench name at 127.0.0.1 on `port`. */
export function curlResolve(port: number): string[] {
  return BENCH_NAMES.flatMap((n) => ['--resolve', `${n}:${port}:127.0.0.1`]);
}

/** The curl `-w` format every download prints: bytes and seconds, one line a URL. */
export const CURL_WRITE_OUT = '%{size_download} %{time_total}\\n';

/** Downloads each URL to /dev/null with curl, `curlArgs` first; resolves with seconds per URL. */
export async function curlTimes(urls: string[], curlArgs: string[], env?: NodeJS.ProcessEnv): Promise<number[]> {
  const out = await timed('curl', ['-sS', '--fail', ...curlArgs, ...urls.flatMap((u) => ['-o', '/dev/null', '-w', CURL_WRITE_OUT.replace('\\n', '\n'), u])], env);
  return parseCurlTimes(out.stdout);
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
}

/** The `btrfly run` arguments (without the node binary) for these options, as a user would type them. */
export function btrflyRunArgs(o: Pick<BtrflyRunOptions, 'mode' | 'archive' | 'tag' | 'ca'>): string[] {
  const upstream = o.mode === 'record' ? [...BENCH_NAMES.flatMap((n) => ['--resolve', `${n}:127.0.0.1`]), '--upstream-ca', o.ca.caPath] : [];
  return ['run', '--archive', o.archive, `--${o.mode}`, '--tag', o.tag, ...upstream];
}

/** Runs `btrfly run ... -- COMMAND`; rejects when it exits non-zero. */
export function runBtrfly(o: BtrflyRunOptions): Promise<BtrflyRun> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    // BTRFLY_BENCH_CPU_PROF=DIR: each btrfly process writes a V8 CPU profile there (node --cpu-prof).
    const prof = process.env.BTRFLY_BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BTRFLY_BENCH_CPU_PROF] : [];
    const child = spawn(process.execPath, [...prof, BTRFLY_BIN, ...btrflyRunArgs(o), '--', ...o.command], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BTRFLY_CONFIG_DIR: o.configDir, ...o.extraEnv },
    });
    let stdout = '';
    let stderr = '';
    let hwmKiB = 0;
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const sample = (): void => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) hwmKiB = Math.max(hwmKiB, Number(m[1]));
      } catch {
        // exited between two samples: the last sample stands
      }
    };
    const timer = setInterval(sample, 20);
    child.on('error', (e) => (clearInterval(timer), reject(e)));
    child.on('exit', () => clearInterval(timer));
    child.on('close', (code, signal) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code === 0) resolve({ seconds, stdout, stderr, peakRssMiB: Math.round(hwmKiB / 1024) });
      else reject(new Error(`btrfly ${btrflyRunArgs(o).join(' ')} -- ${o.command.join(' ')} failed (${code ?? signal}): ${stderr.trim().slice(-2000)}`));
    });
  });
}

/** A shell command line for BENCHMARKS.md's "reproduce" column. */
export function shellLine(args: string[]): string {
  return args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** `YYYY-MM-DD HH:MM UTC`. */
export function nowUtc(): string {
  return `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** Median of the per-run ratios a/b, with min and max, as `**0.93×** (0.90–0.97)`. */
export function fmtRatio(ratios: number[]): string {
  const s = spread(ratios);
  return `**${s.median.toFixed(2)}×** (${s.min.toFixed(2)}–${s.max.toFixed(2)})`;
}

/** Collapses repeated blank lines of a section's Markdown. */
export function joinLines(lines: string[]): string {
  return lines.filter((l, i, a) => l !== '' || a[i - 1] !== '').join('\n');
}
