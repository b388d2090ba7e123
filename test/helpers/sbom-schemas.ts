import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Ajv, { type ValidateFunction } from 'ajv';

/**
 * The official JSON schemas of the two SBOM formats `btrfly sbom` writes, compiled with ajv:
 *
 * - CycloneDX 1.6: `bom-1.6.schema.json` with the `spdx.schema.json` and `jsf-0.82.schema.json` it
 *   references, as @cyclonedx/cyclonedx-library ships them in `res/schema/` (the specification's
 *   files with only their `$ref` file names suffixed `.SNAPSHOT`; checked identical otherwise).
 * - SPDX 2.3: `schemas/spdx-schema.json` of spdx/spdx-spec at tag v2.3, in test/fixtures/schemas/.
 *
 * ajv-formats is not a dependency: the formats the CycloneDX schemas use are checked here
 * (`date-time` as RFC 3339 that parses, `idn-email`, `iri-reference` as a string without white
 * space, `uri` as one `URL` parses, in the JSF schema); the SPDX 2.3 schema uses none.
 */
const CDX_SCHEMAS = join(dirname(require.resolve('@cyclonedx/cyclonedx-library/package.json')), 'res', 'schema');
const SPDX_SCHEMA = join(__dirname, '..', 'fixtures', 'schemas', 'spdx-2.3.schema.json');

const readJson = (file: string): Record<string, unknown> => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;

function newAjv(schemas: Record<string, Record<string, unknown>> = {}): Ajv {
  const ajv = new Ajv({ strict: false, allErrors: true, schemas, loadSchema: (uri) => Promise.reject(new Error(`remote schema ${uri}`)) });
  ajv.addFormat('date-time', (s: string) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.test(s) && !Number.isNaN(Date.parse(s)));
  ajv.addFormat('idn-email', /^[^\s@]+@[^\s@]+$/u);
  ajv.addFormat('iri-reference', /^\S*$/u);
  ajv.addFormat('uri', (s: string) => URL.canParse(s));
  return ajv;
}

let cdx: ValidateFunction | undefined;
let spdx: ValidateFunction | undefined;

/** The validator of CycloneDX 1.6 JSON. */
export function cycloneDxValidator(): ValidateFunction {
  return (cdx ??= newAjv({
    'http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json': readJson(join(CDX_SCHEMAS, 'spdx.SNAPSHOT.schema.json')),
    'http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json': readJson(join(CDX_SCHEMAS, 'jsf-0.82.SNAPSHOT.schema.json')),
  }).compile(readJson(join(CDX_SCHEMAS, 'bom-1.6.SNAPSHOT.schema.json'))));
}

/** The validator of SPDX 2.3 JSON. */
export function spdxValidator(): ValidateFunction {
  return (spdx ??= newAjv().compile(readJson(SPDX_SCHEMA)));
}

/** The schema errors of `doc`, one line each (empty when valid), so a failing test shows them. */
export function schemaErrors(validate: ValidateFunction, doc: unknown): string[] {
  return validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
}
