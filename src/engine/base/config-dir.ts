import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * btrfly's per-user configuration directory (the CA and its key live here, never in
 * the archive): `$BTRFLY_CONFIG_DIR`, else `$XDG_CONFIG_HOME/btrfly`, else
 * `~/.config/btrfly` (the XDG default, also used on macOS so one path works everywhere).
 * Created with mode 0700 when missing.
 */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.BTRFLY_CONFIG_DIR || join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'btrfly');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}
