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
}

/** The outcome of an external command; a non-zero `code` is not thrown. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs an external command (argv, no shell). Injectable so that macOS's `networksetup`
 * and `security` are tested at their command boundary on Linux.
 */
export type CommandRunner = (argv: string[]) => Promise<CommandResult>;

/** What `apply` installs. */
export interface ApplyOptions {
  /** IPv4 or IPv6 address of btrfly's DNS server. */
  dnsServer: string;
  /** btrfly's CA certificate, PEM. */
  caPem: string;
  /** Short name for the CA file: `btrfly-<caName>.crt`. */
  caName: string;
}

/** Names of the steps `apply` takes, in order, reported to `onStep` after each. */
export type ApplyStep =
  | 'journal-resolver'
  | 'resolver'
  | 'journal-trust'
  | 'trust-file'
  | 'trust-update'
  | 'journal-macos-dns'
  | 'macos-dns'
  | 'journal-macos-cert'
  | 'macos-cert';
