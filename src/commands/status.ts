import { runStatuses } from '../engine/command/run-status';
import { asideRecordingsIn, hostStatus } from '../engine/host/host-session';
import type { SessionInfo } from '../engine/proxy/session';
import { BtrflyCommand, type JsonResult } from '../cli/base';
import { asideAdvice } from '../format/lifecycle';
import { formatSize } from '../format/size';

export default class Status extends BtrflyCommand {
  static override summary = 'Show the active session(s): tag, mode, since, requests, bytes, misses; and recordings left aside in the archive.';

  async run(): Promise<JsonResult> {
    const { flags } = await this.parse(Status);
    const st = await hostStatus();
    const aside = await asideRecordingsIn(flags.archive);
    const runs = await runStatuses();
    if (this.jsonEnabled()) return { ...st, runs, pending: aside };
    for (const p of aside) this.log(asideAdvice(p));
    for (const r of runs) {
      this.log(`btrfly run ${r.pid} (archive ${r.archive})`);
      for (const s of r.sessions) this.log(sessionLine(s));
    }
    if (st.daemonDied && st.hostSession) {
      this.log(`the btrfly daemon stopped during the ${st.hostSession.mode} session of tag "${st.hostSession.tag}": run "btrfly stop ${st.hostSession.mode}" to restore this host`);
      return;
    }
    if (st.sessions.length === 0) {
      if (runs.length > 0 && !st.daemon) return;
      if (st.daemon) this.log(`the btrfly daemon ${st.daemon.pid} on ${st.daemon.address} runs without a session (archive ${st.daemon.archive}): run "btrfly stop record" to stop it`);
      else this.log('no active session');
      return;
    }
    this.log(st.service ? `service ${st.service}` : `daemon ${st.daemon!.pid} on ${st.daemon!.address}`);
    for (const s of st.sessions as SessionInfo[]) this.log(sessionLine(s));
  }
}

function sessionLine(s: SessionInfo): string {
  const x = s.stats;
  return `${s.mode.padEnd(8)} ${s.tag}  since ${s.since}  ${x.requests} requests  ${formatSize(x.bytes)}  ${x.hits} hits  ${x.misses} misses`;
}
