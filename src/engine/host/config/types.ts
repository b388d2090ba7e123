/** Which system trust store host mode installs btrfly's CA into (docs/contract.md, "Trust and proxy settings"). */
export type TrustStoreKind = 'debian' | 'rhel' | 'alpine' | 'macos' | 'none';

/**
 * Every path and command host mode touches, so that tests (and unusual hosts) can
 * redirect each of them. `detectHostPaths` fills it in for the running system.
 */
export interface HostPaths {
  /** The resolver file (`/etc/resolv.conf`); unused on macOS. */
  resolvConf: string;
  /** Where the restore journal lives (`/var/lib/btrfly`); survives reboots. */
  stateDir: string;
  trust: TrustStoreKind;
  /** Directory the CA file is written to; defaults per `trust` kind. */
  trustDir?: string;
  /** Command that rebuilds the system bundle from `trustDir`; defaults per `trust` kind. */
  trustUpdateCommand?: string[];
  /** Command that rebuilds the bundle after the CA file is removed; defaults to `trustUpdateCommand`. */
  trustRemoveCommand?: string[];
  /** systemd-resolved's list of real upstreams (`/run/systemd/resolve/resolv.conf`). */
  systemdResolvConf?: string;
  /**
   * Debian's compiled store, which host mode changes directly (the CA's name and hash links and
   * its bundle entry) instead of rebuilding it with `update-ca-certificates`. Absent where the
   * trust store is not Debian's, or its update command was replaced (`BTRFLY_TRUST_UPDATE`).
   */
  debianCerts?: DebianCerts;
}

/** Where Debian's `update-ca-certificates` writes (`/etc/ssl/certs`) and which hooks it runs after. */
export interface DebianCerts {
  /** The links and the bundle: `/etc/ssl/certs`. */
  dir: string;
  /** The bundle's file name in `dir`: `ca-certificates.crt`. */
  bundle: string;
  /** Scripts told of each added (`+PEM`) and removed (`-PEM`) certificate: `/etc/ca-certificates/update.d`. */
  hooksDir: string;
}

/** The outcome of an external command; a non-zero `code` is not thrown. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs an external command (argv, no shell), with `input` on its stdin when given. Injectable
 * so that macOS's `networksetup` and `security` are tested at their command boundary on Linux.
 */
export type CommandRunner = (argv: string[], input?: string) => Promise<CommandResult>;

/** What `apply` installs. */
export interface ApplyOptions {
  /** IPv4 or IPv6 address of btrfly's DNS server. */
  dnsServer: string;
  /** btrfly's CA certificate, PEM. */
  caPem: string;
  /** Short name for the CA file: `btrfly-<caName>.crt`. */
  caName: string;
  /** Awaited before the resolver is switched (btrfly's DNS server starting meanwhile); a rejection undoes `apply`. */
  beforeResolver?: () => Promise<void>;
}

/** Names of the steps `apply` takes, in order, reported to `onStep` after each. */
export type ApplyStep =
  | 'journal-trust'
  | 'trust-file'
  | 'trust-update'
  | 'journal-resolver'
  | 'resolver'
  | 'journal-macos-dns'
  | 'macos-dns'
  | 'journal-macos-cert'
  | 'macos-cert';
