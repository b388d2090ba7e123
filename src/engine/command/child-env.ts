import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, rename, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { promisify } from 'node:util';
import { configEnv } from '../../format/git-process';
import { configDir } from '../base/config-dir';

/** Where distributions keep the system CA bundle, most common first. */
const SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/cert.pem'];

/**
 * The environment a command-mode child gets (docs/contract.md, "Trust and proxy settings"): proxy variables in both cases,
 * `NO_PROXY` for loopback, and a CA bundle (the system's CAs plus btrfly's) under every name
 * common tools read. Java gets its proxy and a PKCS#12 trust store through JAVA_TOOL_OPTIONS.
 *
 * npm's `cafile` (`npm_config_cafile`, also read by pnpm, yarn 1 and node-gyp) names btrfly's CA
 * alone: npm sends every request of the run through the proxy, whose leaves that CA signs, and
 * it pays for each CA it is given on every request (its agent keys its caches by the joined
 * list) and every connection (a secure context of its own); with the 144 system CAs that was
 * ~0.5 ms of npm's CPU a request (docs/decisions.md, "npm through btrfly").
 */
export async function childEnvironment(opts: { proxyUrl: string; caPem: string; workDir: string; cacheDir?: string }): Promise<Record<string, string>> {
  const bundle = path.join(opts.workDir, 'ca-bundle.pem');
  await writeFile(bundle, systemCaPem() + '\n' + opts.caPem, { mode: 0o644 });
  const caFile = path.join(opts.workDir, 'btrfly-ca.pem');
  await writeFile(caFile, opts.caPem, { mode: 0o644 });
  const proxy = new URL(opts.proxyUrl);
  const noProxy = 'localhost,127.0.0.1,::1';
  const env: Record<string, string> = {
    HTTP_PROXY: opts.proxyUrl,
    HTTPS_PROXY: opts.proxyUrl,
    http_proxy: opts.proxyUrl,
    https_proxy: opts.proxyUrl,
    NO_PROXY: noProxy,
    no_proxy: noProxy,
    SSL_CERT_FILE: bundle,
    NODE_EXTRA_CA_CERTS: bundle,
    NODE_USE_ENV_PROXY: '1',
    REQUESTS_CA_BUNDLE: bundle,
    PIP_CERT: bundle,
    CURL_CA_BUNDLE: bundle,
    GIT_SSL_CAINFO: bundle,
    CARGO_HTTP_CAINFO: bundle,
    npm_config_cafile: caFile,
    npm_config_proxy: opts.proxyUrl,
    npm_config_https_proxy: opts.proxyUrl,
    // A `noproxy` (the user's .npmrc, or npm_config_noproxy) sent those hosts around btrfly.
    npm_config_noproxy: noProxy,
    // pip takes a `proxy` from the user's pip.conf over the proxy variables, and went around
    // btrfly with one; its own variable wins over the file.
    PIP_PROXY: opts.proxyUrl,
  };
  // npm reads its settings from the environment in any case, and took the user's upper-case
  // NPM_CONFIG_PROXY over btrfly's npm_config_proxy: every variant the user set gets btrfly's value.
  for (const name of Object.keys(process.env)) {
    const own = name.toLowerCase();
    if (own !== name && (own === 'npm_config_proxy' || own === 'npm_config_https_proxy' || own === 'npm_config_noproxy')) env[name] = env[own];
  }
  const javaStore = await javaTrustStore(opts.caPem, caFile, opts.workDir, opts.cacheDir ?? configDir());
  const java = [
    `-Dhttp.proxyHost=${proxy.hostname}`,
    `-Dhttp.proxyPort=${proxy.port}`,
    `-Dhttps.proxyHost=${proxy.hostname}`,
    `-Dhttps.proxyPort=${proxy.port}`,
    '-Dhttp.nonProxyHosts=localhost|127.0.0.1',
    ...(javaStore ? [`-Djavax.net.ssl.trustStore=${javaStore}`, '-Djavax.net.ssl.trustStoreType=PKCS12', '-Djavax.net.ssl.trustStorePassword=changeit'] : []),
  ];
  env.JAVA_TOOL_OPTIONS = [process.env.JAVA_TOOL_OPTIONS, ...java].filter(Boolean).join(' ');
  // git takes `http.proxy` from the user's config over the proxy variables: with one in
  // ~/.gitconfig (a corporate proxy) the build's git went around btrfly, unrecorded, and to the
  // network in playback. Given after the user's own GIT_CONFIG_* entries, btrfly's wins.
  Object.assign(env, configEnv([['http.proxy', opts.proxyUrl]]));
  return env;
}

/** The system's trusted CAs in PEM: the distribution's bundle file, else what Node reads from the system. */
export function systemCaPem(): string {
  for (const file of SYSTEM_BUNDLES) if (existsSync(file)) return readFileSync(file, 'utf8');
  try {
    return tls.getCACertificates('system').join('\n');
  } catch {
    return '';
  }
}

/**
 * A PKCS#12 trust store holding btrfly's CA, made with the JDK's keytool when there is one. It
 * holds only the CA's certificate, so it is kept in btrfly's config directory beside the CA,
 * named by the certificate's digest, and made once: keytool starts a JVM, ~0.75 s of every
 * run's start-up here when it ran each time.
 */
async function javaTrustStore(caPem: string, pem: string, workDir: string, cacheDir: string): Promise<string | undefined> {
  const store = path.join(cacheDir, `java-truststore-${createHash('sha256').update(caPem).digest('hex').slice(0, 16)}.p12`);
  if (existsSync(store)) return store;
  const tmp = path.join(workDir, 'btrfly-truststore.p12');
  try {
    await promisify(execFile)('keytool', ['-importcert', '-noprompt', '-storetype', 'PKCS12', '-keystore', tmp, '-storepass', 'changeit', '-alias', 'btrfly', '-file', pem], { timeout: 30_000 });
  } catch {
    return undefined;
  }
  // Made beside the run, moved into place whole: two runs at once each move a complete store.
  try {
    await copyFile(tmp, `${store}.p${process.pid}`);
    await rename(`${store}.p${process.pid}`, store);
    return store;
  } catch {
    return tmp;
  }
}
