import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { InvalidClient } from '../../../libs/errors/index.js';
import { requireAccess, type Access, type ApiKey } from '../../../libs/identity/index.js';
import { ApiKeys } from '../../../libs/identity/index.js';
import type { DpopVerifier } from '../../../libs/identity/index.js';
import { WorkloadAuthenticator } from '../../../libs/identity/index.js';

/** What the guards learned about the caller. */
export interface Caller {
  workloadId?: string;
  apiKey?: ApiKey;
}

type AuthedRequest = FastifyRequest & { caller?: Caller };

export function callerOf(request: FastifyRequest): Caller {
  return (request as AuthedRequest).caller ?? {};
}

/** The API key a guard let through (routes behind an API-key guard only). */
export function apiKeyOf(request: FastifyRequest): ApiKey {
  return callerOf(request).apiKey!;
}

/**
 * Who is acting, for the audit trail: `<role>:<key id>` of the API key a guard let through (the
 * bootstrap key from TOLLGATE_ADMIN_KEY is `admin:bootstrap`), so with several admin keys the
 * chain says which one changed what. Routes behind an API-key guard only.
 */
export function actorOf(request: FastifyRequest): string {
  const key = apiKeyOf(request);
  return `${key.role}:${key.id}`;
}

export function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer +([^\s]+) *$/i.exec(header);
  return match?.[1];
}

/**
 * The key a credential request proves it holds (RFC 9449 DPoP), or undefined without a DPoP
 * header: a request without one pays for nothing more than this property read (not even an await). Every DPoP header
 * is counted from the raw headers (Node would join repeats into one value), so two are refused.
 */
export function proofOfPossession(dpop: DpopVerifier, request: FastifyRequest): Promise<{ jkt: string }> | undefined {
  if (request.headers.dpop === undefined) return undefined;
  const raw = request.raw.rawHeaders;
  const proofs: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'dpop') proofs.push(raw[i + 1]!);
  return dpop.verify(proofs, request.method, request.url);
}

/** Bot routes: the caller is a workload proving itself with its signed assertion. */
@Injectable()
export class WorkloadGuard implements CanActivate {
  constructor(private readonly authenticator: WorkloadAuthenticator) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<AuthedRequest>();
    const token = bearer(request);
    if (!token) throw new InvalidClient('a workload assertion is required (Authorization: Bearer <JWT>)');
    const workload = await this.authenticator.authenticate(token);
    request.caller = { workloadId: workload.id };
    return true;
  }
}

/**
 * Routes for API keys: 401 invalid_client for a missing, unknown or revoked key, 403
 * insufficient_scope for a key whose role does not allow the access.
 */
abstract class ApiKeyGuard implements CanActivate {
  constructor(private readonly keys: ApiKeys) {}

  protected abstract access(request: FastifyRequest): Access;

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<AuthedRequest>();
    const key = await this.keys.authenticate(bearer(request));
    requireAccess(key, this.access(request));
    request.caller = { apiKey: key };
    return true;
  }
}

/**
 * The admin API: an admin does everything, a reviewer reads. Decided by the method, so a write
 * route added later is closed to reviewers without anyone remembering to say so.
 */
@Injectable()
export class AdminGuard extends ApiKeyGuard {
  constructor(keys: ApiKeys) {
    super(keys);
  }

  protected access(request: FastifyRequest): Access {
    return readOr('write', request);
  }
}

/** Review routes: read-only, open to admins and reviewers. */
@Injectable()
export class ReviewerGuard extends ApiKeyGuard {
  constructor(keys: ApiKeys) {
    super(keys);
  }

  protected access(): Access {
    return 'read';
  }
}

/**
 * Approvals: admins and reviewers read them (GET) and decide them (approve, deny): the one write a
 * reviewer is allowed.
 */
@Injectable()
export class ApproverGuard extends ApiKeyGuard {
  constructor(keys: ApiKeys) {
    super(keys);
  }

  protected access(request: FastifyRequest): Access {
    return readOr('approve', request);
  }
}

/** The revocation event stream: admins, reviewers, and resource servers (held to their audience). */
@Injectable()
export class EventsGuard extends ApiKeyGuard {
  constructor(keys: ApiKeys) {
    super(keys);
  }

  protected access(): Access {
    return 'events';
  }
}

/** A GET (or HEAD) reads; any other method is the given kind of write. */
function readOr(write: Access, request: FastifyRequest): Access {
  return request.method === 'GET' || request.method === 'HEAD' ? 'read' : write;
}
