export { createVerifier, checkCall, DEFAULT_ALGORITHMS } from './verifier.js';
export type { AccessTokenClaims, CallFacts, RequestFacts, ToolCall, Verifier, VerifiedCall, VerifierOptions } from './verifier.js';
export {
  InsufficientScope,
  InvalidDpopProof,
  InvalidToken,
  MissingToken,
  TokenRevoked,
  VerifierError,
  VerifierUnavailable,
} from './errors.js';
export { canonicalJson } from './canonical-json.js';
export { paramsDigest } from './params-digest.js';
export { DPOP_ALGORITHMS, ReplayCache, type DpopOptions } from './dpop.js';
export { RevocationFeed, type RevocationOptions } from './revocation.js';
export {
  challengeFor,
  expressErrors,
  expressVerifier,
  fastifyErrors,
  fastifyVerifier,
  nodeAuthenticator,
  replyWithChallenge,
  requestUrl,
  writeChallenge,
  type AdapterOptions,
  type Challenge,
  type ExpressLikeRequest,
  type ExpressLikeResponse,
  type FastifyLikeReply,
  type FastifyLikeRequest,
} from './adapters.js';
export {
  admitMcpRequest,
  authInfoOf,
  DEFAULT_OPEN_METHODS,
  InvalidMcpMessage,
  mcpRefusal,
  openMethodsOf,
  type McpAuthInfo,
  type McpGuardOptions,
  type McpRefusal,
  type McpRequest,
  type TollgateAuthExtra,
} from './mcp.js';
export {
  mcpExpressGuard,
  mcpFastifyGuard,
  mcpNodeGuard,
  type McpExpressRequest,
  type McpFastifyRequest,
  type McpNodeRequest,
} from './mcp-adapters.js';
export { mcpTokenVerifier, type McpTokenVerifier, type SdkAuthErrors } from './mcp-token-verifier.js';
export {
  expressResourceMetadata,
  fastifyResourceMetadata,
  nodeResourceMetadata,
  protectedResourceMetadata,
  protectedResourceMetadataUrl,
  resourceMetadataPaths,
  WELL_KNOWN_PATH,
  type FastifyLikeRoutes,
  type ProtectedResourceMetadata,
  type ResourceMetadataOptions,
} from './mcp-metadata.js';
