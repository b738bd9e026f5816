/** Injected wherever code needs the local time, so tests control it. Expiry uses the database clock. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
