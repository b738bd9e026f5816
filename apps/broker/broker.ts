import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Clock } from '../../libs/clock/index.js';
import { systemClock } from '../../libs/clock/index.js';
import type { Config } from '../../libs/config/index.js';
import { ConfigurationError } from '../../libs/errors/index.js';
import type { Database } from '../../libs/db/index.js';
import { openDatabase } from '../../libs/db/index.js';
import { TracedDatabase } from '../../libs/db/index.js';
import { createProviders } from '../../libs/credentials/index.js';
import { issuedTokenVerifier } from '../../libs/credentials/index.js';
import { appendAudit } from '../../libs/audit/index.js';
import { AuditLog } from '../../libs/audit/index.js';
import { AuditStore } from '../../libs/audit/index.js';
import { AuditChainer, AuditRetention } from '../../libs/audit/index.js';
import { ApiKeyStore } from '../../libs/identity/index.js';
import { ApiKeys, bootstrapHashOf } from '../../libs/identity/index.js';
import { ClientAuthentication } from '../../libs/identity/index.js';
import { DEFAULT_JWKS_FETCH, FederatedVerifier } from '../../libs/identity/index.js';
import { CachedIssuers } from '../../libs/identity/index.js';
import { IssuerStore } from '../../libs/identity/index.js';
import { Issuers } from '../../libs/identity/index.js';
import { WorkloadAuthenticator } from '../../libs/identity/index.js';
import { ApprovalGate } from '../../libs/approvals/index.js';
import { ApprovalStore } from '../../libs/approvals/index.js';
import { Approvals } from '../../libs/approvals/index.js';
import { CachedWorkloads } from '../../libs/identity/index.js';
import { WorkloadStore } from '../../libs/identity/index.js';
import { tokenBucketOf } from '../../libs/identity/index.js';
import { Workloads } from '../../libs/identity/index.js';
import { DpopVerifier } from '../../libs/identity/index.js';
import { DpopProofStore } from '../../libs/identity/index.js';
import { SigningKeyRing, type KeyTimings } from '../../libs/keys/index.js';
import { Introspection } from '../../libs/leases/index.js';
import { DecisionLedger } from '../../libs/leases/index.js';
import { LeaseStore } from '../../libs/leases/index.js';
import { BatchedLeaseReads } from '../../libs/leases/index.js';
import type { Lease } from '../../libs/leases/index.js';
import { OutboxStore } from '../../libs/leases/index.js';
import { RequestContextReader } from '../../libs/leases/index.js';
import { DriftGuard } from '../../libs/leases/index.js';
import { RateBucketStore } from '../../libs/leases/index.js';
import { RateLimiter } from '../../libs/leases/index.js';
import { HistoryRetention } from '../../libs/leases/index.js';
import { CredentialOutbox, type OutboxTimings } from '../../libs/leases/index.js';
import { CredentialIssuance } from '../../libs/leases/index.js';
import { RequestContextCache } from '../../libs/leases/index.js';
import { LeaseRevocation } from '../../libs/leases/index.js';
import { TokenRevocation } from '../../libs/leases/index.js';
import { RevocationEventLog } from '../../libs/audit/index.js';
import { EventFeed } from '../../libs/leases/index.js';
import { ExpirySweeper } from '../../libs/leases/index.js';
import { BoundaryStore } from '../../libs/policy/index.js';
import { Boundaries } from '../../libs/policy/index.js';
import { CedarProcess } from '../../libs/policy/index.js';
import { Policies } from '../../libs/policy/index.js';
import { PolicyStore } from '../../libs/policy/index.js';
import { Simulator } from '../../libs/policy/index.js';
import { WhatIf } from '../../libs/policy/index.js';
import { TaskStore } from '../../libs/tasks/index.js';
import { TaskHistory } from '../../libs/review/index.js';
import { Tasks } from '../../libs/tasks/index.js';
import type { BrokerConfig } from './config.js';
import { BrokerMetrics } from './metrics.js';

/**
 * The composition root: every domain service built by hand from its parts, in plain TypeScript.
 * The Nest module only hands these to controllers.
 */
export interface Broker {
  config: Config;
  db: Database;
  apiKeys: ApiKeys;
  /** OAuth client authentication on the introspection and revocation endpoints. */
  clients: ClientAuthentication;
  /** Set only on the start that generated the admin key: shown to the operator once. */
  generatedAdminKey: string | undefined;
  keys: SigningKeyRing;
  dpop: DpopVerifier;
  authenticator: WorkloadAuthenticator;
  workloads: Workloads;
  issuers: Issuers;
  boundaries: Boundaries;
  policies: Policies;
  simulator: Simulator;
  whatIf: WhatIf;
  /** The Cedar child processes: credential requests and simulations; what-if replays and validation. */
  cedar: { live: CedarProcess; replay: CedarProcess };
  tasks: Tasks<Lease>;
  /** Task timelines for reviewers. */
  history: TaskHistory;
  issuance: CredentialIssuance;
  approvals: Approvals;
  introspection: Introspection;
  revocation: LeaseRevocation;
  /** RFC 7009: who may revoke which token at /oauth2/revoke. */
  tokenRevocation: TokenRevocation;
  leases: LeaseStore;
  /** Decisions, permits and refusals alike, for reviewers. */
  decisions: DecisionLedger;
  events: RevocationEventLog;
  /** The one poller behind every GET /v1/events stream of this replica (ticked by the app). */
  eventFeed: EventFeed;
  sweeper: ExpirySweeper;
  /** Revokes credentials at their source (Vault, STS) and retries until the source confirms. */
  outbox: CredentialOutbox;
  /** Reviewers' view of the audit chain: events, verification, signed checkpoints. */
  audit: AuditLog;
  /** Links committed audit events into the hash chain (one replica at a time). */
  auditChainer: AuditChainer;
  /** Monthly partitions of leases, decisions and audit events: made ahead, old ones dropped. */
  retention: HistoryRetention;
  metrics: BrokerMetrics;
}

export async function createBroker(
  config: BrokerConfig,
  clock: Clock = systemClock,
  keyTimings?: Partial<KeyTimings>,
  outboxTimings?: Partial<OutboxTimings>,
): Promise<Broker> {
  const kek = config.kek ?? embeddedKek(config.dataDir);
  let generatedAdminKey: string | undefined;
  const onWait = (delayMs: number) => {
    if (config.logLevel === 'debug' || config.logLevel === 'info' || config.logLevel === 'warn') {
      process.stderr.write(JSON.stringify({ level: 'warn', msg: 'database not available at start; waiting', retry_in_ms: delayMs }) + '\n');
    }
  };
  const opened = await openDatabase(
    { databaseUrl: config.databaseUrl, dataDir: config.dataDir, migrate: config.migrate, onWait },
    async (startup) => {
      generatedAdminKey = (await ApiKeys.bootstrap(startup, config.adminKey)).generated;
      await SigningKeyRing.bootstrap(startup, kek, config.signingAlg, appendAudit, config.previousKeks);
    },
  );
  // With traces on, every statement and transaction leaves a span; off, nothing is in between.
  const db = config.tracing ? new TracedDatabase(opened) : opened;

  const metrics = new BrokerMetrics();
  const workloadStore = new WorkloadStore(db);
  const workloadCache = new CachedWorkloads(workloadStore, clock);
  const issuerStore = new IssuerStore(db);
  const issuerCache = new CachedIssuers(issuerStore, clock);
  const federation = new FederatedVerifier(issuerCache, workloadCache, clock, { ...DEFAULT_JWKS_FETCH, cooldownMs: config.jwksCooldownMs });
  const contextCache = new RequestContextCache(clock);
  const taskStore = new TaskStore(db);
  const leases = new LeaseStore(db);
  // Coalesced commits pay on PostgreSQL (CPU per issuance halved in the bench). On the embedded
  // PGlite, one session that runs every statement in turn, the whole broker measured slower with
  // them (embedded issuance, quick bench: median 165/s of 5 runs on; 330/s of 5 runs without them,
  // 2 of this code and 3 of the one before; bimodal), though the ledger alone is faster
  // (bench/coalesce.mjs --pglite): off there until a profile says why.
  const decisions = new DecisionLedger(db, db.kind === 'pglite' ? false : undefined);
  const approvalStore = new ApprovalStore(db);
  let ring: SigningKeyRing;
  try {
    ring = await SigningKeyRing.open(db, kek, {
      alg: config.signingAlg,
      rotationMs: config.keyRotationMs,
      latestLeaseExpiry: (from, to) => leases.latestExpiry(from, to),
      recordEvent: appendAudit,
      clock,
      timings: keyTimings,
    });
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
  const dpopProofs = new DpopProofStore(db);
  const revocation = new LeaseRevocation(db, leases, (ids, reason) => metrics.leasesRevoked.inc({ reason }, ids.length));
  const workloads = new Workloads({
    db,
    store: workloadStore,
    issuers: issuerStore,
    holdings: {
      revokeTasks: (tx, id) => taskStore.revokeForWorkload(tx, id),
      revokeLeases: (tx, id, actor) => revocation.revokeWorkloadLeases(tx, id, 'workload_revoked', actor),
    },
    changed: (id) => workloadCache.forget(id),
  });
  const providers = createProviders(
    { issuer: config.issuer, clock, signingKey: () => ring.signingKey(), audit: appendAudit, db },
    config.credentialSources,
  );
  metrics.watchActiveLeases(() => leases.countActive());
  metrics.watchRevokeFailed(() => leases.countByState('revoke_failed'));
  const apiKeys = new ApiKeys(db, new ApiKeyStore(db), clock, bootstrapHashOf(config.adminKey));
  const authenticator = new WorkloadAuthenticator(workloadCache, config.issuer, clock, undefined, federation);
  const boundaryStore = new BoundaryStore(db);
  const policyStore = new PolicyStore(db);
  // Cedar runs in child processes, so a WASM trap or a V8 fault in it cannot take the broker down:
  // one for credential requests and simulations; one for what-if replays (thousands of rows under
  // throwaway keys must not evict the hot path's sets or hold up its decisions) and validation.
  const cedar = {
    live: new CedarProcess('live', { maxSets: 1000, onRestart: () => metrics.policyEvaluatorRestarts.inc({ evaluator: 'live' }) }),
    replay: new CedarProcess('replay', { maxSets: 200, onRestart: () => metrics.policyEvaluatorRestarts.inc({ evaluator: 'replay' }) }),
  };
  // Started now, beside the rest of the start-up, not by the first request.
  void cedar.live.pid;
  void cedar.replay.pid;
  const policies = new Policies(
    db,
    policyStore,
    cedar.live,
    clock,
    () => contextCache.forgetPolicies(),
    (seconds) => metrics.policyEvaluation.observe(seconds),
    cedar.replay,
  );
  const auditStore = new AuditStore(db);
  // Always there: a workload may have its own limit while the service's is off. Its row is the one
  // authentication just read, so the lookup is a cache hit. Credential requests and task opens.
  const rateLimit = new RateLimiter({
    buckets: new RateBucketStore(db),
    defaultLimit: config.rateLimit,
    clock,
    limitOf: async (id) => {
      const own = (await workloadCache.find(id))?.rateLimit;
      return own ? tokenBucketOf(own) : undefined;
    },
    refused: (limit) => metrics.rateLimited.inc({ limit }),
  });
  const events = new RevocationEventLog(db);
  const eventFeed = new EventFeed(events, (ids) => apiKeys.liveIds(ids), config.events);
  metrics.watchEventStreams(() => eventFeed.size);
  const introspection = new Introspection(
    // Concurrent introspections share one `= ANY($1)` read of their lease rows (no cache: each
    // answer comes from a statement sent after it was asked). On PGlite too: there it measured
    // faster, CPU per introspection 5.0 -> 3.5 ms (bench/introspection.mjs --pglite).
    new BatchedLeaseReads(leases),
    issuedTokenVerifier(
      config.issuer,
      () => ring.publicJwks,
      () => clock.now(),
      undefined,
      () => ring.refreshForUnknownKid(),
    ),
  );

  return {
    config,
    db,
    apiKeys,
    clients: new ClientAuthentication({ keys: apiKeys, workloads: authenticator, issuer: config.issuer, clock }),
    generatedAdminKey,
    keys: ring,
    dpop: new DpopVerifier(config.issuer, dpopProofs, clock),
    authenticator,
    workloads,
    issuers: new Issuers(db, issuerStore, workloads, () => issuerCache.forget()),
    boundaries: new Boundaries(db, boundaryStore, revocation, cedar.replay, (id) => contextCache.forgetBoundary(id)),
    policies,
    simulator: new Simulator(boundaryStore, policies),
    whatIf: new WhatIf(db, policyStore, cedar.replay, clock),
    cedar,
    tasks: new Tasks({
      db,
      tasks: taskStore,
      leases,
      revocation,
      changed: (id) => contextCache.forgetTask(id),
      limitOpen: (id) => rateLimit.take(id, 'task_open'),
    }),
    history: new TaskHistory({ audit: auditStore, tasks: taskStore, decisions, leases, approvals: approvalStore }),
    issuance: new CredentialIssuance({
      storage: { context: new RequestContextReader(db), decisions, leases },
      providers,
      revocation,
      observe: (outcome, reason) => metrics.credentialRequests.inc({ outcome, reason: reason ?? 'none' }),
      cache: contextCache,
      approvals: new ApprovalGate(approvalStore, decisions),
      drift: new DriftGuard({
        db,
        revocation,
        threshold: config.driftThreshold,
        changed: (id) => contextCache.forgetTask(id),
        counted: () => metrics.driftSuspensions.inc(),
      }),
      rateLimit,
      policies,
    }),
    approvals: new Approvals(db, approvalStore),
    introspection,
    revocation,
    tokenRevocation: new TokenRevocation(introspection, revocation),
    leases,
    decisions,
    events,
    eventFeed,
    sweeper: new ExpirySweeper({ db, tasks: taskStore, leases, revocation, dpopProofs }),
    outbox: new CredentialOutbox({
      store: new OutboxStore(db),
      providers,
      timings: outboxTimings,
      observe: (kind, outcome) => metrics.sourceRevocations.inc({ kind, outcome }),
    }),
    audit: new AuditLog({ store: auditStore, signingKey: () => ring.signingKey(), issuer: config.issuer, clock }),
    auditChainer: new AuditChainer(db, auditStore, (pass) => metrics.auditChainPass(pass.linked, pass.unlinked)),
    retention: new HistoryRetention(db, new AuditRetention(), approvalStore),
    metrics,
  };
}

/**
 * On the embedded default the KEK lives beside the database (mode 0600), generated on first
 * start. With DATABASE_URL it must come from the environment (validated in config).
 */
function embeddedKek(dataDir: string): Buffer {
  const dir = resolve(dataDir);
  const file = join(dir, 'kek');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!existsSync(file)) writeFileSync(file, randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  const kek = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
  if (kek.length !== 32) throw new ConfigurationError([`TOLLGATE_KEK: ${file} does not hold 32 bytes in base64`]);
  return kek;
}
