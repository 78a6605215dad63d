// Second-language checks of the event contract, run by tests/contract (pytest).
//   node contract.mjs parse FILE.yaml   the official AsyncAPI parser's diagnostics, as JSON
//   node contract.mjs check BUNDLE.json  compile every payload schema with Ajv in strict mode, decode
//                                        each sample with @msgpack/msgpack and validate it
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";
import { decode } from "@msgpack/msgpack";
import Ajv from "ajv";

// The contract's JSON view of a decoded payload: msgpack bin (Uint8Array) as lowercase hex.
function jsonView(value) {
  if (value instanceof Uint8Array) return Buffer.from(value).toString("hex");
  if (Array.isArray(value)) return value.map(jsonView);
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), jsonView(v)]));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonView(v)]));
  }
  return value;
}

async function parse(file) {
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(readFileSync(file, "utf8"));
  const out = diagnostics.map((d) => ({ severity: d.severity, code: d.code, message: d.message, path: d.path }));
  return { parsed: document !== undefined, diagnostics: out };
}

function check(file) {
  const bundle = JSON.parse(readFileSync(file, "utf8"));
  // strict: unknown keywords, ambiguous types and loose tuples are errors, not ignored
  const ajv = new Ajv({ strict: true, allErrors: true });
  ajv.addSchema(bundle.root, "contract");
  const validators = {};
  for (const name of bundle.messages) {
    validators[name] = ajv.getSchema(`contract#/definitions/message-${name}`);
  }
  const results = bundle.samples.map((sample) => {
    const decoded = jsonView(decode(Buffer.from(sample.payload_hex, "hex")));
    const validate = validators[sample.message];
    const valid = validate(decoded);
    return { decoded, valid, errors: valid ? [] : validate.errors.map((e) => `${e.instancePath} ${e.message}`) };
  });
  return { compiled: Object.keys(validators), results };
}

const [mode, file] = process.argv.slice(2);
const result = mode === "parse" ? await parse(file) : check(file);
process.stdout.write(JSON.stringify(result));
