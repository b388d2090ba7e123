import { classifyFirstBytes } from '../../src/engine/isolate/first-bytes';
import { userNamespaceProblem } from '../../src/engine/isolate/kernel';
import { originalDestination, parseProcNetTcp } from '../../src/engine/isolate/proc-net';

// Captured inside a namespace: a listener on 127.0.0.1:4444, the client 198.19.255.254:33852
// whose connection to 93.184.216.34:8443 was redirected to it, and the accepted side.
const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:115C 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1640083 1 0 100 0 0 10 0
   1: 0100007F:115C FEFF13C6:843C 01 00000000:00000000 00:00000000 00000000     0        0 1640085 1 0 20 0 0 10 -1
   2: FEFF13C6:843C 22D8B85D:20FB 01 00000000:00000000 00:00000000 00000000     0        0 1640084 2 0 20 0 0 10 -1
`;

describe('original destination from /proc/net/tcp', () => {
  it('finds the address the redirected client connected to', () => {
    const rows = parseProcNetTcp(TCP);
    expect(rows).toHaveLength(3);
    expect(originalDestination(rows, { address: '198.19.255.254', port: 33852 }, { address: '127.0.0.1', port: 4444 })).toEqual({ address: '93.184.216.34', port: 8443 });
  });
  it('says nothing once the client is gone', () => {
    expect(originalDestination(parseProcNetTcp(TCP), { address: '198.19.255.254', port: 1 }, { address: '127.0.0.1', port: 4444 })).toBeUndefined();
  });
  it('reads IPv6 rows', () => {
    const v6 = 'sl local rem\n 0: 00000000000000000000000001000000:1F90 0000000000000000FFFF00000100007F:01BB 01\n';
    const [row] = parseProcNetTcp(v6);
    expect(row.local).toEqual({ address: '::1', port: 8080 });
    expect(row.remote).toEqual({ address: '127.0.0.1', port: 443 });
  });
});

describe('first bytes of an intercepted connection', () => {
  it.each([
    [Buffer.from([0x16, 0x03, 0x01]), 'tls'],
    [Buffer.from('GET / HTTP/1.1\r\n'), 'http'],
    [Buffer.from('PROPFIND /x HTTP/1.1\r\n'), 'http'],
    [Buffer.from('PRI * HTTP/2.0\r\n'), 'other'],
    [Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'), 'other'],
    [Buffer.from([0, 0, 0, 8, 4, 210, 22, 47]), 'other'],
  ])('%j is %s', (chunk, kind) => expect(classifyFirstBytes(chunk)).toBe(kind));
});

describe('kernel check for unprivileged user namespaces', () => {
  it('names the sysctl and the command that allows them', () => {
    expect(userNamespaceProblem({ unprivilegedUsernsClone: 0 }, false)).toMatch(/sysctl -w kernel.unprivileged_userns_clone=1/);
    expect(userNamespaceProblem({ maxUserNamespaces: 0 }, false)).toMatch(/user.max_user_namespaces=15000/);
    expect(userNamespaceProblem({ apparmorRestrict: 1 }, false)).toMatch(/apparmor_restrict_unprivileged_userns=0/);
  });
  it('is silent when they are allowed, and for root', () => {
    expect(userNamespaceProblem({ unprivilegedUsernsClone: 1, maxUserNamespaces: 96367 }, false)).toBeUndefined();
    expect(userNamespaceProblem({ unprivilegedUsernsClone: 0 }, true)).toBeUndefined();
  });
});
