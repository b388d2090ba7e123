import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { BtrflyError, oneLine } from '../errors';
import { configDir } from './config-dir';

/** `btrfly serve`'s settings: from flags, else the config file, else these defaults. */
export interface ServeSettings {
  archive: string;
  address: string;
  dnsPort: number;
  httpPort: number;
  httpsPort: number;
  proxyPort: number;
  apiAddress?: string;
  apiPort: number;
  apiCert?: string;
  apiKey?: string;
  tokens: string;
  upstreamDns: string[];
  resolve: string[];
  upstreamCa: string[];
  upstreamProxy?: string;
  /** Upstream addresses (CIDRs) record refuses, on top of the service's defaults. */
  denyUpstream: string[];
  /** Upstream addresses (CIDRs) record may reach even if denied. */
  allowUpstream: string[];
}

const DEFAULTS = { address: '127.0.0.1', dnsPort: 53, httpPort: 80, httpsPort: 443, proxyPort: 3128, apiPort: 8443, upstreamDns: [], resolve: [], upstreamCa: [], denyUpstream: [], allowUpstream: [] };

/**
 * Merges flags over a JSON config file (keys as in {@link ServeSettings}, e.g.
 * `{"address": "10.0.0.5", "upstreamDns": ["1.1.1.1"], "tokens": "/etc/btrfly/tokens.json"}`)
 * over the defaults. Relative paths in the file are relative to the file.
 */
export async function serveSettings(flags: Partial<ServeSettings>, configFile?: string): Promise<ServeSettings> {
  let file: Partial<ServeSettings> = {};
  if (configFile) {
    try {
      file = JSON.parse(await readFile(configFile, 'utf8')) as Partial<ServeSettings>;
    } catch (e) {
      throw new BtrflyError('CONFIG', `cannot read the service config ${configFile}: ${oneLine(e)}: it must be a JSON object of settings`);
    }
    if (typeof file !== 'object' || file === null || Array.isArray(file)) {
      throw new BtrflyError('CONFIG', `the service config ${configFile} is not a JSON object of settings: write {"address": "10.0.0.5", ...}`);
    }
    const known = new Set([...Object.keys(DEFAULTS), 'archive', 'apiAddress', 'apiCert', 'apiKey', 'tokens', 'upstreamProxy']);
    const unknown = Object.keys(file).filter((k) => !known.has(k));
    if (unknown.length) throw new BtrflyError('CONFIG', `unknown setting(s) ${unknown.join(', ')} in ${configFile}: use ${[...known].join(', ')}`);
    for (const k of ['upstreamDns', 'resolve', 'upstreamCa', 'denyUpstream', 'allowUpstream'] as const) {
      const v: unknown = file[k];
      if (v !== undefined && !(Array.isArray(v) && v.every((x) => typeof x === 'string'))) {
        throw new BtrflyError('CONFIG', `setting ${k} in ${configFile} is not a list of strings: write "${k}": ["..."]`);
      }
    }
    const base = path.dirname(path.resolve(configFile));
    for (const k of ['archive', 'apiCert', 'apiKey', 'tokens'] as const) if (file[k]) file[k] = path.resolve(base, file[k]);
    file.upstreamCa = file.upstreamCa?.map((f) => path.resolve(base, f));
  }
  const defined = (o: Partial<ServeSettings>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && !(Array.isArray(v) && v.length === 0)));
  const merged = { ...DEFAULTS, archive: '.btrfly', tokens: defaultTokenStore(), ...defined(file), ...defined(flags) } as ServeSettings;
  return merged;
}

/** The token store `serve` and `token` use unless told otherwise: `<config dir>/tokens.json`. */
export function defaultTokenStore(env: NodeJS.ProcessEnv = process.env): string {
  return env.BTRFLY_TOKENS || path.join(configDir(env), 'tokens.json');
}
