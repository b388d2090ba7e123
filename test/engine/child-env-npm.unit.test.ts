/**
 * The CAs a command-mode child is told to trust: npm (npm_config_cafile, which pnpm, yarn 1 and
 * node-gyp read too) gets btrfly's CA alone, since npm pays for every CA in that file on each
 * request; every other tool gets the system's CAs plus btrfly's (docs/decisions.md, "npm through btrfly").
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childEnvironment, systemCaPem } from '../../src/engine/command/child-env';
import { testCa } from '../helpers';

const dir = (): string => mkdtempSync(join(tmpdir(), 'btrfly-npmenv-'));
/** The fingerprints of the certificates in a PEM file, in order. */
const fingerprints = (file: string): string[] =>
  (readFileSync(file, 'utf8').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map((pem) => new X509Certificate(pem).fingerprint256);

test("npm's CA file holds btrfly's CA alone; the bundle the other tools read holds the system's CAs and btrfly's", async () => {
  const caPem = readFileSync(testCa().caPath, 'utf8');
  const ca = new X509Certificate(caPem).fingerprint256;
  const env = await childEnvironment({ proxyUrl: 'http://t:p@127.0.0.1:3128', caPem, workDir: dir(), cacheDir: dir() });
  expect(fingerprints(env.npm_config_cafile)).toEqual([ca]);
  const system = (systemCaPem().match(/-----BEGIN CERTIFICATE-----/g) ?? []).length;
  for (const name of ['NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'CURL_CA_BUNDLE']) {
    const bundle = fingerprints(env[name]);
    expect(bundle).toHaveLength(system + 1);
    expect(bundle[bundle.length - 1]).toBe(ca);
  }
  expect(system).toBeGreaterThan(0); // a machine with no system CAs would make the bundle check vacuous
});
