import { promises as fs, constants as fsc } from 'node:fs';
import * as path from 'node:path';
import { BtrflyError, oneLine } from '../../../errors';
import { runCommand } from './command-runner';
import { MACOS_SYSTEM_KEYCHAIN, onPath } from './detect';
import { planDebianTrust, restoreDebianTrust, runTrustHooks, writeDebianTrust } from './debian-trust';
import { captureFile, replaceWithFile, restoreFile } from './file-snapshot';
import { readJournal, removeJournal, writeJournal, type Journal, type JournalEntry } from './journal';
import * as macos from './macos';
import { BTRFLY_MARKER, pickUpstreams, renderResolvConf } from './resolv-conf';
import { parseCa, planTrustFile, trustFilePath, updateTrust, writeTrustFile } from './trust-store';
import type { ApplyOptions, ApplyStep, CommandRunner, HostPaths } from './types';

const NEEDS_ROOT =
  'host mode changes /etc/resolv.conf and the trust store and needs root: run with sudo, or use "btrfly run" (command mode) instead';

/** Options beside the paths and the runner. */
export interface HostConfiguratorOptions {
  /** Called after each step of `apply` (for progress output; tests use it to crash between steps). */
  onStep?: (step: ApplyStep) => void;
}

/**
 * Points the host's resolver at btrfly's DNS and adds btrfly's CA to the system trust
 * store, and undoes both exactly. Every change is journalled in `paths.stateDir`
 * before it is made, so `restore()` works from any process, after a crash or a reboot.
 */
export class HostConfigurator {
  private readonly onStep: (step: ApplyStep) => void;

  constructor(
    private readonly paths: HostPaths,
    private readonly run: CommandRunner = runCommand,
    opts: HostConfiguratorOptions = {},
  ) {
    this.onStep = opts.onStep ?? (() => undefined);
  }

  /**
   * Switches the host to btrfly: the trust store first, then the resolver (so that names lead
   * to btrfly only once its CA is trusted), after `opts.beforeResolver` when given (the DNS
   * server is starting meanwhile). Applying again before `restore` changes the DNS server and
   * CA but keeps the first originals. On failure what was changed is restored; a failure of
   * `beforeResolver` is then rethrown as it is.
   */
  async apply(opts: ApplyOptions): Promise<void> {
    const cert = parseCa(opts.caPem, opts.caName);
    await this.checkPermission();
    let waiting = false;
    const ready = async () => {
      waiting = true;
      await opts.beforeResolver?.();
      waiting = false;
    };
    try {
      const journal = (await readJournal(this.paths.stateDir)) ?? {
        btrflyHostConfig: 1,
        since: new Date().toISOString(),
        upstreamNameservers: [],
        entries: [],
      };
      if (this.paths.trust === 'macos') {
        await ready();
        await this.applyMacosDns(journal, opts.dnsServer);
        await this.applyMacosCert(journal, opts, cert.fingerprint.replace(/:/g, ''));
      } else {
        await this.applyTrust(journal, opts);
        await ready();
        await this.applyResolver(journal, opts.dnsServer);
      }
    } catch (e) {
      const undone = await this.restore().then(
        () => undefined,
        (r: unknown) => r,
      );
      if (waiting && undone === undefined) throw e;
      const undo = undone === undefined ? 'the host was restored' : `restoring also failed (${oneLine(undone)}): run "sudo btrfly stop" to retry`;
      const code = e instanceof BtrflyError ? e.code : 'CONFIG';
      throw new BtrflyError(code, `${oneLine(e)} (${undo})`, { cause: e });
    }
  }

  /** Undoes everything the journal lists, newest first, then deletes it. Idempotent. */
  async restore(): Promise<{ restored: string[] }> {
    const journal = await readJournal(this.paths.stateDir);
    if (!journal) return { restored: [] };
    await this.checkPermission();
    const restored: string[] = [];
    const updates = new Map<string, string[]>();
    let macosDnsChanged = false;
    // One change that cannot be undone (a resolver made read-only meanwhile) must not keep the
    // others (btrfly's CA in the trust store) in place: each is tried, the journal stays for a
    // retry when any failed, and every step is idempotent.
    let failed: unknown;
    for (const entry of [...journal.entries].reverse()) {
      try {
        await this.undo(entry, restored, updates);
        if (entry.kind === 'macos-dns') macosDnsChanged = true;
      } catch (e) {
        failed ??= e;
      }
    }
    for (const command of updates.values()) await updateTrust(this.run, command);
    if (macosDnsChanged) await macos.flushDnsCache(this.run);
    if (failed !== undefined) throw failed;
    await removeJournal(this.paths.stateDir);
    return { restored };
  }

  /** Undoes one journalled change; what it put back goes to `restored`, trust-store rebuilds to `updates`. */
  private async undo(entry: JournalEntry, restored: string[], updates: Map<string, string[]>): Promise<void> {
    switch (entry.kind) {
      case 'resolver':
      case 'trust-file':
        await restoreFile(entry.path, entry.before);
        if (entry.kind === 'trust-file' && entry.removeCommand.length) updates.set(entry.removeCommand.join('\0'), entry.removeCommand);
        restored.push(entry.path);
        break;
      case 'debian-trust':
        restored.push(...(await this.undoDebianTrust(entry, updates)));
        break;
      case 'macos-dns':
        await macos.setDnsServers(this.run, entry.service, entry.servers);
        restored.push(`dns of network service "${entry.service}"`);
        break;
      case 'macos-cert':
        await macos.removeTrustedCert(this.run, entry.file, entry.sha1, entry.keychain);
        await fs.rm(entry.file, { force: true });
        restored.push(`certificate ${entry.sha1} in ${entry.keychain}`);
        break;
    }
  }

  /** Whether the host is switched to btrfly (a journal exists), since when, and to which DNS server. */
  async status(): Promise<{ applied: boolean; since?: string; dnsServer?: string }> {
    const journal = await readJournal(this.paths.stateDir);
    if (!journal) return { applied: false };
    return { applied: true, since: journal.since, ...(journal.dnsServer ? { dnsServer: journal.dnsServer } : {}) };
  }

  /**
   * The resolvers the host used before btrfly, for btrfly's DNS server to forward to:
   * from the journal while applied, else from the current configuration.
   */
  async originalNameservers(): Promise<string[]> {
    const journal = await readJournal(this.paths.stateDir);
    if (journal) return journal.upstreamNameservers;
    if (this.paths.trust === 'macos') return [];
    return pickUpstreams(await readText(this.paths.resolvConf), await readTextIfAny(this.paths.systemdResolvConf));
  }

  private async applyResolver(journal: Journal, dnsServer: string): Promise<void> {
    const file = this.paths.resolvConf;
    let entry = journal.entries.find((e): e is Extract<JournalEntry, { kind: 'resolver' }> => e.kind === 'resolver');
    if (!entry) {
      const current = await readTextIfAny(file);
      if (current?.startsWith(BTRFLY_MARKER)) {
        throw new BtrflyError(
          'CONFIG',
          `${file} was written by btrfly but ${this.paths.stateDir} holds no record of the original: restore ${file} by hand (on systemd-resolved hosts: ln -sf ../run/systemd/resolve/stub-resolv.conf ${file}) and start again`,
        );
      }
      entry = { kind: 'resolver', path: file, before: await captureFile(file) };
      journal.entries.push(entry);
      journal.upstreamNameservers = pickUpstreams(current ?? '', await readTextIfAny(this.paths.systemdResolvConf), [dnsServer]);
    }
    journal.dnsServer = dnsServer;
    await writeJournal(this.paths.stateDir, journal);
    this.onStep('journal-resolver');
    const original = entry.before.type === 'file' ? Buffer.from(entry.before.base64, 'base64').toString('utf8') : '';
    await replaceWithFile(file, renderResolvConf(dnsServer, original, this.paths.stateDir), 0o644);
    this.onStep('resolver');
  }

  private async applyTrust(journal: Journal, opts: ApplyOptions): Promise<void> {
    if (this.paths.debianCerts && onPath('openssl') && (await this.applyDebianTrust(journal, opts))) return;
    const planned = await planTrustFile(this.paths, opts.caName);
    if (!journal.entries.some((e) => e.kind === 'trust-file' && e.path === planned.path)) {
      journal.entries.push(planned);
      await writeJournal(this.paths.stateDir, journal);
    }
    this.onStep('journal-trust');
    await writeTrustFile(planned.path, opts.caPem);
    this.onStep('trust-file');
    await updateTrust(this.run, planned.updateCommand);
    this.onStep('trust-update');
  }

  /**
   * Debian: adds the CA to /etc/ssl/certs directly (see debian-trust.ts); false when the store
   * is laid out otherwise and `update-ca-certificates` must do it. Applying again first undoes
   * the previous change, so that the journal keeps the first originals.
   */
  private async applyDebianTrust(journal: Journal, opts: ApplyOptions): Promise<boolean> {
    const certs = this.paths.debianCerts!;
    const anchor = trustFilePath(this.paths, opts.caName);
    const previous = journal.entries.findIndex((e) => e.kind === 'debian-trust' && e.anchor === anchor);
    if (previous >= 0) {
      const updates = new Map<string, string[]>();
      await this.undoDebianTrust(journal.entries[previous] as Extract<JournalEntry, { kind: 'debian-trust' }>, updates);
      for (const command of updates.values()) await updateTrust(this.run, command);
      journal.entries.splice(previous, 1);
      await writeJournal(this.paths.stateDir, journal);
    }
    const plan = await planDebianTrust(this.run, certs, anchor, opts.caName, opts.caPem);
    if (!plan) return false;
    const removeCommand = this.paths.trustRemoveCommand ?? this.paths.trustUpdateCommand ?? [];
    journal.entries.push({ kind: 'debian-trust', anchor, pem: plan.pem, files: plan.files, hooksDir: certs.hooksDir, removeCommand });
    await writeJournal(this.paths.stateDir, journal);
    this.onStep('journal-trust');
    await writeDebianTrust(plan);
    this.onStep('trust-file');
    await runTrustHooks(this.run, certs.hooksDir, `+${plan.pem}`);
    this.onStep('trust-update');
    return true;
  }

  /**
   * Puts Debian's store back file by file and tells the hooks; when something else changed
   * those files meanwhile, queues the distribution's rebuild (which runs the hooks itself).
   */
  private async undoDebianTrust(entry: Extract<JournalEntry, { kind: 'debian-trust' }>, updates: Map<string, string[]>): Promise<string[]> {
    const { changedByOthers } = await restoreDebianTrust(entry.files);
    if (changedByOthers.length > 0 && entry.removeCommand.length) updates.set(entry.removeCommand.join('\0'), entry.removeCommand);
    else await runTrustHooks(this.run, entry.hooksDir, `-${entry.pem}`);
    return entry.files.map((f) => f.path);
  }

  private async applyMacosDns(journal: Journal, dnsServer: string): Promise<void> {
    const services = journal.entries.filter((e): e is Extract<JournalEntry, { kind: 'macos-dns' }> => e.kind === 'macos-dns');
    if (services.length === 0) {
      for (const service of await macos.listNetworkServices(this.run)) {
        services.push({ kind: 'macos-dns', service, servers: await macos.getDnsServers(this.run, service) });
      }
      journal.entries.push(...services);
      journal.upstreamNameservers = [...new Set(services.flatMap((s) => s.servers))].filter((s) => s !== dnsServer);
    }
    journal.dnsServer = dnsServer;
    await writeJournal(this.paths.stateDir, journal);
    this.onStep('journal-macos-dns');
    for (const s of services) await macos.setDnsServers(this.run, s.service, [dnsServer]);
    await macos.flushDnsCache(this.run);
    this.onStep('macos-dns');
  }

  private async applyMacosCert(journal: Journal, opts: ApplyOptions, sha1: string): Promise<void> {
    const file = path.join(this.paths.stateDir, `btrfly-${opts.caName}.crt`);
    const keychain = MACOS_SYSTEM_KEYCHAIN;
    if (!journal.entries.some((e) => e.kind === 'macos-cert' && e.sha1 === sha1)) {
      journal.entries.push({ kind: 'macos-cert', sha1, file, keychain });
      await writeJournal(this.paths.stateDir, journal);
    }
    this.onStep('journal-macos-cert');
    await replaceWithFile(file, opts.caPem, 0o644);
    await macos.addTrustedCert(this.run, file, keychain);
    this.onStep('macos-cert');
  }

  /** Fails early, before any change, with the one-line "needs root" message. */
  private async checkPermission(): Promise<void> {
    if (this.paths.trust === 'macos') {
      if (process.getuid?.() !== 0) throw new BtrflyError('PERMISSION', NEEDS_ROOT);
      return;
    }
    const dirs = [path.dirname(this.paths.resolvConf), this.paths.trustDir, this.paths.stateDir];
    await fs.mkdir(this.paths.stateDir, { recursive: true, mode: 0o700 }).catch(rethrowAsPermission);
    for (const dir of dirs) {
      // A trust directory that does not exist yet is created later; only refusals matter here.
      if (dir) await fs.access(dir, fsc.W_OK).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : rethrowAsPermission(e)));
    }
  }
}

function rethrowAsPermission(e: NodeJS.ErrnoException): never {
  if (e.code === 'EACCES' || e.code === 'EPERM') throw new BtrflyError('PERMISSION', NEEDS_ROOT, { cause: e });
  throw e;
}

async function readText(file: string): Promise<string> {
  return (await readTextIfAny(file)) ?? '';
}

async function readTextIfAny(file: string | undefined): Promise<string | undefined> {
  if (!file) return undefined;
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}
