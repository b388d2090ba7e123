import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import { BtrflyError, oneLine } from '../../errors';
import { configDir } from '../base/config-dir';

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
    checkConfig(file, configFile);
    const base = path.dirname(path.resolve(configFile));
    for (const k of ['archive', 'apiCert', 'apiKey', 'tokens'] as const) if (file[k]) file[k] = path.resolve(base, file[k]);
    file.upstreamCa = file.upstreamCa?.map((f) => path.resolve(base, f));
  }
  const defined = (o: Partial<ServeSettings>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && !(Array.isArray(v) && v.length === 0)));
  const merged = { ...DEFAULTS, archive: '.btrfly', tokens: defaultTokenStore(), ...defined(file), ...defined(flags) } as ServeSettings;
  return merged;
}

interface PropertySchema {
  description: string;
  examples: unknown[];
}
interface ConfigSchema {
  properties: Record<string, PropertySchema>;
}

let compiled: { schema: ConfigSchema; validate: ValidateFunction } | undefined;

/** docs/serve-config.schema.json (shipped in the npm package), compiled on first use; three levels above src/engine/service and dist/engine/service. */
function configSchema(): { schema: ConfigSchema; validate: ValidateFunction } {
  if (!compiled) {
    const schema = JSON.parse(readFileSync(path.join(__dirname, '..', '..', '..', 'docs', 'serve-config.schema.json'), 'utf8'));
    compiled = { schema, validate: new Ajv({ allErrors: true, strict: true }).compile(schema) };
  }
  return compiled;
}

/**
 * Checks a parsed config file against its JSON schema and throws one line for the first
 * problem: not an object, unknown keys (all of them, with the known ones), or a key whose
 * value is not what the schema says (`setting dnsPort in FILE is not a port number (an
 * integer from 0 to 65535): write "dnsPort": 53`).
 */
function checkConfig(file: unknown, configFile: string): void {
  const { schema, validate } = configSchema();
  if (validate(file)) return;
  const errors: ErrorObject[] = validate.errors ?? [];
  if (errors.some((e) => e.instancePath === '' && e.keyword === 'type')) {
    throw new BtrflyError('CONFIG', `the service config ${configFile} is not a JSON object of settings: write {"address": "10.0.0.5", ...}`);
  }
  const unknown = errors.filter((e) => e.keyword === 'additionalProperties').map((e) => String(e.params.additionalProperty));
  if (unknown.length) throw new BtrflyError('CONFIG', `unknown setting(s) ${unknown.join(', ')} in ${configFile}: use ${Object.keys(schema.properties).join(', ')}`);
  const key = errors[0].instancePath.split('/')[1];
  const expected = schema.properties[key];
  throw new BtrflyError('CONFIG', `setting ${key} in ${configFile} is not ${expected.description}: write "${key}": ${JSON.stringify(expected.examples[0])}`, {
    data: { key, got: (file as Record<string, unknown>)[key] },
  });
}

/** The token store `serve` and `token` use unless told otherwise: `<config dir>/tokens.json`. */
export function defaultTokenStore(env: NodeJS.ProcessEnv = process.env): string {
  return env.BTRFLY_TOKENS || path.join(configDir(env), 'tokens.json');
}
