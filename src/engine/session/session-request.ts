import { BtrflyError } from '../../errors';
import { schemaChecker } from '../../format/manifest';
import type { OpenSessionOptions } from './runtime';

/** At most this many redacted names, or rules, in one session request. */
export const MAX_SESSION_LIST = 100;

/** What `POST /v1/sessions` may carry; everything else is refused. */
export type SessionRequest = Pick<OpenSessionOptions, 'tag' | 'mode' | 'append' | 'redactHeaders' | 'redactQuery' | 'keepQuery' | 'rules'>;

/** What the host-mode daemon's `POST /sessions` may carry: the same, and the host's addresses as clients. */
export type DaemonSessionRequest = SessionRequest & Pick<OpenSessionOptions, 'clients'>;

const checks = new Map<boolean, (value: unknown) => string | undefined>();

/**
 * Checks the body of `POST /v1/sessions` before anything is opened: the names it carries
 * are sealed into the recording's manifest, so a value the manifest schema refuses (an empty
 * header name, a rule without host) would make the tag unreadable. Rules are checked against
 * the manifest schema's own rule definition. The service takes no `clients`: a session's
 * client is the address the call came from.
 * @throws BtrflyError USAGE (400), one line naming the first problem
 */
export function parseSessionRequest(body: unknown): SessionRequest {
  return parse(body, false);
}

/**
 * {@link parseSessionRequest} for the host-mode daemon's control socket, where `btrfly start`
 * names the host's addresses as the session's `clients` (up to {@link MAX_SESSION_LIST}).
 * @throws BtrflyError USAGE (400), one line naming the first problem
 */
export function parseDaemonSessionRequest(body: unknown): DaemonSessionRequest {
  return parse(body, true);
}

function parse(body: unknown, withClients: boolean): DaemonSessionRequest {
  let check = checks.get(withClients);
  if (!check) {
    check = schemaChecker((ref) => {
      const names = { type: 'array', maxItems: MAX_SESSION_LIST, items: { type: 'string', minLength: 1, maxLength: 256 } };
      return {
        type: 'object',
        required: ['tag', 'mode'],
        additionalProperties: false,
        properties: {
          tag: { type: 'string', minLength: 1, maxLength: 1024 },
          mode: { enum: ['record', 'playback'] },
          append: { type: 'boolean' },
          redactHeaders: names,
          redactQuery: names,
          keepQuery: names,
          rules: { type: 'array', maxItems: MAX_SESSION_LIST, items: ref('rule') },
          ...(withClients ? { clients: names } : {}),
        },
      };
    });
    checks.set(withClients, check);
  }
  if (body === undefined) throw new BtrflyError('USAGE', 'the session request has no JSON body: send {"tag": "T", "mode": "record"} with content-type: application/json');
  const problem = check(body);
  if (problem) {
    throw new BtrflyError(
      'USAGE',
      `the session request is invalid: ${problem}: send {"tag": "T", "mode": "record"|"playback"} with optional append (boolean), redactHeaders, redactQuery and keepQuery (up to ${MAX_SESSION_LIST} non-empty names)${withClients ? `, clients (up to ${MAX_SESSION_LIST} addresses)` : ''} and rules (up to ${MAX_SESSION_LIST} {"host", "ignoreQuery", "ignoreHeaders"})`,
    );
  }
  return body as DaemonSessionRequest;
}
