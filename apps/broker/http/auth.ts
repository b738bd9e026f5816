import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { InvalidClient } from '../../../libs/errors/errors.js';
import { AdminKeys, type AdminRole } from '../../../libs/identity/admin-keys.js';
import type { DpopVerifier } from '../../../libs/identity/dpop.js';
import { WorkloadAuthenticator } from '../../../libs/identity/workload-authenticator.js';

/** What the guards learned about the caller. */
export interface Caller {
  workloadId?: string;
  adminRole?: AdminRole;
}

type AuthedRequest = FastifyRequest & { caller?: Caller };

export function callerOf(request: FastifyRequest): Caller {
  return (request as AuthedRequest).caller ?? {};
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

/** Admin routes: write access needs an admin key. */
@Injectable()
export class AdminGuard implements CanActivate {
  constructor(private readonly keys: AdminKeys) {}

  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<AuthedRequest>();
    const role = this.keys.authenticate(bearer(request));
    if (role !== 'admin') throw new InvalidClient('this route needs an admin key');
    request.caller = { adminRole: role };
    return true;
  }
}

/** Review routes: read-only, open to admins and reviewers. */
@Injectable()
export class ReviewerGuard implements CanActivate {
  constructor(private readonly keys: AdminKeys) {}

  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<AuthedRequest>();
    request.caller = { adminRole: this.keys.authenticate(bearer(request)) };
    return true;
  }
}
