import { runCli, spawnCli, type CliProcess } from './cli';

/** `btrfly token create` against the store `tokens`; the token as printed. */
export async function createToken(tokens: string, scope: string, tags: string): Promise<string> {
  return (await runCli(['token', 'create', '--scope', scope, '--tags', tags, '--tokens', tokens])).stdout.trim();
}

/** serve's ready line names the proxy port and the API URL it bound (port 0 picks them). */
const READY = /proxy (\d+)\), the API and the web UI on (https:\/\/\S+) /;

/** Starts `btrfly serve ARGS` on loopback and waits until it listens. */
export async function startService(args: readonly string[]): Promise<{ service: CliProcess; proxyPort: number; api: string }> {
  const service = spawnCli(['serve', ...args]);
  await service.waitFor(READY);
  const [, port, api] = READY.exec(service.stderr)!;
  return { service, proxyPort: Number(port), api };
}

/** The secret part of a token `btf_<id>_<secret>` (base64url, so it may hold `_` itself). */
export function tokenSecret(token: string): string {
  return token.slice(token.indexOf('_', 'btf_'.length) + 1);
}
