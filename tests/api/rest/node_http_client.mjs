// The Node SDK's HttpClient (REST v2) against a running SheafDB: create, insert, load, search,
// query, get, release, drop. Usage:
//   SDK_DIR=<folder holding node_modules/@zilliz/milvus2-sdk-node> ENDPOINT=http://127.0.0.1:19530 \
//   TOKEN=root:Milvus node node_http_client.mjs
// Ends with a line 'N passed, M failed'; exit status 1 if any failed.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.SDK_DIR || process.cwd(), "package.json"));
const { HttpClient } = require("@zilliz/milvus2-sdk-node");

const endpoint = process.env.ENDPOINT || "http://127.0.0.1:19530";
const token = process.env.TOKEN || "root:Milvus";
let passed = 0, failed = 0;

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`PASS ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack.split("\n").slice(0, 3).join(" | ") : e}`);
  }
}
function expect(cond, what, got) {
  if (!cond) throw new Error(`expected ${what}, got ${JSON.stringify(got)}`);
}

// The SDK's default: int64 rendered as strings (it sends Accept-Type-Allow-Int64: false).
const client = new HttpClient({ endpoint, token });
const collectionName = "node_http";
const rows = Array.from({ length: 20 }, (_, i) => ({
  id: i, vector: [i, 1, 0, 0], tag: `t${i % 2}`, count: 1000 + i,
}));

await check("create collection with schema and index", async () => {
  await client.dropCollection({ collectionName });
  const res = await client.createCollection({
    collectionName,
    schema: {
      autoId: false,
      enableDynamicField: true,
      fields: [
        { fieldName: "id", dataType: "Int64", isPrimary: true },
        { fieldName: "vector", dataType: "FloatVector", elementTypeParams: { dim: 4 } },
        { fieldName: "count", dataType: "Int64" },
      ],
    },
    indexParams: [{ fieldName: "vector", indexName: "vector", metricType: "L2", params: { index_type: "FLAT" } }],
  });
  expect(res.code === 0, "code 0", res);
  const has = await client.hasCollection({ collectionName });
  expect(has.code === 0 && has.data.has === true, "has", has);
});

await check("describe collection", async () => {
  const res = await client.describeCollection({ collectionName });
  expect(res.code === 0 && res.data.collectionName === collectionName, "described", res);
  expect(res.data.fields.map((f) => f.name).join() === "id,vector,count", "fields", res.data.fields);
});

await check("insert 20 rows (ids come back as strings)", async () => {
  const res = await client.insert({ collectionName, data: rows });
  expect(res.code === 0 && res.data.insertCount === 20, "insertCount 20", res);
  expect(res.data.insertIds[3] === "3", "string ids", res.data.insertIds);
});

await check("release, then load", async () => {
  let res = await client.releaseCollection({ collectionName });
  expect(res.code === 0, "released", res);
  res = await client.getCollectionLoadState({ collectionName });
  expect(res.code === 0 && res.data.loadState === "LoadStateNotLoad", "NotLoad", res);
  res = await client.loadCollection({ collectionName });
  expect(res.code === 0, "loaded", res);
  res = await client.getCollectionLoadState({ collectionName });
  expect(res.data.loadState === "LoadStateLoaded" && res.data.loadProgress === 100, "Loaded 100", res);
});

await check("search nq=1", async () => {
  const res = await client.search({
    collectionName, data: [[5, 1, 0, 0]], annsField: "vector", limit: 3, outputFields: ["tag", "count"],
  });
  expect(res.code === 0 && res.data.length === 3, "3 hits", res);
  expect(res.data[0].id === "5" && res.data[0].distance === 0 && res.data[0].tag === "t1", "nearest", res.data[0]);
  expect(res.data[0].count === "1005", "Int64 field as string", res.data[0]);
});

await check("search nq=2 is split by topks", async () => {
  const res = await client.search({ collectionName, data: [[0, 1, 0, 0], [19, 1, 0, 0]], limit: 2 });
  expect(res.code === 0 && res.data.length === 2, "two groups", res);
  expect(res.data[0][0].id === "0" && res.data[1][0].id === "19", "per-query order", res.data);
});

await check("query with filter", async () => {
  const res = await client.query({ collectionName, filter: "id in [2, 4, 7]", outputFields: ["id", "tag"] });
  expect(res.code === 0 && res.data.length === 3, "3 rows", res);
  const ids = res.data.map((r) => r.id).sort();
  expect(ids.join() === "2,4,7", "ids", ids);
});

await check("get by the string ids insert returned", async () => {
  const res = await client.get({ collectionName, id: ["3", "4"], outputFields: ["count"] });
  expect(res.code === 0 && res.data.length === 2, "2 rows", res);
});

await check("count(*)", async () => {
  const res = await client.query({ collectionName, filter: "", outputFields: ["count(*)"] });
  expect(res.code === 0 && Number(res.data[0]["count(*)"]) === 20, "20", res);
});

await check("errors come back in the envelope", async () => {
  const res = await client.describeCollection({ collectionName: "no_such_collection" });
  expect(res.code === 100 && typeof res.message === "string", "code 100", res);
});

await check("release and drop", async () => {
  let res = await client.releaseCollection({ collectionName });
  expect(res.code === 0, "released", res);
  res = await client.search({ collectionName, data: [[1, 1, 0, 0]], limit: 1 });
  expect(res.code === 101, "not loaded (101)", res);
  res = await client.dropCollection({ collectionName });
  expect(res.code === 0, "dropped", res);
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
