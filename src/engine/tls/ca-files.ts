import { KeyObject, X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { type Stats, promises as fs } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BtrflyError } from '../../errors';
import { isNoSpace } from '../../format/lifecycle';
import { createCaCertificate, generateKeyPair } from './cert-issuer';
import { checkPrivateMode } from '../base/private-file';

/** The CA as stored in the config directory. */
export interface CaFiles {
  dir: string;
  certPath: string;
  keyPath: string;
  certPem: string;
  privateKey: KeyObject;
}

/** How long a process that lost the creation race waits for the winner's `ca.pem`. */
const PEER_WAIT_MS = 5000;

/**
 * Loads `ca.pem` and `ca-key.pem` from `dir`, creating them on first use. Creation is
 * atomic across processes: both files are written under temporary names, and the key is
 * hard-linked into place (fails if it exists, so exactly one process wins) before the
 * certificate is renamed beside it; a loser waits for the winner's certificate.
 */
export async function loadOrCreateCaFiles(dir: string): Promise<CaFiles> {
  const certPath = join(dir, 'ca.pem');
  const keyPath = join(dir, 'ca-key.pem');
  if (!(await exists(keyPath))) {
    // Creation links the key before it renames the certificate, so a certificate without its key
    // is no creation under way: the key was lost. A new CA would replace the one hosts trust, silently.
    if (await exists(certPath)) {
      throw new BtrflyError('CONFIG', `CA key ${keyPath} is missing but its certificate ${certPath} exists: restore ca-key.pem, or delete ca.pem to create a new CA (then trust the new one where the old one was)`, {
        data: { certPath, keyPath },
      });
    }
    await createCaFiles(dir, certPath, keyPath);
  }
  const keyStat = await checkKeyMode(keyPath);
  const privateKey = parseKey(await fs.readFile(keyPath, 'utf8'), keyPath);
  const deadline = Date.now() + PEER_WAIT_MS;
  for (;;) {
    const checked = await checkPair(certPath, keyPath, privateKey);
    if ('certPem' in checked) return { dir, certPath, keyPath, certPem: checked.certPem, privateKey };
    // A process that just linked a new key may not have renamed its certificate yet.
    const fresh = Date.now() - keyStat.mtimeMs < PEER_WAIT_MS;
    if (!checked.transient || !fresh || Date.now() > deadline) throw new BtrflyError('CONFIG', checked.problem, { data: { certPath, keyPath } });
    await sleep(50);
  }
}

async function createCaFiles(dir: string, certPath: string, keyPath: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const keys = generateKeyPair('ec');
  const certPem = await createCaCertificate(keys, `btrfly CA (${hostname()})`);
  const suffix = `${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const tmpKey = join(dir, `.ca-key.pem.${suffix}`);
  const tmpCert = join(dir, `.ca.pem.${suffix}`);
  try {
    await fs.writeFile(tmpKey, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    await fs.writeFile(tmpCert, certPem, { mode: 0o644, flag: 'wx' });
    try {
      await fs.link(tmpKey, keyPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return; // another process won; use its CA
      throw e;
    }
    await fs.rename(tmpCert, certPath);
  } catch (e) {
    // Said of the config directory: the caller would otherwise take it for the archive's disk.
    if (isNoSpace(e)) throw new BtrflyError('NO_SPACE', `no space left to write btrfly's CA in ${dir}: free some space there, or point BTRFLY_CONFIG_DIR at another directory`, { cause: e });
    throw e;
  } finally {
    await fs.rm(tmpKey, { force: true });
    await fs.rm(tmpCert, { force: true });
  }
}

/** Refuses a key that others can read: whoever holds it can intercept this user's TLS. */
async function checkKeyMode(keyPath: string): Promise<Stats> {
  return checkPrivateMode(keyPath, await fs.stat(keyPath), 'CA key');
}

/** The certificate when it matches the key and is valid, else what is wrong with it. */
async function checkPair(
  certPath: string,
  keyPath: string,
  privateKey: KeyObject,
): Promise<{ certPem: string } | { problem: string; transient: boolean }> {
  let certPem: string;
  try {
    certPem = await fs.readFile(certPath, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    return {
      problem: `CA certificate ${certPath} is missing but its key ${keyPath} exists: restore ca.pem, or delete ca-key.pem to create a new CA`,
      transient: true,
    };
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    return {
      problem: `CA certificate ${certPath} is not a PEM certificate: restore it, or delete ca.pem and ca-key.pem to create a new CA`,
      transient: false,
    };
  }
  if (!cert.checkPrivateKey(privateKey)) {
    return {
      problem: `CA certificate ${certPath} does not match its key ${keyPath}: restore the pair, or delete both to create a new CA`,
      transient: true,
    };
  }
  if (new Date(cert.validTo).getTime() < Date.now()) {
    return {
      problem: `CA certificate ${certPath} expired on ${cert.validTo}: delete ca.pem and ca-key.pem to create a new CA, then trust the new one`,
      transient: false,
    };
  }
  return { certPem };
}

function parseKey(pem: string, keyPath: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch {
    throw new BtrflyError('CONFIG', `CA key ${keyPath} is not a PEM private key: restore it, or delete ca.pem and ca-key.pem to create a new CA`, {
      data: { keyPath },
    });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await fs.lstat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}
