import { X509Certificate } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import * as https from 'node:https';
import * as path from 'node:path';
import { BtrflyError, oneLine } from '../../errors';
import { configDir } from '../base/config-dir';
import { readJsonAnswer } from './json-answer';
import { writePrivateFile } from '../base/private-file';

/** What `btrfly login` keeps in the user's config dir (0600): the service and the token for it. */
export interface Login {
  url: string;
  token: string;
  /** PEM of the CA that signed the API's certificate, when not one the system trusts. */
  caPem?: string;
}

const LOGIN_FILE = 'login.json';

export async function readLogin(env: NodeJS.ProcessEnv = process.env): Promise<Login | undefined> {
  try {
    return JSON.parse(await readFile(path.join(configDir(env), LOGIN_FILE), 'utf8')) as Login;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new BtrflyError('CONFIG', `cannot read ${path.join(configDir(env), LOGIN_FILE)}: ${oneLine(e)}: run "btrfly login URL --token T" again`);
  }
}

/** The PEM of `login --ca FILE`, or one line saying why it cannot be the service's CA. */
export async function readServiceCa(file: string): Promise<string> {
  const pem = await readFile(file, 'utf8').catch((e: unknown) => {
    throw new BtrflyError('USAGE', `cannot read --ca ${file}: ${oneLine(e)}: give the service's CA certificate ("btrfly ca export" on the service)`);
  });
  try {
    new X509Certificate(pem);
  } catch {
    throw new BtrflyError('USAGE', `--ca ${file} is not a PEM certificate: give the service's CA certificate ("btrfly ca export" on the service)`);
  }
  return pem;
}

/**
 * `btrfly login URL --token T`: checks the URL and the token against the service (one
 * authenticated call), then stores both with mode 0600. Returns the URL kept (its origin: what
 * was typed may hold a token in its query) and the file written.
 */
export async function login(login: Login, env: NodeJS.ProcessEnv = process.env): Promise<{ url: string; file: string; scopes: string[]; tags: string[] }> {
  let url: URL;
  try {
    url = new URL(login.url);
  } catch {
    throw new BtrflyError('USAGE', `"${login.url}" is not a URL: give the service's API URL, like https://btrfly.example:8443`);
  }
  if (url.protocol !== 'https:') throw new BtrflyError('USAGE', `the service API is HTTPS: use https://${url.host}`);
  // The token is the credential; a password in the URL would only be echoed back (and logged by CI).
  if (url.username || url.password) throw new BtrflyError('USAGE', `the service URL must not hold a user name or password (btrfly sends the token instead): use https://${url.host}`);
  const clean: Login = { url: url.origin, token: login.token, ...(login.caPem ? { caPem: login.caPem } : {}) };
  const st = await serviceRequest<{ token: { scopes: string[]; tags: string[] } }>(clean, 'GET', '/v1/status');
  const dir = configDir(env);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, LOGIN_FILE);
  await writePrivateFile(file, JSON.stringify(clean, null, 2) + '\n');
  return { url: clean.url, file, ...st.token };
}

/** One JSON call to the service's API with the login's bearer token; an error answer becomes a BtrflyError with the service's message. */
export function serviceRequest<T = unknown>(login: Login, method: string, urlPath: string, body?: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = { authorization: `Bearer ${login.token}`, accept: 'application/json' };
    if (payload) Object.assign(headers, { 'content-type': 'application/json', 'content-length': payload.length });
    const req = https.request(new URL(urlPath, login.url), { method, headers, ca: login.caPem, timeout: 600_000 }, (res) =>
      readJsonAnswer<T>(res, `the btrfly service at ${login.url}`, 'NETWORK').then(resolve, reject),
    );
    req.once('timeout', () => req.destroy(new Error('timed out')));
    req.once('error', (e) => reject(unreachable(login, e)));
    req.end(payload);
  });
}

/**
 * Why a call to the service failed before any answer, in words a build host can act on: Node's
 * own hints ("try running Node.js with --use-system-ca") are about Node, not btrfly.
 */
function unreachable(login: Login, e: NodeJS.ErrnoException): BtrflyError {
  const code = e.code ?? '';
  const where = `the btrfly service at ${login.url}`;
  if (/CERT|SELF_SIGNED|UNABLE_TO_(VERIFY|GET_ISSUER)/.test(code)) {
    const why = e.message.replace(/; if the root CA is installed locally.*$/, '');
    const fix = login.caPem
      ? 'the --ca given to "btrfly login" is not the CA that signed it: give the service\'s CA ("btrfly ca export" on the service)'
      : 'give "btrfly login" the service\'s CA with --ca FILE ("btrfly ca export" on the service), unless it has a certificate this host trusts';
    return new BtrflyError('NETWORK', `${where} has a certificate this host does not trust (${why}): ${fix}`);
  }
  if (code === 'EPROTO' || code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
    return new BtrflyError('NETWORK', `${where} did not answer in TLS (${code}): give the URL of the service's HTTPS API ("the API and the web UI on https://..." in the output of "btrfly serve"; port 8443 by default)`);
  }
  return new BtrflyError('NETWORK', `cannot reach ${where}: ${oneLine(e)}: check the URL ("btrfly login")`);
}
