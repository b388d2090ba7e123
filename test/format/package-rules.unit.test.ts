/**
 * The URL rules with the URL shapes each ecosystem really uses (paths as the public
 * registries and the usual mirrors lay them out), on placeholder hosts: the rules never
 * look at the host.
 */
import { classifyUrl, type RequestHints, type UrlClass } from '../../src/format/package-rules';

const NPM_ACCEPT = 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*';
const H = 'https://registry.example';

const artifact = (ecosystem: string, name: string, version: string, qualifiers?: Record<string, string>) =>
  expect.objectContaining({ kind: 'artifact', ecosystem, name, version, ...(qualifiers && { qualifiers }) });
const metadata = (ecosystem: string, name?: string) => ({ kind: 'metadata', ecosystem, ...(name !== undefined && { name }) });
const OTHER = { kind: 'other' };

const CASES: Array<[string, unknown, RequestHints?]> = [
  // npm
  [`${H}/axios/-/axios-1.7.9.tgz`, artifact('npm', 'axios', '1.7.9')],
  [`${H}/@types/node/-/node-20.11.30.tgz`, artifact('npm', '@types/node', '20.11.30')],
  [`${H}/@babel%2fcore/-/core-7.24.0.tgz`, artifact('npm', '@babel/core', '7.24.0')],
  [`${H}/api/npm/npm-remote/@scope/pkg-name/-/pkg-name-1.0.0-beta.2.tgz`, artifact('npm', '@scope/pkg-name', '1.0.0-beta.2')],
  [`${H}/btrfly-demo-leaf/-/btrfly-demo-leaf-2.0.0.tgz`, artifact('npm', 'btrfly-demo-leaf', '2.0.0')],
  [`${H}/axios`, metadata('npm', 'axios'), { accept: NPM_ACCEPT }],
  [`${H}/@types%2fnode`, metadata('npm', '@types/node'), { accept: NPM_ACCEPT }],
  [`${H}/@types/node`, metadata('npm', '@types/node'), { accept: NPM_ACCEPT }],
  [`${H}/api/npm/npm-remote/left-pad`, metadata('npm', 'left-pad'), { accept: NPM_ACCEPT }],
  [`${H}/axios`, OTHER, { accept: 'application/json' }],
  [`${H}/-/npm/v1/security/advisories/bulk`, metadata('npm')],
  [`${H}/-/npm/v1/security/audits/quick`, metadata('npm')],
  // PyPI
  [`${H}/packages/a1/b2/c3d4/requests-2.31.0-py3-none-any.whl`, artifact('pypi', 'requests', '2.31.0')],
  [`${H}/packages/xx/numpy-1.26.4-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl`, artifact('pypi', 'numpy', '1.26.4')],
  [`${H}/packages/btrfly_demo_util-1.1.0-py3-none-any.whl`, artifact('pypi', 'btrfly-demo-util', '1.1.0')],
  [`${H}/packages/f0/0d/abc/Foo_Bar-1.0-1-py2.py3-none-any.whl`, artifact('pypi', 'foo-bar', '1.0')],
  [`${H}/packages/source/p/python-dateutil/python-dateutil-2.8.2.tar.gz`, artifact('pypi', 'python-dateutil', '2.8.2')],
  [`${H}/packages/12/34/5678/pyyaml-6.0.1.tar.gz`, artifact('pypi', 'pyyaml', '6.0.1')],
  [`${H}/simple/`, metadata('pypi')],
  [`${H}/simple/requests/`, metadata('pypi', 'requests')],
  [`${H}/root/pypi/+simple/Django/`, OTHER],
  [`${H}/legacy/simple/btrfly-demo-util/`, metadata('pypi', 'btrfly-demo-util')],
  [`${H}/pypi/Django/json`, metadata('pypi', 'django')],
  [`${H}/pypi/django/5.0.1/json`, metadata('pypi', 'django')],
  [`${H}/packages/a1/b2/c3d4/requests-2.31.0-py3-none-any.whl.metadata`, metadata('pypi', 'requests')],
  [`${H}/packages/xx/torch-2.1.0%2Bcpu-cp311-cp311-linux_x86_64.whl`, artifact('pypi', 'torch', '2.1.0+cpu')],
  // Debian, Ubuntu
  [`http://deb.example/debian/pool/main/c/curl/curl_7.88.1-10+deb12u5_amd64.deb`, artifact('deb', 'curl', '7.88.1-10+deb12u5', { arch: 'amd64' })],
  [`http://deb.example/ubuntu/pool/main/g/glibc/libc6_2.35-0ubuntu3.6_amd64.deb`, artifact('deb', 'libc6', '2.35-0ubuntu3.6', { arch: 'amd64' })],
  [`http://deb.example/debian/pool/main/b/bash/bash_5.2.15-2%2bb2_arm64.deb`, artifact('deb', 'bash', '5.2.15-2+b2', { arch: 'arm64' })],
  [`http://deb.example/debian/pool/main/t/tzdata/tzdata_2024a-0%3a1_all.deb`, artifact('deb', 'tzdata', '2024a-0:1', { arch: 'all' })],
  [`http://deb.example/debian/pool/main/p/perl/perl-base_1%3a5.36.0-7_amd64.deb`, artifact('deb', 'perl-base', '1:5.36.0-7', { arch: 'amd64' })],
  [`http://deb.example/debian/dists/bookworm/InRelease`, metadata('deb')],
  [`http://deb.example/debian/dists/bookworm/main/binary-amd64/Packages.xz`, metadata('deb')],
  [`http://deb.example/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/0123abcd`, metadata('deb')],
  [`http://deb.example/debian/dists/bookworm/main/i18n/Translation-en.bz2`, metadata('deb')],
  // Go module proxy
  [`${H}/golang.org/x/text/@v/v0.14.0.zip`, artifact('golang', 'golang.org/x/text', 'v0.14.0')],
  [`${H}/github.com/!burnt!sushi/toml/@v/v1.3.2.zip`, artifact('golang', 'github.com/BurntSushi/toml', 'v1.3.2')],
  [`${H}/github.com/!burnt!sushi/toml/@v/v1.3.2.mod`, metadata('golang', 'github.com/BurntSushi/toml')],
  [`${H}/api/go/go-remote/example.test/greet/@v/v1.1.0.zip`, artifact('golang', 'example.test/greet', 'v1.1.0')],
  [`${H}/example.test/greet/@v/v0.0.0-20240102030405-abcdefabcdef.zip`, artifact('golang', 'example.test/greet', 'v0.0.0-20240102030405-abcdefabcdef')],
  [`${H}/example.test/greet/@v/list`, metadata('golang', 'example.test/greet')],
  [`${H}/example.test/greet/@v/v1.1.0.info`, metadata('golang', 'example.test/greet')],
  [`${H}/example.test/greet/@latest`, metadata('golang', 'example.test/greet')],
  [`${H}/sumdb/sum.example/lookup/example.test/greet@v1.1.0`, metadata('golang')],
  [`${H}/lookup/example.test/greet@v1.1.0`, metadata('golang', 'example.test/greet')],
  [`${H}/tile/8/0/x001/234.p/5`, metadata('golang')],
  // crates
  [`${H}/api/v1/crates/serde/1.0.197/download`, artifact('cargo', 'serde', '1.0.197')],
  [`${H}/crates/serde_json/serde_json-1.0.114.crate`, artifact('cargo', 'serde_json', '1.0.114')],
  [`${H}/se/rd/serde`, metadata('cargo', 'serde')],
  [`${H}/3/s/syn`, metadata('cargo', 'syn')],
  [`${H}/2/cc`, metadata('cargo', 'cc')],
  [`${H}/1/a`, metadata('cargo', 'a')],
  // Maven
  [`${H}/maven2/org/slf4j/slf4j-api/2.0.12/slf4j-api-2.0.12.jar`, artifact('maven', 'org.slf4j:slf4j-api', '2.0.12')],
  [`${H}/maven2/org/slf4j/slf4j-api/2.0.12/slf4j-api-2.0.12.pom`, artifact('maven', 'org.slf4j:slf4j-api', '2.0.12', { type: 'pom' })],
  [`${H}/repository/maven-public/com/google/guava/guava/33.0.0-jre/guava-33.0.0-jre-sources.jar`, artifact('maven', 'com.google.guava:guava', '33.0.0-jre', { classifier: 'sources' })],
  [`${H}/maven2/org/slf4j/slf4j-api/maven-metadata.xml`, metadata('maven', 'org.slf4j:slf4j-api')],
  [`${H}/maven2/org/slf4j/slf4j-api/2.0.12/slf4j-api-2.0.12.jar.sha1`, metadata('maven', 'org.slf4j:slf4j-api')],
  // RubyGems
  [`${H}/gems/rails-html-sanitizer-1.6.0.gem`, artifact('gem', 'rails-html-sanitizer', '1.6.0')],
  [`${H}/gems/nokogiri-1.16.2-x86_64-linux.gem`, artifact('gem', 'nokogiri', '1.16.2', { platform: 'x86_64-linux' })],
  [`${H}/specs.4.8.gz`, metadata('gem')],
  [`${H}/quick/Marshal.4.8/rake-13.1.0.gemspec.rz`, metadata('gem', 'rake')],
  [`${H}/info/rake`, metadata('gem', 'rake'), { mimeType: 'text/plain' }],
  [`${H}/info/rake`, OTHER, { mimeType: 'text/html' }],
  // NuGet
  [`${H}/v3-flatcontainer/newtonsoft.json/13.0.3/newtonsoft.json.13.0.3.nupkg`, artifact('nuget', 'newtonsoft.json', '13.0.3')],
  [`${H}/api/v2/package/Newtonsoft.Json/13.0.3`, artifact('nuget', 'Newtonsoft.Json', '13.0.3')],
  [`${H}/v3/index.json`, metadata('nuget')],
  [`${H}/v3-flatcontainer/newtonsoft.json/index.json`, metadata('nuget', 'newtonsoft.json')],
  [`${H}/v3/registration5-gz-semver2/newtonsoft.json/index.json`, metadata('nuget', 'newtonsoft.json')],
  // GitHub releases
  [`${H}/cli/cli/releases/download/v2.45.0/gh_2.45.0_linux_amd64.tar.gz`, artifact('github', 'cli/cli', 'v2.45.0')],
  [`${H}/owner/tool/archive/refs/tags/v1.2.3.tar.gz`, artifact('github', 'owner/tool', 'v1.2.3')],
  [`${H}/owner/tool/tar.gz/refs/tags/v1.2.3`, artifact('github', 'owner/tool', 'v1.2.3')],
  [`${H}/repos/owner/tool/releases/latest`, metadata('github', 'owner/tool')],
  // OCI
  [`${H}/v2/library/alpine/manifests/3.19`, artifact('oci', 'library/alpine', '3.19')],
  [`${H}/v2/library/alpine/manifests/sha256:${'a'.repeat(64)}`, artifact('oci', 'library/alpine', `sha256:${'a'.repeat(64)}`)],
  [`${H}/v2/team/app/base/blobs/sha256:${'b'.repeat(64)}`, artifact('oci', 'team/app/base', `sha256:${'b'.repeat(64)}`)],
  [`${H}/v2/library/alpine/tags/list`, metadata('oci', 'library/alpine')],
  // other
  [`${H}/`, OTHER],
  [`${H}/files/hello.txt`, OTHER],
  [`${H}/gen/2048?seed=2`, OTHER],
  [`${H}/releases/16384/tool.tar.gz`, OTHER],
  [`${H}/files/pkg/gamma-0.9.1.tgz`, OTHER],
  ['not a url', OTHER],
];

describe('classifyUrl', () => {
  // A rest parameter: jest reads a callback that declares more parameters than a row
  // holds as one taking `done`, and would wait for it until the timeout.
  it.each(CASES)('%s', (...[url, want, hints]) => {
    expect(classifyUrl(url, hints)).toEqual(want);
  });

  it('names the file of an artifact, decoded', () => {
    expect((classifyUrl('http://deb.example/debian/pool/main/p/perl/perl-base_1%3a5.36.0-7_amd64.deb') as UrlClass & { file: string }).file).toBe(
      'perl-base_1:5.36.0-7_amd64.deb',
    );
  });

  it('ignores the host and the query', () => {
    for (const host of ['http://a.example', 'https://mirror.example:8443', 'http://127.0.0.1:4873']) {
      expect(classifyUrl(`${host}/axios/-/axios-1.7.9.tgz?cache=1`)).toEqual(artifact('npm', 'axios', '1.7.9'));
    }
  });
});
