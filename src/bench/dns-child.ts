/**
 * btrfly's DNS server alone in a process, for the dns bench section: every client on
 * loopback is in a session (answered with 127.0.0.1 / ::1, never forwarded). Prints the
 * UDP port, then serves until SIGTERM.
 */
import { startDnsServer } from '../engine/dns/dns-server';

async function main(): Promise<void> {
  const server = await startDnsServer({
    address: '127.0.0.1',
    port: 0,
    answerFor: () => ({ ipv4: '127.0.0.1', ipv6: '::1' }),
    // Never used: every client is in the session. A closed port, so nothing leaves loopback.
    upstream: ['127.0.0.1:9'],
  });
  process.stdout.write(`${server.udpPort}\n`);
  process.once('SIGTERM', () => void server.close().then(() => process.exit(0)));
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(1);
});
