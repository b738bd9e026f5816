/** Injection token for the composition root (read by the discovery routes only). */
export const BROKER = Symbol('tollgate.broker');
