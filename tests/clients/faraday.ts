// The published Faraday JavaScript client, `@fdy/faraday-js` (an openapi-generator typescript-fetch client),
// used unchanged: a `Configuration` with the server's base path and the key as `accessToken`, which the client
// sends as `Authorization: Bearer <key>` (dist/runtime.js, dist/apis/*.js), over Node's global fetch.
//
// Input (METERBOOK_CLIENT_INPUT): {basePath, calls: [{api, method, args, key?}]}: `api` one of AccountsApi,
// BillingApi, UsageApi; `args` the method's positional arguments; `key` the bearer token (none: no header).
// Output: {results: [{ok: <what the method returned, as JSON>} | {error: {status, body}}]}: this version of
// the client throws the fetch `Response` itself for any status outside 2xx; its body is read as JSON.
// The package is CommonJS whose exports Node cannot list for an ESM import: taken from its default export. Its
// entry point exports the APIs through `FaradayClient` (dist/apis/index.js), one property per API.
import faraday from "@fdy/faraday-js";

const { Configuration, FaradayClient } = faraday;

const apis = { AccountsApi: "accounts", BillingApi: "billing", UsageApi: "usage" } as const;
type ApiName = keyof typeof apis;

interface Call {
  api: ApiName;
  method: string;
  args: unknown[];
  key?: string;
}

interface Input {
  basePath: string;
  calls: Call[];
}

type Result = { ok: unknown } | { error: { status: number; body: unknown } };

async function run(input: Input, call: Call): Promise<Result> {
  const configuration = new Configuration({ basePath: input.basePath, accessToken: call.key });
  const client = new FaradayClient(configuration);
  const api = client[apis[call.api]] as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const method = api[call.method];
  if (typeof method !== "function") {
    throw new Error(`${call.api} has no method ${call.method}`);
  }
  try {
    const value = await method.apply(api, call.args);
    // A void method (deleteAccount) returns undefined: written as null.
    return { ok: value === undefined ? null : JSON.parse(JSON.stringify(value)) };
  } catch (thrown) {
    if (thrown instanceof Response) {
      const text = await thrown.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // Not JSON: kept as text, for the test to show.
      }
      return { error: { status: thrown.status, body } };
    }
    throw thrown;
  }
}

const input = JSON.parse(process.env.METERBOOK_CLIENT_INPUT ?? "{}") as Input;
const results: Result[] = [];
for (const call of input.calls) {
  results.push(await run(input, call));
}
process.stdout.write(JSON.stringify({ results }));
