import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import { join } from 'node:path';
import { CertificateAuthority } from '../../src/engine/tls/ca';
import { cleanEnv, run, startHttpsServer, tempDir } from './ca-helpers';
import { testWhen } from '../helpers/when';

/**
 * Real clients, each trusting only one CA file, against a real HTTPS server that mints
 * leaves with btrfly's CA. A client trusting another CA must fail: the control that
 * proves each check can fail.
 */
const NAMES = ['registry.test', 'a.b.example.org', '127.0.0.1'];
const JAVA_CLIENT = `
import java.io.*; import java.net.*; import java.security.KeyStore; import java.security.cert.*; import javax.net.ssl.*;
public class Get {
  public static void main(String[] a) throws Exception {
    KeyStore ks = KeyStore.getInstance(KeyStore.getDefaultType()); ks.load(null, null);
    try (InputStream in = new FileInputStream(a[0])) { ks.setCertificateEntry("ca", CertificateFactory.getInstance("X.509").generateCertificate(in)); }
    TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm()); tmf.init(ks);
    SSLContext ctx = SSLContext.getInstance("TLS"); ctx.init(null, tmf.getTrustManagers(), null);
    HttpsURLConnection c = (HttpsURLConnection) new URL(a[1]).openConnection(Proxy.NO_PROXY);
    c.setSSLSocketFactory(ctx.getSocketFactory());
    System.out.print(new String(c.getInputStream().readAllBytes(), "UTF-8"));
  }
}`;
// Python's resolver is pointed at 127.0.0.1 for the test names; TLS and hostname checks stay real.
// VERIFY_X509_STRICT is the default from Python 3.13: it insists on AKI and a sane leaf.
const PYTHON_CLIENT = `
import socket, ssl, sys, urllib.request
real = socket.getaddrinfo
socket.getaddrinfo = lambda host, *a, **k: real('127.0.0.1', *a, **k)
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.verify_flags |= ssl.VERIFY_X509_STRICT
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
sys.stdout.write(opener.open(sys.argv[2], timeout=10).read().decode())
`;

/** Go's crypto/tls with only the given CA as root; every name dials the loopback. */
const GO_CLIENT = `package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
)

func main() {
	pem, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	u, _ := url.Parse(os.Args[2])
	dialer := &net.Dialer{}
	client := &http.Client{Transport: &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", u.Port()))
		},
	}}
	res, err := client.Get(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	body, _ := io.ReadAll(res.Body)
	os.Stdout.Write(body)
}
`;
const HAVE_GO = ['/usr/bin/go', '/usr/local/go/bin/go'].find((p) => existsSync(p));

let tmp: ReturnType<typeof tempDir>;
let ca: CertificateAuthority;
let otherCaPath: string;
let server: Awaited<ReturnType<typeof startHttpsServer>>;

beforeAll(async () => {
  tmp = tempDir();
  ca = await CertificateAuthority.loadOrCreate(join(tmp.dir, 'btrfly'));
  otherCaPath = (await CertificateAuthority.loadOrCreate(join(tmp.dir, 'other'))).certPath;
  server = await startHttpsServer(ca);
  writeFileSync(join(tmp.dir, 'Get.java'), JAVA_CLIENT);
  writeFileSync(join(tmp.dir, 'get.py'), PYTHON_CLIENT);
  writeFileSync(join(tmp.dir, 'hosts'), `127.0.0.1 ${NAMES.slice(0, 2).join(' ')}\n`);
});
afterAll(async () => {
  await server?.close();
  tmp?.cleanup();
});

const url = (name: string, path = '/') => `https://${name}:${server.port}${path}`;
const greeting = (name: string) => `hello ${name === '127.0.0.1' ? '-' : name}\n`;

describe.each(NAMES)('%s', (name) => {
  const resolve = () => (name === '127.0.0.1' ? [] : ['--resolve', `${name}:${server.port}:127.0.0.1`]);

  test('curl', async () => {
    const ok = await run('curl', ['-sS', '--noproxy', '*', '--cacert', ca.certPath, ...resolve(), url(name)]);
    expect(ok).toMatchObject({ code: 0, stdout: greeting(name) });
    const bad = await run('curl', ['-sS', '--noproxy', '*', '--cacert', otherCaPath, ...resolve(), url(name)]);
    expect(bad.code).toBe(60);
  });

  test('node https.get', async () => {
    const get = (caPem: string) =>
      new Promise<string>((resolve, reject) => {
        // Node asks for every address (`all`) since happy eyeballs; answer the loopback only.
        const lookup = (_h: string, o: { all?: boolean }, cb: (e: null, a: unknown, f?: number) => void) =>
          o.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4);
        https
          .get(url(name), { ca: caPem, agent: false, lookup: lookup as never }, (res) => {
            res.setEncoding('utf8');
            let text = '';
            res.on('data', (c: string) => (text += c)).on('end', () => resolve(text)).on('error', reject);
          })
          .on('error', reject);
      });
    await expect(get(ca.certPem)).resolves.toBe(greeting(name));
    await expect(get(readFileSync(otherCaPath, 'utf8'))).rejects.toThrow(/self-signed|unable to verify|local issuer/);
  });

  test('python urllib (strict X.509)', async () => {
    const ok = await run('python3', [join(tmp.dir, 'get.py'), ca.certPath, url(name)]);
    expect(ok).toMatchObject({ code: 0, stdout: greeting(name) });
    const bad = await run('python3', [join(tmp.dir, 'get.py'), otherCaPath, url(name)]);
    expect(bad.stderr).toMatch(/CERTIFICATE_VERIFY_FAILED/);
  });

  test('git ls-remote reaches HTTP (404) past TLS', async () => {
    const git = (caFile: string) =>
      run('git', ['-c', `http.curloptResolve=${resolve()[1] ?? ''}`, 'ls-remote', url(name, '/repo.git')], {
        env: cleanEnv({ GIT_SSL_CAINFO: caFile, GIT_TERMINAL_PROMPT: '0' }, tmp.dir),
      });
    const ok = await git(ca.certPath);
    expect(ok.code).toBe(128);
    expect(ok.stderr).toMatch(/repository '.*' not found/);
    const bad = await git(otherCaPath);
    expect(bad.stderr).toMatch(/server certificate verification failed|SSL certificate problem/);
  });

  testWhen(HAVE_GO ? undefined : ['go'])('go net/http', async () => {
    const get = join(tmp.dir, 'get-go');
    if (!existsSync(get)) {
      writeFileSync(join(tmp.dir, 'get.go'), GO_CLIENT);
      const env = cleanEnv({ GOCACHE: join(tmp.dir, 'gocache'), GOPATH: join(tmp.dir, 'gopath'), GOFLAGS: '-mod=mod', GO111MODULE: 'off' }, tmp.dir);
      expect(await run(HAVE_GO!, ['build', '-o', get, join(tmp.dir, 'get.go')], { env, timeoutMs: 110_000 })).toMatchObject({ code: 0 });
    }
    expect(await run(get, [ca.certPath, url(name)])).toMatchObject({ code: 0, stdout: greeting(name) });
    expect((await run(get, [otherCaPath, url(name)])).stderr).toMatch(/certificate signed by unknown authority/);
  }, 120_000);

  test('openssl s_client -verify_return_error', async () => {
    const check = name === '127.0.0.1' ? ['-verify_ip', name] : ['-servername', name, '-verify_hostname', name];
    const sClient = (caFile: string) =>
      run('openssl', ['s_client', '-connect', `127.0.0.1:${server.port}`, '-verify_return_error', '-CAfile', caFile, ...check], { input: '' });
    const ok = await sClient(ca.certPath);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/Verify return code: 0 \(ok\)/);
    expect(ok.stdout).toMatch(/ALPN protocol: http\/1.1|No ALPN negotiated/);
    expect((await sClient(otherCaPath)).code).not.toBe(0);
  });

  test('java HttpsURLConnection', async () => {
    const classes = join(tmp.dir, 'classes');
    if (!existsSync(join(classes, 'Get.class'))) {
      const javac = await run('javac', ['-d', classes, join(tmp.dir, 'Get.java')]);
      expect(javac).toMatchObject({ code: 0 });
    }
    const java = (caFile: string) =>
      run('java', [`-Djdk.net.hosts.file=${join(tmp.dir, 'hosts')}`, '-cp', classes, 'Get', caFile, url(name)]);
    expect(await java(ca.certPath)).toMatchObject({ code: 0, stdout: greeting(name) });
    expect((await java(otherCaPath)).stderr).toMatch(/PKIX path (building|validation) failed/);
  });
});

test('openssl sees AKI = the CA SKI, random serials, and keyUsage critical on the leaf', async () => {
  const chain = await run('openssl', ['s_client', '-connect', `127.0.0.1:${server.port}`, '-servername', 'registry.test', '-showcerts'], { input: '' });
  const leafPem = chain.stdout.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)![0];
  const leaf = (await run('openssl', ['x509', '-noout', '-text'], { input: leafPem })).stdout;
  const caText = (await run('openssl', ['x509', '-noout', '-text', '-in', ca.certPath])).stdout;
  const ski = caText.match(/Subject Key Identifier:\s*\n\s*([0-9A-F:]+)/)![1];
  expect(leaf).toMatch(new RegExp(`Authority Key Identifier:\\s*\\n\\s*(keyid:)?${ski}`));
  expect(leaf).toMatch(/Key Usage: critical\s*\n\s*Digital Signature\n/);
  expect(leaf).toMatch(/Extended Key Usage:\s*\n\s*TLS Web Server Authentication/);
  expect(leaf).toMatch(/Serial Number:\s*\n\s*([0-9a-f]{2}:){15}[0-9a-f]{2}/);
  expect(caText).toMatch(/Basic Constraints: critical\s*\n\s*CA:TRUE/);
  expect(caText).toMatch(/Key Usage: critical\s*\n\s*Certificate Sign, CRL Sign/);
});

test('an IPv6 literal: the default leaf names ::1, and openssl checks the iPAddress SAN', async () => {
  const v6 = await startHttpsServer(ca, '2001:db8::1');
  try {
    const sClient = (ip: string) =>
      run('openssl', ['s_client', '-connect', `127.0.0.1:${v6.port}`, '-verify_return_error', '-CAfile', ca.certPath, '-verify_ip', ip], { input: '' });
    expect((await sClient('2001:db8::1')).stdout).toMatch(/Verify return code: 0 \(ok\)/);
    expect((await sClient('2001:db8::2')).code).not.toBe(0);
  } finally {
    await v6.close();
  }
});
