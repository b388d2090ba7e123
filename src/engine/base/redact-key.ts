import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, linkSync, unlinkSync } from 'node:fs';
import * as path from 'node:path';
import { BtrflyError } from '../../errors';
import { configDir } from './config-dir';

/** A key in hex of at least 16 bytes: anything shorter (or not hex, which Buffer.from(…, 'hex') turns into nothing) keys no secret. */
const HEX_KEY = /^(?:[0-9a-fA-F]{2}){16,}$/;

/**
 * The key behind `--redact-query`: a query parameter's value is stored as an HMAC under it
 * and matched as one. It lives beside the CA in the user's config directory (0600), never in
 * the archive; `BTRFLY_REDACT_KEY` (hex) overrides it so that CI hosts can share one.
 * @throws BtrflyError USAGE (the variable) or CONFIG (the file) when it holds no key (empty, short or not
 * hex): an HMAC under an empty key is a plain hash, which a guess of the value would match.
 */
export function redactKey(dir: string = configDir(), env: NodeJS.ProcessEnv = process.env): Buffer {
  if (env.BTRFLY_REDACT_KEY !== undefined && env.BTRFLY_REDACT_KEY !== '') {
    if (!HEX_KEY.test(env.BTRFLY_REDACT_KEY)) {
      throw new BtrflyError('USAGE', 'BTRFLY_REDACT_KEY is not a key: give at least 16 bytes in hex (32 hex digits), e.g. the output of "openssl rand -hex 32"');
    }
    return Buffer.from(env.BTRFLY_REDACT_KEY, 'hex');
  }
  const file = path.join(dir, 'redact.key');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Written aside and linked into place: a crash never leaves an empty key, and two processes agree on one.
  const tmp = `${file}.${randomUUID()}`;
  writeFileSync(tmp, randomBytes(32).toString('hex'), { mode: 0o600 });
  try {
    linkSync(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    unlinkSync(tmp);
  }
  const hex = readFileSync(file, 'utf8').trim();
  if (!HEX_KEY.test(hex)) {
    throw new BtrflyError('CONFIG', `${file} is not a key (not 32 or more hex digits): restore it, or delete it to make a new one (recordings that redacted a query under the old key then miss those requests)`);
  }
  return Buffer.from(hex, 'hex');
}
