import { join } from 'node:path';
import { stopChild, type Netns } from './netns';
import { askChild, readReadyLine, stderrTail } from './server-process';
import { testCa, type IssuedCert } from './test-ca';
import { tmpDir } from './tmp';
// Plain-JS fixtures, typed loosely here: they are also run as bare `node` processes.
/* eslint-disable @typescript-eslint/no-require-imports -- plain-JS fixtures without declaration files */
const { makeAptRepo } = require('../fixtures/apt-repo') as { makeAptRepo(root: string, pkgs: DebPackage[], work: string): { keyPath: string; debs: Record<string, string> } };
const { makeGoProxy } = require('../fixtures/goproxy') as { makeGoProxy(root: string, module: string, versions: string[]): void };
/* eslint-enable @typescript-eslint/no-require-imports */

/** The server of deb.test, goproxy.test, files.test and cdn.test (see its header). */
export const BUILD_ORIGINS_SCRIPT = join(__dirname, '..', 'fixtures', 'build-origins.js');
/** The build that downloads from them with apt, curl and go (see its header). */
export const BUILD_TOOLS_SCRIPT = join(__dirname, '..', 'fixtures', 'build-tools.sh');
/** The names build-origins.js answers for. */
export const BUILD_ORIGIN_NAMES = ['deb.test', 'files.test', 'cdn.test', 'goproxy.test'] as const;

export interface DebPackage {
  name: string;
  version: string;
  text?: string;
}

/** Content for the build origins, made at test time. */
export interface BuildOriginContent {
  /** Document root: `deb/` (apt repository) and `goproxy/` (Go module proxy). */
  root: string;
  /** The apt repository's public signing key, for `signed-by=`. */
  aptKey: string;
  /** The .deb files in the repository: file name → sha256. */
  debs: Record<string, string>;
  /** TLS certificate for every build origin name, from the test CA. */
  cert: IssuedCert;
}

/**
 * Builds the apt repository (two .deb packages, signed InRelease, by-hash indexes) and the
 * Go module proxy (example.test/greet v1.0.0 and v1.1.0).
 */
export function makeBuildOriginContent(packages: DebPackage[] = [
  { name: 'btrfly-hello', version: '1.0', text: 'hello from deb.test\n' },
  { name: 'btrfly-tools', version: '2.0' },
]): BuildOriginContent {
  const root = tmpDir('btrfly-build-origins-');
  const { keyPath, debs } = makeAptRepo(join(root, 'deb'), packages, tmpDir('btrfly-apt-work-'));
  makeGoProxy(join(root, 'goproxy'), 'example.test/greet', ['v1.0.0', 'v1.1.0']);
  return { root, aptKey: keyPath, debs, cert: testCa().issue([...BUILD_ORIGIN_NAMES, 'git.test']) };
}

/** The command line that runs build-origins.js on `host`, ports 80 and 443. */
export function buildOriginsArgs(content: BuildOriginContent, host: string): string[] {
  return [BUILD_ORIGINS_SCRIPT, '--host', host, '--root', content.root, '--cert', content.cert.certPath, '--key', content.cert.keyPath];
}

export interface BuildOriginStats {
  total: number;
  byHost: Record<string, number>;
  requests: { host: string; method: string; url: string }[];
}

/** Build origins running as a process inside a namespace. */
export interface BuildOrigins {
  stats(): Promise<BuildOriginStats>;
  close(): Promise<void>;
}

/** Starts build-origins.js inside `ns` on `host`:80 and :443. */
export async function startBuildOrigins(ns: Netns, host: string, content: BuildOriginContent): Promise<BuildOrigins> {
  const child = ns.spawn(process.execPath, buildOriginsArgs(content, host), { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  await readReadyLine(child, stderrTail(child), 'build origins');
  const ask = askChild<{ stats: BuildOriginStats }>(child);
  return { stats: async () => (await ask('stats')).stats, close: () => stopChild(child) };
}
