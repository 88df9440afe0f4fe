// What a Vercel user's app does with the env vars of a provisioned sqlite-db resource, using
// the clients people already have: @libsql/client, and Drizzle ORM on top of it. Run by
// tests/integration/test_libsql_clients.py against a real wharf; every check that fails
// makes the process exit non-zero with the reason.
//
// Env: DATABASE_URL, DATABASE_TOKEN, DATABASE_READONLY_TOKEN (as Vercel hands them out).
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { drizzle } from "drizzle-orm/libsql";
import { eq, sql } from "drizzle-orm";
import { sqliteTable, integer, text, real } from "drizzle-orm/sqlite-core";

const url = process.env.DATABASE_URL;
const authToken = process.env.DATABASE_TOKEN;
const readonlyToken = process.env.DATABASE_READONLY_TOKEN;
assert.ok(url && authToken && readonlyToken, "DATABASE_URL and both tokens are required");

const passed = [];
async function check(name, fn) {
  try {
    await fn();
    passed.push(name);
    console.log(`PASS ${name}`);
  } catch (e) {
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
    if (e && e.code) console.log(`  code: ${e.code}`);
    process.exitCode = 1;
  }
}

async function rejectsWith(promise, predicate, what) {
  try {
    await promise;
  } catch (e) {
    assert.ok(predicate(e), `${what}: unexpected error ${e && e.code} ${e && e.message}`);
    return e;
  }
  assert.fail(`${what}: expected an error`);
}

const client = createClient({ url, authToken });
const count = async () => Number((await client.execute("SELECT count(*) AS n FROM items")).rows[0].n);

await check("create table", async () => {
  await client.execute(
    "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, price REAL, data BLOB, note TEXT)");
});

await check("insert with positional args", async () => {
  const r = await client.execute({
    sql: "INSERT INTO items (name, price, data, note) VALUES (?, ?, ?, ?)",
    args: ["apple", 1.5, new Uint8Array([0, 1, 255]), null],
  });
  assert.equal(r.rowsAffected, 1);
  assert.equal(r.lastInsertRowid, 1n);
});

await check("insert with named args", async () => {
  const r = await client.execute({
    sql: "INSERT INTO items (name, price, data, note) VALUES (:name, :price, :data, :note)",
    args: { name: "pear", price: 2, data: new Uint8Array([7]), note: "ripe" },
  });
  assert.equal(r.rowsAffected, 1);
  assert.equal(r.lastInsertRowid, 2n);
});

await check("typed select", async () => {
  const r = await client.execute("SELECT id, name, price, data, note FROM items ORDER BY id");
  assert.deepEqual(r.columns, ["id", "name", "price", "data", "note"]);
  assert.deepEqual(r.columnTypes, ["INTEGER", "TEXT", "REAL", "BLOB", "TEXT"]);
  assert.equal(r.rows.length, 2);
  const [a, b] = r.rows;
  assert.equal(a.id, 1);
  assert.equal(typeof a.id, "number");
  assert.equal(a.name, "apple");
  assert.equal(a.price, 1.5);
  assert.deepEqual([...new Uint8Array(a.data)], [0, 1, 255]);
  assert.equal(a.note, null);
  assert.equal(b.price, 2);
  assert.equal(b.note, "ripe");
  // Integers travel as strings, so bigint mode gets them exactly.
  const exact = createClient({ url, authToken, intMode: "bigint" });
  const big = await exact.execute("SELECT 9007199254740993 AS big");
  assert.equal(big.rows[0].big, 9007199254740993n);
  exact.close();
});

await check("transactional batch rolls back on error", async () => {
  const before = await count();
  const e = await rejectsWith(
    client.batch(
      [
        { sql: "INSERT INTO items (name) VALUES (?)", args: ["plum"] },
        { sql: "INSERT INTO items (name) VALUES (?)", args: ["apple"] }, // UNIQUE violation
      ],
      "write",
    ),
    (err) => /SQLITE_CONSTRAINT/.test(err.code) && /UNIQUE/.test(err.message),
    "batch with a duplicate",
  );
  assert.equal(await count(), before, `nothing of the failed batch stays (${e.code})`);
  const ok = await client.batch(
    [
      { sql: "INSERT INTO items (name) VALUES (?)", args: ["fig"] },
      "SELECT count(*) AS n FROM items",
    ],
    "write",
  );
  assert.equal(ok[0].rowsAffected, 1);
  assert.equal(Number(ok[1].rows[0].n), before + 1);
});

await check("interactive transaction with rollback", async () => {
  const before = await count();
  const tx = await client.transaction("write");
  await tx.execute({ sql: "INSERT INTO items (name) VALUES (?)", args: ["kiwi"] });
  const inside = await tx.execute("SELECT count(*) AS n FROM items");
  assert.equal(Number(inside.rows[0].n), before + 1);
  await tx.rollback();
  assert.equal(await count(), before);
});

await check("interactive transaction with commit", async () => {
  const before = await count();
  const tx = await client.transaction("write");
  await tx.execute({ sql: "INSERT INTO items (name) VALUES (?)", args: ["lime"] });
  await tx.execute({ sql: "UPDATE items SET price = ? WHERE name = ?", args: [3.25, "lime"] });
  await tx.commit();
  assert.equal(await count(), before + 1);
  const r = await client.execute({ sql: "SELECT price FROM items WHERE name = ?", args: ["lime"] });
  assert.equal(r.rows[0].price, 3.25);
});

await check("read transaction", async () => {
  const tx = await client.transaction("read");
  const r = await tx.execute("SELECT count(*) AS n FROM items");
  assert.ok(Number(r.rows[0].n) > 0);
  await rejectsWith(
    tx.execute("INSERT INTO items (name) VALUES ('nope')"),
    (err) => /READONLY/.test(err.code),
    "write in a read transaction",
  );
  tx.close();
});

await check("executeMultiple", async () => {
  await client.executeMultiple(
    "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('a'); INSERT INTO notes (body) VALUES ('b');");
  const r = await client.execute("SELECT count(*) AS n FROM notes");
  assert.equal(Number(r.rows[0].n), 2);
});

await check("read-only token reads and cannot write", async () => {
  const ro = createClient({ url, authToken: readonlyToken });
  const r = await ro.execute("SELECT count(*) AS n FROM items");
  assert.ok(Number(r.rows[0].n) > 0);
  await rejectsWith(
    ro.execute({ sql: "INSERT INTO items (name) VALUES (?)", args: ["grape"] }),
    (err) => err.code === "SQLITE_READONLY",
    "insert with the read-only token",
  );
  await rejectsWith(
    ro.batch([{ sql: "INSERT INTO items (name) VALUES (?)", args: ["grape"] }], "write"),
    (err) => err.code === "SQLITE_READONLY",
    "write batch with the read-only token",
  );
  ro.close();
});

await check("wrong token is refused", async () => {
  const bad = createClient({ url, authToken: "wdb_not-a-real-token" });
  await rejectsWith(
    bad.execute("SELECT 1"),
    (err) => err.code === "UNAUTHORIZED" && /invalid or expired/.test(err.message),
    "a wrong token",
  );
  bad.close();
});

await check("SQL errors carry SQLite's code", async () => {
  await rejectsWith(
    client.execute("SELECT * FROM no_such_table"),
    (err) => err.code === "SQLITE_ERROR" && /no such table/.test(err.message),
    "a missing table",
  );
  await rejectsWith(
    client.execute("ATTACH DATABASE '/tmp/x.db' AS x"),
    (err) => err.code === "SQLITE_AUTH",
    "ATTACH",
  );
});

await check("drizzle: schema, insert, select", async () => {
  const users = sqliteTable("users", {
    id: integer("id").primaryKey({ autoIncrement: true }),
    name: text("name").notNull(),
    email: text("email").notNull().unique(),
    score: real("score"),
  });
  const db = drizzle(client);
  await db.run(sql.raw(
    "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, score REAL)"));
  const inserted = await db.insert(users).values([
    { name: "Ada", email: "ada@example.com", score: 9.5 },
    { name: "Linus", email: "linus@example.com" },
  ]).returning();
  assert.equal(inserted.length, 2);
  assert.equal(inserted[0].id, 1);
  const rows = await db.select().from(users).where(eq(users.email, "ada@example.com"));
  assert.deepEqual(rows, [{ id: 1, name: "Ada", email: "ada@example.com", score: 9.5 }]);
  // drizzle's transaction() is the client's interactive transaction.
  await db.transaction(async (tx) => {
    await tx.update(users).set({ score: 7 }).where(eq(users.name, "Linus"));
  });
  const linus = await db.select({ score: users.score }).from(users).where(eq(users.name, "Linus"));
  assert.deepEqual(linus, [{ score: 7 }]);
});

client.close();
console.log(JSON.stringify({ passed }));
