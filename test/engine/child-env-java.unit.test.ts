/**
 * The Java trust store a command-mode child gets (JAVA_TOOL_OPTIONS): made once with the JDK's
 * keytool per CA and kept in btrfly's config directory, so later runs do not start a JVM.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onPath } from '../../src/engine/host/config';
import { childEnvironment } from '../../src/engine/command/child-env';
import { testCa } from '../helpers';
import { testWhen } from '../helpers/when';

const withKeytool = testWhen(onPath('keytool') ? undefined : 'keytool (a JDK)');
const dir = (): string => mkdtempSync(join(tmpdir(), 'btrfly-javaenv-'));
const storeOf = (env: Record<string, string>): string => /-Djavax\.net\.ssl\.trustStore=(\S+)/.exec(env.JAVA_TOOL_OPTIONS)![1];

withKeytool('the trust store is made once per CA in the config directory and holds the CA', async () => {
  const cacheDir = dir();
  const caPem = readFileSync(testCa().caPath, 'utf8');
  const first = storeOf(await childEnvironment({ proxyUrl: 'http://t:p@127.0.0.1:3128', caPem, workDir: dir(), cacheDir }));
  expect(first.startsWith(cacheDir)).toBe(true);
  const made = statSync(first).mtimeMs;
  const t0 = Date.now();
  const second = storeOf(await childEnvironment({ proxyUrl: 'http://t:p@127.0.0.1:3128', caPem, workDir: dir(), cacheDir }));
  const reused = Date.now() - t0;
  expect(second).toBe(first);
  expect(statSync(second).mtimeMs).toBe(made);
  expect(reused).toBeLessThan(400); // no JVM started (keytool alone takes longer than that)
  const list = execFileSync('keytool', ['-list', '-storetype', 'PKCS12', '-keystore', second, '-storepass', 'changeit', '-rfc'], { encoding: 'utf8' });
  expect(list).toMatch(/Alias name: btrfly/);
  expect(list.replace(/\s/g, '')).toContain(caPem.replace(/-----[^-]+-----/g, '').replace(/\s/g, ''));
}, 60_000);
