import { parseDaemonSessionRequest, parseSessionRequest } from '../../src/engine/session/session-request';

test('the service takes no clients (its client is the caller); the daemon takes the host\'s addresses, checked like the rest', () => {
  const body = { tag: 'app', mode: 'record', clients: ['127.0.0.1', '::1'], redactHeaders: ['x-secret'] };
  expect(() => parseSessionRequest(body)).toThrow(/^the session request is invalid: [^\n]+$/);
  expect(parseDaemonSessionRequest(body)).toEqual(body);
  for (const bad of [{ ...body, clients: [''] }, { ...body, redactHeaders: [''] }, { ...body, rules: [{ host: '' }] }, { ...body, mode: 'replay' }, { ...body, extra: 1 }]) {
    expect(() => parseDaemonSessionRequest(bad)).toThrow(/^the session request is invalid: [^\n]+, clients \(up to 100 addresses\) and rules [^\n]+$/);
  }
  expect(() => parseDaemonSessionRequest(undefined)).toThrow(/^the session request has no JSON body/);
});

test('a session request may keep names of the default secret list in clear (keepQuery), non-empty ones only', () => {
  const body = { tag: 'app', mode: 'record', redactQuery: ['session_id'], keepQuery: ['key'] };
  expect(parseSessionRequest(body)).toEqual(body);
  expect(() => parseSessionRequest({ ...body, keepQuery: [''] })).toThrow(/^the session request is invalid: [^\n]*keepQuery[^\n]+$/);
});
