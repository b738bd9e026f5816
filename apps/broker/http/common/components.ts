import type { z } from 'zod';
import { apiKeyList, apiKeyResponse, createdApiKeyResponse } from '../admin/api-keys.responses.js';
import { boundaryChangeResponse, boundaryList, boundaryResponse } from '../admin/boundaries.responses.js';
import { issuerList, issuerResponse, issuerWithdrawnResponse } from '../admin/issuers.responses.js';
import { signingKeyList, signingKeyRotation } from '../admin/keys.responses.js';
import { policyList, policyResponse, simulationResponse, whatIfResponse } from '../admin/policies.responses.js';
import { workloadList, workloadResponse, workloadRevokedResponse } from '../admin/workloads.responses.js';
import { approvalPage, approvalPendingResponse, approvalResponse } from '../approvals/approvals.responses.js';
import { auditCheckpointResponse, auditEventResponse, auditPage, auditVerifyResponse } from '../audit/audit.responses.js';
import { healthResponse, jwksResponse, metadataResponse, readinessResponse } from '../discovery/discovery.responses.js';
import { introspectionResponse, revocationResponse } from '../oauth/oauth.responses.js';
import { leasePage, leaseResponse, leaseRevokedResponse } from '../review/leases.responses.js';
import { decisionPage, decisionResponse, timelineResponse } from '../review/review.responses.js';
import { credentialResponse, taskChangeResponse, taskDetailResponse, taskResponse } from '../tasks/tasks.responses.js';
import { tokenResponse } from '../token/token.responses.js';
import { errorResponse } from './responses.js';

/**
 * Named in components.schemas, in this order; an operation answering one of these refers to it
 * by name (the very object: apps/broker/http/openapi.ts compares identities).
 */
export const RESPONSE_COMPONENTS: Record<string, z.ZodType> = {
  Error: errorResponse,
  Task: taskResponse,
  TaskDetail: taskDetailResponse,
  TaskChange: taskChangeResponse,
  TaskTimeline: timelineResponse,
  LeaseRevoked: leaseRevokedResponse,
  CredentialResponse: credentialResponse,
  Lease: leaseResponse,
  LeasePage: leasePage,
  Decision: decisionResponse,
  ApprovalPending: approvalPendingResponse,
  Approval: approvalResponse,
  ApprovalPage: approvalPage,
  DecisionPage: decisionPage,
  AuditEvent: auditEventResponse,
  AuditPage: auditPage,
  AuditVerification: auditVerifyResponse,
  AuditCheckpoint: auditCheckpointResponse,
  Boundary: boundaryResponse,
  BoundaryChange: boundaryChangeResponse,
  BoundaryList: boundaryList,
  Policy: policyResponse,
  PolicyList: policyList,
  Simulation: simulationResponse,
  WhatIf: whatIfResponse,
  Workload: workloadResponse,
  WorkloadList: workloadList,
  WorkloadRevoked: workloadRevokedResponse,
  TokenResponse: tokenResponse,
  Introspection: introspectionResponse,
  Revocation: revocationResponse,
  Jwks: jwksResponse,
  Metadata: metadataResponse,
  Issuer: issuerResponse,
  IssuerList: issuerList,
  IssuerWithdrawn: issuerWithdrawnResponse,
  SigningKeyList: signingKeyList,
  SigningKeyRotation: signingKeyRotation,
  ApiKey: apiKeyResponse,
  CreatedApiKey: createdApiKeyResponse,
  ApiKeyList: apiKeyList,
  Health: healthResponse,
  Readiness: readinessResponse,
};
