// A ConnectRPC client of Frontier, as today's official SDKs make one: `createClient` of `@connectrpc/connect` over
// `@connectrpc/connect-node`'s Connect transport (JSON codec, HTTP/1.1), with the service descriptors of
// `@raystack/proton`, reached as `@raystack/frontier`'s own hooks reach them (`@raystack/proton/frontier`).
//
// Input (METERBOOK_CLIENT_INPUT): {baseUrl, calls: [{service, method, request, authorization?}], describe?}.
// Each request is proto JSON, read into the method's message with `fromJson` (unknown fields are an error, so a
// test cannot send what the client would not). Output: {results: [{ok: <the response as proto JSON>} |
// {error: {code: "invalid_argument", ..., message}}], descriptors?: what proton declares of each method}.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { fromJson, getOption, toJson, type DescField, type DescMessage, type DescMethod } from "@bufbuild/protobuf";
import { AdminServiceQueries, FrontierServiceQueries } from "@raystack/proton/frontier";
// The google.api.http option, read from the descriptors (the package exports no path to it).
import { http } from "./node_modules/@raystack/proton/google/api/annotations_pb";
import { HttpRuleSchema } from "./node_modules/@raystack/proton/google/api/http_pb";

const services = {
  FrontierService: FrontierServiceQueries.createBillingUsage.parent,
  AdminService: AdminServiceQueries.revertBillingUsage.parent,
};
type ServiceName = keyof typeof services;

interface Call {
  service: ServiceName;
  method: string;
  request: Record<string, unknown>;
  authorization?: string;
}

interface Input {
  baseUrl: string;
  calls?: Call[];
  describe?: string[];
}

const input: Input = JSON.parse(process.env.METERBOOK_CLIENT_INPUT ?? "{}");
// The JSON codec, which `@raystack/frontier`'s own transport (`@connectrpc/connect-web`) uses by default;
// connect-node's default is the binary one, which meterbook does not serve.
const transport = createConnectTransport({ baseUrl: input.baseUrl, httpVersion: "1.1", useBinaryFormat: false });

function snake(code: Code): string {
  return Code[code].replace(/[A-Z]/g, (letter, index) => (index ? "_" : "") + letter.toLowerCase());
}

function method(call: Call): DescMethod {
  const found = services[call.service].methods.find((item) => item.name === call.method);
  if (found === undefined) {
    throw new Error(`${call.service} declares no ${call.method}`);
  }
  return found;
}

async function run(call: Call): Promise<unknown> {
  const descriptor = method(call);
  const client = createClient(services[call.service], transport) as unknown as Record<
    string,
    (request: unknown, options: unknown) => Promise<unknown>
  >;
  const request = fromJson(descriptor.input, call.request as never);
  const headers: Record<string, string> = call.authorization ? { Authorization: call.authorization } : {};
  try {
    const response = await client[descriptor.localName](request, { headers });
    return { ok: toJson(descriptor.output, response as never) };
  } catch (error) {
    const connectError = ConnectError.from(error);
    return { error: { code: snake(connectError.code), message: connectError.rawMessage } };
  }
}

function fields(message: DescMessage, seen: Set<string>): unknown {
  if (message.typeName.startsWith("google.protobuf.") || seen.has(message.typeName)) {
    return message.typeName;
  }
  seen.add(message.typeName);
  return {
    name: message.typeName,
    fields: message.fields.map((field: DescField) => ({
      name: field.name,
      jsonName: field.jsonName,
      repeated: field.fieldKind === "list",
      kind: field.fieldKind === "list" ? field.listKind : field.fieldKind,
      scalar: "scalar" in field && field.scalar !== undefined ? field.scalar : null,
      message: "message" in field && field.message ? fields(field.message, seen) : null,
    })),
  };
}

function describe(name: string): unknown {
  for (const [serviceName, service] of Object.entries(services)) {
    const found = service.methods.find((item) => item.name === name);
    if (found !== undefined) {
      return {
        service: serviceName,
        typeName: service.typeName,
        method: found.name,
        kind: found.methodKind,
        idempotency: found.idempotency,
        http: toJson(HttpRuleSchema, getOption(found, http)),
        input: fields(found.input, new Set()),
        output: fields(found.output, new Set()),
      };
    }
  }
  return null;
}

const results = [];
for (const call of input.calls ?? []) {
  results.push(await run(call));
}
const output: Record<string, unknown> = { results };
if (input.describe) {
  output.descriptors = input.describe.map(describe);
}
process.stdout.write(JSON.stringify(output));
