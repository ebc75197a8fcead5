/**
 * The presence broadcast token bucket, on a fake clock.
 * References: RFC 6121 §4.4 (subsequent presence broadcasts are what it limits).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { TokenBucket } from "./flood.ts";

test("a burst passes, then one token per 1/rate seconds", () => {
  let now = 1_000_000;
  const bucket = new TokenBucket(3, 2, () => now);
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take(), bucket.take()], [true, true, true, false]);
  assert.equal(bucket.msUntilToken(), 500);
  now += 499;
  assert.equal(bucket.take(), false);
  now += 1;
  assert.equal(bucket.take(), true);
  assert.equal(bucket.take(), false);
});

test("an idle bucket refills to the burst and no further", () => {
  let now = 0;
  const bucket = new TokenBucket(2, 1, () => now);
  bucket.take();
  bucket.take();
  now += 60_000;
  assert.equal(bucket.msUntilToken(), 0);
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take()], [true, true, false]);
});
