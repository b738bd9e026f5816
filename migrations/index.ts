import { Identity1764115200000 } from './1764115200000-identity.js';
import { Boundaries1764115260000 } from './1764115260000-boundaries.js';
import { Tasks1764115320000 } from './1764115320000-tasks.js';
import { DecisionsAndLeases1764115380000 } from './1764115380000-decisions-and-leases.js';
import { SigningKeys1764115440000 } from './1764115440000-signing-keys.js';
import { AuditEvents1764115500000 } from './1764115500000-audit-events.js';
import { BoundarySuperseded1764115560000 } from './1764115560000-boundary-superseded.js';
import { RevocationEvents1764115620000 } from './1764115620000-revocation-events.js';
import { Issuers1764115680000 } from './1764115680000-issuers.js';
import { SigningKeyRotation1764115740000 } from './1764115740000-signing-key-rotation.js';
import { DpopProofs1764115750000 } from './1764115750000-dpop-proofs.js';
import { ApiKeys1764115800000 } from './1764115800000-api-keys.js';
import { CedarPolicies1764115860000 } from './1764115860000-cedar-policies.js';
import { DriftAndRateLimits1764115920000 } from './1764115920000-drift-and-rate-limits.js';
import { Approvals1764115980000 } from './1764115980000-approvals.js';
import { CredentialOutbox1764116040000 } from './1764116040000-credential-outbox.js';
import { TaskContext1764116160000 } from './1764116160000-task-context.js';
import { CedarApprovals1764116220000 } from './1764116220000-cedar-approvals.js';
import { WorkloadRateLimits1764116280000 } from './1764116280000-workload-rate-limits.js';
import { AuditChain1764116340000 } from './1764116340000-audit-chain.js';
import { ApprovalEvents1764116460000 } from './1764116460000-approval-events.js';
import { ApprovalRevocation1764116520000 } from './1764116520000-approval-revocation.js';
import { ApprovalTtl1764116580000 } from './1764116580000-approval-ttl.js';
import { TaskOpenRateLimit1764116640000 } from './1764116640000-task-open-rate-limit.js';
import { ToolCall1764116730000 } from './1764116730000-tool-call.js';
import { EventNotify1764116790000 } from './1764116790000-event-notify.js';
import { ExpiryWithoutRewrites1764116850000 } from './1764116850000-expiry-without-rewrites.js';
import { HistoryPartitions1764116910000 } from './1764116910000-history-partitions.js';
import { AuditChainAnchors1764116970000 } from './1764116970000-audit-chain-anchors.js';
import { TaskLeasesPending1764117030000 } from './1764117030000-task-leases-pending.js';
import { AuditLinks1764117090000 } from './1764117090000-audit-links.js';
import { DriftDenialRows1764117150000 } from './1764117150000-drift-denial-rows.js';

/** Every migration, oldest first. Listed by hand so the compiled service needs no file globbing. */
export const migrations = [
  Identity1764115200000,
  Boundaries1764115260000,
  Tasks1764115320000,
  DecisionsAndLeases1764115380000,
  SigningKeys1764115440000,
  AuditEvents1764115500000,
  BoundarySuperseded1764115560000,
  RevocationEvents1764115620000,
  Issuers1764115680000,
  SigningKeyRotation1764115740000,
  DpopProofs1764115750000,
  ApiKeys1764115800000,
  CedarPolicies1764115860000,
  DriftAndRateLimits1764115920000,
  Approvals1764115980000,
  CredentialOutbox1764116040000,
  TaskContext1764116160000,
  CedarApprovals1764116220000,
  WorkloadRateLimits1764116280000,
  AuditChain1764116340000,
  ApprovalEvents1764116460000,
  ApprovalRevocation1764116520000,
  ApprovalTtl1764116580000,
  TaskOpenRateLimit1764116640000,
  ToolCall1764116730000,
  EventNotify1764116790000,
  ExpiryWithoutRewrites1764116850000,
  HistoryPartitions1764116910000,
  AuditChainAnchors1764116970000,
  TaskLeasesPending1764117030000,
  AuditLinks1764117090000,
  DriftDenialRows1764117150000,
];
