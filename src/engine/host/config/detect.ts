import { accessSync, constants as fsc, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { HostPaths, TrustStoreKind } from './types';

/**
 * Where each Linux trust store keeps local anchors, how it rebuilds the bundle, and how
 * it rebuilds it once an anchor is gone. Debian's `update-ca-certificates` does not
 * notice a deleted local anchor: without `--fresh` its /etc/ssl/certs links (name and
 * hash) stay behind, dangling (see docs/notes/host-config.md).
 */
export const TRUST_DEFAULTS: Record<Exclude<TrustStoreKind, 'macos' | 'none'>, { dir: string; update: string[]; remove: string[] }> = {
  debian: { dir: '/usr/local/share/ca-certificates', update: ['update-ca-certificates'], remove: ['update-ca-certificates', '--fresh'] },
  alpine: { dir: '/usr/local/share/ca-certificates', update: ['update-ca-certificates'], remove: ['update-ca-certificates'] },
  rhel: { dir: '/etc/pki/ca-trust/source/anchors', update: ['update-ca-trust', 'extract'], remove: ['update-ca-trust', 'extract'] },
};

/** macOS's system keychain, where host mode trusts the CA. */
export const MACOS_SYSTEM_KEYCHAIN = '/Library/Keychains/System.keychain';

/**
 * Finds the host's resolver file, state directory and trust store. Each can be
 * redirected: `BTRFLY_RESOLV_CONF`, `BTRFLY_STATE_DIR`, `BTRFLY_TRUST_KIND`,
 * `BTRFLY_TRUST_DIR` (alone it means kind `none`), `BTRFLY_TRUST_UPDATE` and
 * `BTRFLY_TRUST_REMOVE` (commands, split on spaces, or JSON arrays; the removal one
 * defaults to the update one), `BTRFLY_SYSTEMD_RESOLV_CONF`, `BTRFLY_OS_RELEASE`.
 */
export function detectHostPaths(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): HostPaths {
  const trust = detectTrustKind(env, platform);
  const defaults = trust === 'macos' || trust === 'none' ? undefined : TRUST_DEFAULTS[trust];
  const update = env.BTRFLY_TRUST_UPDATE ? parseCommand(env.BTRFLY_TRUST_UPDATE) : defaults?.update;
  const remove = env.BTRFLY_TRUST_REMOVE ? parseCommand(env.BTRFLY_TRUST_REMOVE) : env.BTRFLY_TRUST_UPDATE ? update : defaults?.remove;
  return {
    resolvConf: env.BTRFLY_RESOLV_CONF || '/etc/resolv.conf',
    stateDir: env.BTRFLY_STATE_DIR || (platform === 'darwin' ? '/var/db/btrfly' : '/var/lib/btrfly'),
    trust,
    ...(env.BTRFLY_TRUST_DIR || defaults ? { trustDir: env.BTRFLY_TRUST_DIR || defaults?.dir } : {}),
    ...(update ? { trustUpdateCommand: update } : {}),
    ...(remove ? { trustRemoveCommand: remove } : {}),
    systemdResolvConf: env.BTRFLY_SYSTEMD_RESOLV_CONF || '/run/systemd/resolve/resolv.conf',
    ...(trust === 'debian' && !env.BTRFLY_TRUST_UPDATE ? { debianCerts: DEBIAN_CERTS } : {}),
  };
}

/** Where Debian's `update-ca-certificates` writes, and its hooks (its own defaults). */
export const DEBIAN_CERTS = { dir: '/etc/ssl/certs', bundle: 'ca-certificates.crt', hooksDir: '/etc/ca-certificates/update.d' } as const;

function detectTrustKind(env: NodeJS.ProcessEnv, platform: NodeJS.Platform): TrustStoreKind {
  const forced = env.BTRFLY_TRUST_KIND as TrustStoreKind | undefined;
  if (forced && ['debian', 'rhel', 'alpine', 'macos', 'none'].includes(forced)) return forced;
  if (env.BTRFLY_TRUST_DIR) return 'none';
  if (platform === 'darwin') return 'macos';
  const osRelease = readOsRelease(env.BTRFLY_OS_RELEASE || '/etc/os-release');
  const ids = [osRelease.ID ?? '', ...(osRelease.ID_LIKE ?? '').split(/\s+/)].filter(Boolean);
  if (ids.includes('alpine')) return 'alpine';
  if (ids.some((id) => ['debian', 'ubuntu'].includes(id))) return 'debian';
  if (ids.some((id) => ['rhel', 'fedora', 'centos'].includes(id))) return 'rhel';
  // An unknown distribution: go by the tool it has.
  if (onPath('update-ca-trust', env)) return 'rhel';
  if (onPath('update-ca-certificates', env)) return 'debian';
  return 'none';
}

/** Parses os-release(5): KEY=value lines, values optionally quoted. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    out[m[1]] = m[2].replace(/^(["'])(.*)\1$/, '$2').replace(/\\(["'\\$`])/g, '$1');
  }
  return out;
}

function readOsRelease(file: string): Record<string, string> {
  for (const f of [file, '/usr/lib/os-release']) {
    try {
      return parseOsRelease(readFileSync(f, 'utf8'));
    } catch {
      // os-release(5): /etc/os-release may be absent; /usr/lib/os-release is the fallback.
    }
  }
  return {};
}

/** Whether an executable named `cmd` is on `env.PATH` (plus the sbin directories root has). */
export function onPath(cmd: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const dirs = [...(env.PATH ?? '').split(path.delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  return dirs.filter(Boolean).some((dir) => {
    try {
      accessSync(path.join(dir, cmd), fsc.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function parseCommand(value: string): string[] {
  const v = value.trim();
  if (v.startsWith('[')) return JSON.parse(v) as string[];
  return v.split(/\s+/);
}
