// What a Vercel user's app does with the env vars of a provisioned `flags` resource, using the
// OpenFeature server SDK and its OFREP provider, unchanged: baseUrl = FLAGS_URL, the SDK key as
// a bearer token. Run by tests/integration/test_flags.py against a real wharf. Prints one JSON
// line {results: {...}} with every evaluation's details for the test to check, and exits
// non-zero when the SDK itself fails.
//
// Env: FLAGS_URL, FLAGS_SDK_KEY; CASES: a JSON array of
//   {name, kind: "boolean"|"string"|"number"|"object", key, default, context}
import { OpenFeature } from "@openfeature/server-sdk";
import { OFREPProvider } from "@openfeature/ofrep-provider";

const baseUrl = process.env.FLAGS_URL;
const key = process.env.FLAGS_SDK_KEY;
if (!baseUrl || !key) {
  console.error("FLAGS_URL and FLAGS_SDK_KEY are required");
  process.exit(2);
}
const cases = JSON.parse(process.env.CASES || "[]");

await OpenFeature.setProviderAndWait(
  new OFREPProvider({ baseUrl, headers: [["Authorization", `Bearer ${key}`]] }),
);
const client = OpenFeature.getClient("wharf-test");

const getters = {
  boolean: (k, d, c) => client.getBooleanDetails(k, d, c),
  string: (k, d, c) => client.getStringDetails(k, d, c),
  number: (k, d, c) => client.getNumberDetails(k, d, c),
  object: (k, d, c) => client.getObjectDetails(k, d, c),
};

const results = {};
for (const c of cases) {
  const details = await getters[c.kind](c.key, c.default, c.context || {});
  results[c.name] = {
    value: details.value,
    variant: details.variant ?? null,
    reason: details.reason ?? null,
    errorCode: details.errorCode ?? null,
  };
}
await OpenFeature.close();
console.log(JSON.stringify({ results }));
