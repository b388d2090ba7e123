import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cliEnv, runCli, spawnCli, type CliProcess } from './cli';
import { tmpDir } from './tmp';

/** `btrfly token create` against the store `tokens`; the token as printed. */
export async function createToken(tokens: string, scope: string, tags: string): Promise<string> {
  return (await runCli(['token', 'create', '--scope', scope, '--tags', tags, '--tokens', tokens])).stdout.trim();
}

/** Where a test's `btrfly serve` keeps its state, for {@link startService}. */
export interface ServiceDir {
  /** A fresh directory (removed at the end of the test file) that holds the config files. */
  work: string;
  /** `<work>/archive`, the archive the config names unless told otherwise. */
  archive: string;
  /** `<work>/tokens.json`, the token store the config names. */
  tokens: string;
  /** btrfly's CA in the tests' config dir ({@link cliEnv}): it signs the API's certificate. */
  caPath: string;
}

/** A fresh {@link ServiceDir} named `prefix…`. */
export function serviceDir(prefix: string): ServiceDir {
  const work = tmpDir(prefix);
  return { work, archive: join(work, 'archive'), tokens: join(work, 'tokens.json'), caPath: join(cliEnv().BTRFLY_CONFIG_DIR!, 'ca.pem') };
}

/** A `btrfly serve` started by {@link startService}; it is stopped at the end of the test file if still running. */
export interface StartedService {
  service: CliProcess;
  proxyPort: number;
  /** The API's (and the web UI's) base URL. */
  api: string;
  /** btrfly's CA certificate, which a client of the API trusts. */
  caPem: string;
}

/** serve's ready line names the proxy port and the API URL it bound (port 0 picks them). */
const READY = /proxy (\d+)\), the API and the web UI on (https:\/\/\S+) /;

let configs = 0;

/**
 * Starts `btrfly serve --config FILE ARGS` and waits until it listens. FILE is a new config
 * file in `dir.work` naming `dir`'s archive and token store and every listener on port 0,
 * then `settings` (which win); `env` is added to serve's environment.
 */
export async function startService(dir: ServiceDir, settings: Record<string, unknown>, args: readonly string[] = [], env: NodeJS.ProcessEnv = {}): Promise<StartedService> {
  const config = join(dir.work, `serve-${++configs}.json`);
  const ports = { dnsPort: 0, httpPort: 0, httpsPort: 0, proxyPort: 0, apiPort: 0 };
  await writeFile(config, JSON.stringify({ archive: 'archive', tokens: 'tokens.json', ...ports, ...settings }));
  const service = spawnCli(['serve', '--config', config, ...args], { env });
  await service.waitFor(READY);
  const [, port, api] = READY.exec(service.stderr)!;
  return { service, proxyPort: Number(port), api, caPem: await readFile(dir.caPath, 'utf8') };
}

/** The secret part of a token `btf_<id>_<secret>` (base64url, so it may hold `_` itself). */
export function tokenSecret(token: string): string {
  return token.slice(token.indexOf('_', 'btf_'.length) + 1);
}
