import { randomBytes } from 'node:crypto';
import { mkdirSync, openSync, readFileSync, writeSync, closeSync } from 'node:fs';
import * as path from 'node:path';
import { configDir } from './config-dir';

/**
 * The key behind `--redact-query`: a query parameter's value is stored as an HMAC under it
 * and matched as one. It lives beside the CA in the user's config directory (0600), never in
 * the archive; `BTRFLY_REDACT_KEY` (hex) overrides it so that CI hosts can share one.
 */
export function redactKey(dir: string = configDir(), env: NodeJS.ProcessEnv = process.env): Buffer {
  if (env.BTRFLY_REDACT_KEY) return Buffer.from(env.BTRFLY_REDACT_KEY, 'hex');
  const file = path.join(dir, 'redact.key');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    const fd = openSync(file, 'wx', 0o600);
    writeSync(fd, randomBytes(32).toString('hex'));
    closeSync(fd);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
}
