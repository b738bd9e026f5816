import { Catch, HttpException, type ArgumentsHost, type ExceptionFilter, type LoggerService } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { isUnavailable } from '../../../libs/db/index.js';
import { InvalidClient, RateLimited, TollgateError, TooManyStreams, type ErrorCode } from '../../../libs/errors/index.js';

/** Documented as the `Error` schema of GET /openapi.json (apps/broker/http/openapi.ts). */
interface ErrorBody {
  error: ErrorCode;
  error_description: string;
  [extra: string]: unknown;
}

/**
 * The one place errors become HTTP. Typed domain errors carry their own status and OAuth code;
 * framework and parser errors are mapped by kind; a database that does not answer is a 503; anything
 * else is our bug: logged with its stack, answered with a bare 500 that reveals nothing.
 */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  constructor(private readonly logger: LoggerService) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    const { status, body } = this.toResponse(exception);
    if (exception instanceof InvalidClient && exception.challenge === 'Basic')
      reply.header('www-authenticate', 'Basic realm="tollgate", charset="UTF-8"');
    else if (status === 401 || body.error === 'insufficient_scope') reply.header('www-authenticate', `Bearer error="${body.error}"`);
    if (status === 503) reply.header('retry-after', '1');
    if (exception instanceof RateLimited || exception instanceof TooManyStreams)
      reply.header('retry-after', String(exception.retryAfterSeconds));
    reply.status(status).header('cache-control', 'no-store').send(body);
  }

  private toResponse(exception: unknown): { status: number; body: ErrorBody } {
    if (exception instanceof TollgateError) {
      return { status: exception.status, body: { error: exception.code, error_description: exception.description, ...exception.extra } };
    }
    // Nest wraps Fastify's parser errors in an HttpException whose cause carries Fastify's code.
    const fastifyCode = (exception as { code?: unknown })?.code ?? (exception as { cause?: { code?: unknown } })?.cause?.code;
    switch (fastifyCode) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return error(413, 'invalid_request', 'the request body is larger than 1 MiB');
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return error(415, 'invalid_request', 'unsupported content type');
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return error(400, 'invalid_request', 'the JSON body is empty');
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return error(400, 'invalid_request', 'the request body is not valid JSON');
    }
    if (exception instanceof SyntaxError) return error(400, 'invalid_request', 'the request body is not valid JSON');
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      if (status === 404) return error(404, 'not_found', 'no such route');
      if (status === 413) return error(413, 'invalid_request', 'the request body is larger than 1 MiB');
      if (status < 500) return error(status, 'invalid_request', 'the request could not be handled');
    }
    const statusCode = (exception as { statusCode?: unknown })?.statusCode;
    if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
      return error(statusCode, 'invalid_request', 'the request could not be handled');
    }
    if (isUnavailable(exception)) return error(503, 'temporarily_unavailable', 'the database is not available; try again shortly');
    this.logger.error({ msg: 'unhandled error', error: describe(exception) });
    return error(500, 'server_error', 'internal error');
  }
}

function error(status: number, code: ErrorCode, description: string): { status: number; body: ErrorBody } {
  return { status, body: { error: code, error_description: description } };
}

function describe(exception: unknown): Record<string, unknown> {
  if (exception instanceof Error) return { name: exception.name, message: exception.message, stack: exception.stack };
  return { value: String(exception) };
}
