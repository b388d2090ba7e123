import { hostStatus } from '../engine/host-session';
import { formatSize } from '../format/size';
import type { SessionInfo } from '../engine/session';
import { BtrflyCommand, type JsonResult } from '../cli/base';
import { Archive } from '../format/archive';
import { asideAdvice, type AsideRecording } from '../format/lifecycle';

export default class Status extends BtrflyCommand {
  static override summary = 'Show the active session(s): tag, mode, since, requests, bytes, misses; and recordings left aside in the archive.';

  async run(): Promise<JsonResult> {
    const { flags } = await this.parse(Status);
    const st = await hostStatus();
    const aside = await asideIn(flags.archive);
    if (this.jsonEnabled()) return { ...st, pending: aside };
    for (const p of aside) this.log(asideAdvice(p));
    if (st.daemonDied && st.hostSession) {
      this.log(`the btrfly daemon stopped during the ${st.hostSession.mode} session of tag "${st.hostSession.tag}": run "btrfly stop ${st.hostSession.mode}" to restore this host`);
      return;
    }
    if (st.sessions.length === 0) {
      this.log('no active session');
      return;
    }
    this.log(st.service ? `service ${st.service}` : `daemon ${st.daemon!.pid} on ${st.daemon!.address}`);
    for (const s of st.sessions as SessionInfo[]) {
      const x = s.stats;
      this.log(`${s.mode.padEnd(8)} ${s.tag}  since ${s.since}  ${x.requests} requests  ${formatSize(x.bytes)}  ${x.hits} hits  ${x.misses} misses`);
    }
  }
}

/** The recordings left aside in the archive at `dir` (none when there is no archive there). */
async function asideIn(dir: string): Promise<AsideRecording[]> {
  const archive = await Archive.open(dir).catch(() => undefined);
  if (!archive) return [];
  try {
    return await archive.asideRecordings();
  } finally {
    await archive.close();
  }
}
