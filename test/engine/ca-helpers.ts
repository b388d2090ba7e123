import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as https from 'node:https';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { CertificateAuthority } from '../../src/engine/tls/ca';

/** A temporary directory removed by the returned cleanup. */
export function tempDir(prefix = 'btrfly-ca-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A real HTTPS server on 127.0.0.1:0 terminating TLS with the CA's certificates. It
 * answers `hello <servername>` on `/`, and 404 elsewhere (what git sees).
 */
export async function startHttpsServer(ca: CertificateAuthority, defaultName?: string): Promise<{ port: number; close: () => Promise<void> }> {
  const server = https.createServer(await ca.serverOptions(defaultName), (req, res) => {
    const name = (req.socket as TLSSocket).servername || '-';
    if (req.url === '/') res.end(`hello ${name}\n`);
    else res.writeHead(404).end('not here\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** Runs a program; resolves with its exit status and output, never rejects on a non-zero exit. */
export function run(
  file: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { env: opts.env ?? cleanEnv(), cwd: opts.cwd, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        if (err && typeof err.code === 'string') return reject(err); // ENOENT: the program is missing
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(opts.input ?? '');
  });
}

/** An environment with no proxy, CA bundle or user config leaking in from the host. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}, home = tmpdir()): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: home, LANG: 'C', GIT_CONFIG_NOSYSTEM: '1', ...extra };
}
