import { Args, Flags } from '@oclif/core';
import { BtrflyCommand, type JsonResult } from '../cli/base';
import { Archive } from '../format/archive';
import { SBOM_FORMATS, writeSbom, type SbomFormat } from '../format/sbom';

/** `btrfly sbom T[@REV] [--format cyclonedx|spdx] [-o FILE]`. */
export default class Sbom extends BtrflyCommand {
  static override summary = 'Write what a recorded build downloaded as a bill of materials (CycloneDX or SPDX)';
  static override description =
    'Every package artifact the recording holds (npm tarballs, wheels and sdists, .deb files, Go module zips, crates, Maven files, gems, ' +
    'NuGet packages, GitHub release assets, OCI manifests and blobs) answered 2xx, once per purl and SHA-256, with its purl, the SHA-256 ' +
    'of the bytes received and its download URL (without user:password@). CycloneDX 1.6 JSON by default, or SPDX 2.3 JSON. ' +
    'The document is reproducible: its time is the recording\'s, its identifiers come from the commit id. ' +
    'T is the tag\'s newest recording; T@REV pins one. Printed to stdout unless -o names a file (written atomically).';
  static override examples = [
    '<%= config.bin %> sbom example1',
    '<%= config.bin %> sbom example1@1a2b3c4 --format spdx -o example1.spdx.json',
  ];
  static override args = { spec: Args.string({ description: 'T or T@REV', required: true }) };
  static override flags = {
    format: Flags.string({ description: 'document format', options: [...SBOM_FORMATS], default: 'cyclonedx' }),
    output: Flags.string({ char: 'o', helpValue: 'FILE', description: 'file to write, or - for stdout (the default)', default: '-' }),
  };

  async run(): Promise<JsonResult> {
    const { args, flags } = await this.parse(Sbom);
    const archive = await Archive.open(flags.archive);
    this.onTeardown(() => archive.close());
    const r = await writeSbom(archive, args.spec, flags.format as SbomFormat, flags.output, { toolVersion: this.config.version });
    if (r.file === '-') return;
    if (this.jsonEnabled()) return r;
    const name = r.format === 'spdx' ? 'SPDX 2.3' : 'CycloneDX 1.6';
    this.log(`wrote the ${name} SBOM of ${r.label} (${r.artifacts} artifacts) to ${r.file}`);
  }
}
