import assert from "node:assert/strict";
import bcrypt from "bcryptjs";
import { createBcryptPool } from "./bcrypt_pool.ts";

Deno.test("createBcryptPool(): checks run on workers; the main thread keeps running meanwhile", async () => {
  const pool = createBcryptPool({ size: 2 });
  try {
    assert.ok(pool.threaded);
    const hash = bcrypt.hashSync("secret", 11);
    let ticks = 0;
    let ticking = true;
    const tick = () => {
      ticks++;
      if (ticking) setTimeout(tick, 0);
    };
    tick();
    const results = await Promise.all([
      pool.compare("secret", hash),
      pool.compare("wrong", hash),
      pool.compare("secret", "not a hash"),
    ]);
    ticking = false;
    assert.deepEqual(results, [true, false, false]);
    // In the main thread bcryptjs would run in 100 ms slices: a few ticks at most.
    assert.ok(ticks > 20, `${ticks} timer ticks during the checks`);
  } finally {
    pool.close();
  }
  assert.equal(pool.threaded, false);
  assert.equal(
    await pool.compare("x", bcrypt.hashSync("x", 4)),
    true,
    "after close: in the main thread",
  );
});

Deno.test("createBcryptPool(): without its worker module (a bundle), checks run in the main thread", async () => {
  const pool = createBcryptPool({ workerUrl: new URL("./no_such_worker.ts", import.meta.url) });
  assert.equal(pool.threaded, false);
  assert.equal(await pool.compare("x", bcrypt.hashSync("x", 4)), true);
  assert.equal(await pool.compare("y", bcrypt.hashSync("x", 4)), false);
  pool.close();
});
