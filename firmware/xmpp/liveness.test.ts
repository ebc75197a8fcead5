/**
 * Reconnection delays: growing exponentially from the first delay to the cap, with jitter that
 * spreads a fleet of devices over the upper half of each delay.
 * References: RFC 6120 §3.3 (reconnection with backoff and randomness).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffDelay } from "./liveness.ts";

test("backoff doubles from the first delay up to the cap, jittered within the upper half", () => {
  for (const [attempt, base] of [
    [0, 1000],
    [1, 2000],
    [3, 8000],
    [6, 60_000],
    [1000, 60_000],
  ] as const) {
    const delays = Array.from({ length: 200 }, () => backoffDelay(attempt, 1000, 60_000));
    assert.ok(
      delays.every((d) => d >= base / 2 && d <= base),
      `attempt ${attempt} within [${base / 2}, ${base}]`,
    );
    assert.ok(new Set(delays).size > 100, "devices do not all pick the same delay");
  }
});
