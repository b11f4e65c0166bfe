// The published REST client of Frontier, `@raystack/frontier/api-client` (the `ApiClient` that `@raystack/frontier`
// 0.72.0 ships, generated from Frontier's gateway bindings), used unchanged: one client per base URL, each call one
// of its methods with its own arguments, the key passed as the client's request params pass any header.
//
// Input (METERBOOK_CLIENT_INPUT): {baseUrl, calls: [{method, args, authorization?}]}, `method` a method name of
// `ApiClient` (e.g. `frontierServiceCheckFeatureEntitlement`) and `args` its positional arguments before the
// request params. Output: {results: [{ok: {status, data}} | {error: {status, body}}]}: what the client resolved
// with, or the response it threw (the client throws the response of any status that is not 2xx, its parsed
// body in `error`).
import { ApiClient } from "@raystack/frontier/api-client";

interface Call {
  method: string;
  args: unknown[];
  authorization?: string;
}

interface Input {
  baseUrl: string;
  calls: Call[];
}

interface ClientResponse {
  status: number;
  data: unknown;
  error: unknown;
}

const input: Input = JSON.parse(process.env.METERBOOK_CLIENT_INPUT ?? "{}");
const client = new ApiClient({ baseUrl: input.baseUrl });
const methods = client as unknown as Record<string, (...args: unknown[]) => Promise<ClientResponse>>;

async function run(call: Call): Promise<unknown> {
  const method = methods[call.method];
  if (typeof method !== "function") {
    throw new Error(`ApiClient has no method ${call.method}`);
  }
  const params = call.authorization ? { headers: { Authorization: call.authorization } } : {};
  try {
    const response = await method(...call.args, params);
    return { ok: { status: response.status, data: response.data } };
  } catch (thrown) {
    const response = thrown as ClientResponse;
    if (typeof response?.status !== "number") {
      throw thrown;
    }
    return { error: { status: response.status, body: response.error } };
  }
}

const results: unknown[] = [];
for (const call of input.calls) {
  results.push(await run(call));
}
process.stdout.write(JSON.stringify({ results }));
