import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** What the server does with one request: answer, or break the connection. */
export type Step = { status: number; body?: unknown; headers?: Record<string, string>; delayMs?: number } | 'hang-up';

/**
 * A tiny real HTTP server that plays a script, one step per request (the last step repeats), and
 * records what it saw: the SDK's retries are counted on the wire, not through a mocked fetch.
 * `/.well-known/oauth-authorization-server` is answered apart from the script.
 */
export async function scriptedServer(steps: Step[], issuer?: string) {
  const seen: Seen[] = [];
  let next = 0;
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      if (request.url === '/.well-known/oauth-authorization-server') {
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer: issuer ?? url }));
        return;
      }
      seen.push({ method: request.method!, url: request.url!, headers: request.headers, body });
      const step = steps[Math.min(next++, steps.length - 1)]!;
      if (step === 'hang-up') {
        request.socket.destroy();
        return;
      }
      const answer = () =>
        response
          .writeHead(step.status, { 'content-type': 'application/json', ...step.headers })
          .end(step.body === undefined ? '' : JSON.stringify(step.body));
      if (step.delayMs) setTimeout(answer, step.delayMs).unref();
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export const CREDENTIAL = {
  lease_id: '01a21a2c-7a9f-7b42-b93e-b64af5e55ea3',
  expires_at: '2026-11-26T23:26:12.319Z',
  expires_in: 120,
  credential: { kind: 'jwt', access_token: 'header.payload.signature', token_type: 'Bearer' },
};

export const TASK_ID = '01a21a2c-79f2-7468-bbff-85c14407e3d4';
