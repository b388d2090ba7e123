import type { KeyObject } from 'node:crypto';
import * as tls from 'node:tls';
import { loadOrCreateCaFiles } from './ca-files';
import { CertCache } from './cert-cache';
import { type Issuer, type KeyType, generateKeyPair, issueLeaf, normaliseServerName } from './cert-issuer';
import { configDir } from '../base/config-dir';

const DAY_MS = 24 * 60 * 60 * 1000;
/** A cached leaf is re-signed this long before its notAfter, so no client sees it expire. */
const RENEW_BEFORE_MS = 30 * DAY_MS;

/** Options of {@link CertificateAuthority.loadOrCreate}. */
export interface CaOptions {
  /** Key type of the shared leaf key: `ec` (P-256, default: cheap handshakes) or `rsa` (2048). */
  leafKeyType?: KeyType;
  /** Most names whose leaf stays cached; the least recently used are dropped beyond it. */
  maxCachedNames?: number;
}

/** The options `tls.createServer`/`https.createServer` need to terminate TLS for any name. */
export interface TlsServerOptions {
  SNICallback: (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void;
  key: string;
  cert: string;
  ALPNCallback: typeof selectHttp1;
}

/**
 * The ALPN choice of btrfly's TLS servers: `http/1.1`, or `http/1.0` for a client that offers
 * only that (`curl --http1.0`), since the HTTP/1.1 server answers both. A plain
 * `ALPNProtocols: ['http/1.1']` makes Node end the handshake of such a client with a
 * `no_application_protocol` alert. A client offering neither (h2 only) is refused with it.
 */
export function selectHttp1({ protocols }: { protocols: string[] }): string | undefined {
  return ['http/1.1', 'http/1.0'].find((p) => protocols.includes(p));
}

/**
 * btrfly's certificate authority: one CA key in the user's config directory, one leaf key
 * per process shared by every host, and a leaf certificate per requested name, signed on
 * first use and cached until shortly before it expires.
 */
export class CertificateAuthority {
  private readonly contexts: CertCache<tls.SecureContext>;
  private readonly leafKeyPem: string;
  private readonly issuer: Issuer;

  private constructor(
    /** The config directory holding the CA. */
    readonly dir: string,
    /** Path of the CA certificate (`ca.pem`), the file clients must trust. */
    readonly certPath: string,
    /** Path of the CA private key (`ca-key.pem`, mode 0600). */
    readonly keyPath: string,
    /** The CA certificate in PEM. */
    readonly certPem: string,
    caKey: KeyObject,
    private readonly leafKey: { privateKey: KeyObject; publicKey: KeyObject },
    maxCachedNames: number,
  ) {
    this.issuer = { certPem, privateKey: caKey };
    this.leafKeyPem = leafKey.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    this.contexts = new CertCache((key) => this.sign(key.split(',')), maxCachedNames);
  }

  /**
   * Loads the CA from `dir` (default {@link configDir}), creating it on first use, and
   * generates this process's shared leaf key. Throws a `PERMISSION` error when the CA
   * key is readable by group or others, `CONFIG` when the files are unusable.
   */
  static async loadOrCreate(dir: string = configDir(), options: CaOptions = {}): Promise<CertificateAuthority> {
    const files = await loadOrCreateCaFiles(dir);
    const leafKey = generateKeyPair(options.leafKeyType ?? 'ec');
    return new CertificateAuthority(files.dir, files.certPath, files.keyPath, files.certPem, files.privateKey, leafKey, options.maxCachedNames ?? 10_000);
  }

  /**
   * The TLS context for `servername` (an SNI name, a CONNECT target host, or the local
   * address a client without SNI connected to). Concurrent calls for one name share one
   * signing. Rejects with a `USAGE` error for a name that is not a host name or an IP.
   */
  secureContextFor(servername: string): Promise<tls.SecureContext> {
    try {
      return this.contexts.get(normaliseServerName(servername));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** The context for `servername` if already signed and fresh; never signs. */
  cachedSecureContextFor(servername: string): tls.SecureContext | undefined {
    try {
      return this.contexts.peek(normaliseServerName(servername));
    } catch {
      return undefined;
    }
  }

  /** An `SNICallback` answering from the cache, signing on a miss. */
  readonly sniCallback: TlsServerOptions['SNICallback'] = (servername, cb) => {
    const hit = this.cachedSecureContextFor(servername);
    if (hit) return cb(null, hit);
    this.secureContextFor(servername).then(
      (ctx) => cb(null, ctx),
      (err: Error) => cb(err),
    );
  };

  /**
   * Options for `tls.createServer`/`https.createServer`: certificates chosen by SNI, and
   * for a client that sends none (it connected to an IP) a default certificate for
   * `defaultName`, or when omitted for `localhost`, `127.0.0.1` and `::1`. ALPN selects
   * `http/1.1` (or `http/1.0`), what btrfly's proxy speaks ({@link selectHttp1}).
   */
  async serverOptions(defaultName?: string): Promise<TlsServerOptions> {
    const names = defaultName === undefined ? ['localhost', '127.0.0.1', '::1'] : [normaliseServerName(defaultName)];
    const { certPem } = await issueLeaf(this.issuer, this.leafKey.publicKey, names);
    return { SNICallback: this.sniCallback, key: this.leafKeyPem, cert: certPem, ALPNCallback: selectHttp1 };
  }

  /** How many names currently hold a cached leaf. */
  get cachedNames(): number {
    return this.contexts.size;
  }

  private async sign(names: string[]): Promise<{ value: tls.SecureContext; expiresAt: number }> {
    const leaf = await issueLeaf(this.issuer, this.leafKey.publicKey, names);
    const value = tls.createSecureContext({ key: this.leafKeyPem, cert: leaf.certPem });
    // A leaf clamped by a CA near its own end is renewed halfway through what is left.
    const left = leaf.notAfter.getTime() - Date.now();
    return { value, expiresAt: leaf.notAfter.getTime() - Math.min(RENEW_BEFORE_MS, left / 2) };
  }
}
