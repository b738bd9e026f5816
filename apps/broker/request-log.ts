import { ConsoleLogger } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import { requestScope } from '../../libs/audit/index.js';
import { uuidv7 } from '../../libs/ids/index.js';

/**
 * A request's id: the caller's `x-request-id` when it is one plain token (a proxy's or the SDK's,
 * so logs on both sides join), else a fresh UUIDv7. Anything else a client sends (a repeated
 * header, spaces, control characters, 200 characters) is replaced rather than logged.
 */
export function requestIdOf(request: IncomingMessage): string {
  const given = request.headers['x-request-id'];
  return typeof given === 'string' && /^[A-Za-z0-9._:@/+=-]{1,128}$/.test(given) ? given : uuidv7();
}

/**
 * Nest's JSON console logger, with the id of the request being served on every line logged while
 * serving it (see requestScope): an error line, a warning and the access line then join up.
 */
export class RequestLogger extends ConsoleLogger {
  override log(message: unknown, ...rest: unknown[]): void {
    super.log(withRequestId(message), ...rest);
  }
  override warn(message: unknown, ...rest: unknown[]): void {
    super.warn(withRequestId(message), ...rest);
  }
  override error(message: unknown, ...rest: unknown[]): void {
    super.error(withRequestId(message), ...rest);
  }
  override debug(message: unknown, ...rest: unknown[]): void {
    super.debug(withRequestId(message), ...rest);
  }
}

function withRequestId(message: unknown): unknown {
  const requestId = requestScope.getStore()?.requestId;
  if (requestId === undefined) return message;
  if (message !== null && typeof message === 'object' && !Array.isArray(message) && !(message instanceof Error))
    return { ...message, request_id: requestId };
  return { msg: message, request_id: requestId };
}
