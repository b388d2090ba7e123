import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { BtrflyError } from '../../errors';
import { makeDirsSync, MakeDirError } from '../../format/make-dirs';

/**
 * btrfly's per-user configuration directory (the CA and its key live here, never in
 * the archive): `$BTRFLY_CONFIG_DIR`, else `$XDG_CONFIG_HOME/btrfly` (when absolute), else
 * `~/.config/btrfly` (the XDG default, also used on macOS so one path works everywhere).
 * Created with mode 0700 when missing.
 */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  // A relative XDG_CONFIG_HOME is invalid and ignored (XDG Base Directory spec): taken as it is,
  // the CA's private key went into a `relcfg/` of whatever directory btrfly ran in.
  const xdg = env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : undefined;
  const dir = env.BTRFLY_CONFIG_DIR || join(xdg || join(userHome(), '.config'), 'btrfly');
  try {
    makeDirsSync(dir, 0o700);
  } catch (e) {
    if (!(e instanceof MakeDirError)) throw e;
    throw new BtrflyError('CONFIG', `cannot create btrfly's config directory ${dir}: ${e.path === dir ? e.reason : e.message}: set BTRFLY_CONFIG_DIR to a directory that can be made`, { cause: e, data: { dir } });
  }
  return dir;
}

/**
 * The user's home directory: HOME, else the passwd database's entry. With neither (HOME unset
 * for a uid with no passwd entry: a container run with --user, a CI step with an empty
 * environment) os.homedir throws a SystemError; this says what to set instead.
 */
function userHome(): string {
  try {
    return homedir();
  } catch (e) {
    throw new BtrflyError('CONFIG', `no home directory for btrfly's config: HOME is unset and uid ${process.getuid?.() ?? '?'} has no passwd entry: set HOME, XDG_CONFIG_HOME or BTRFLY_CONFIG_DIR`, { cause: e });
  }
}
