#!/usr/bin/env node
// A tessera checkpoint in Node.js: @grpc/grpc-js over its own TLS (Node's
// OpenSSL), the standard's .proto files loaded at run time with
// @grpc/proto-loader, and nothing else of tessera.
//
//   node checkpoint.mjs verify --gateway HOST:PORT --bundle DIR (TEXT | --text-file F | --envelope F)
//   node checkpoint.mjs trust-list --gateway HOST:PORT --bundle DIR [--out FILE]
//
// Exit status, as for `tessera verify` (docs/OPERATIONS.md section 6):
//   0        VALID (the only status on which a gate may open); trust-list: fetched
//   10 + n   any other outcome, n its wire number in badge.proto
//   10       an outcome this client does not know
//   1        no check was made (files unreadable, gateway unreachable or refused us)
//   2        usage error

import { readFileSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const HERE = dirname(fileURLToPath(import.meta.url));
const DEFAULT_PROTO_ROOT = resolve(HERE, "..", "..", "proto");
const PROTO_FILES = [
  "tessera/v1/badge.proto",
  "tessera/v1/trust.proto",
  "tessera/v1/privacy.proto",
  "tessera/v1/node.proto",
  "tessera/v1/gateway.proto",
];

const USAGE = `usage:
  checkpoint.mjs verify --gateway HOST:PORT --bundle DIR (TEXT | --text-file FILE | --envelope FILE)
  checkpoint.mjs trust-list --gateway HOST:PORT --bundle DIR [--out FILE]

options:
  --gateway HOST:PORT   the national gateway
  --bundle DIR          the checkpoint's bundle (verifier.crt, verifier.key, root.crt)
  --cert, --key, --root override one file of the bundle each (PEM)
  --server-name NAME    the name the gateway's certificate must carry, when it is not HOST
  --proto-root DIR      the directory holding tessera/v1/*.proto
  --timeout SECONDS     deadline (default 10)
  --text-file FILE      a file holding the badge's QR text (TB1:...)
  --envelope FILE       a file holding the envelope bytes (an encoded SignedBadge)
  --out FILE            trust-list: where to write the signed list's bytes`;

class NoCheck extends Error {}
class Usage extends Error {}

function parse(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        gateway: { type: "string" },
        bundle: { type: "string" },
        cert: { type: "string" },
        key: { type: "string" },
        root: { type: "string" },
        "server-name": { type: "string" },
        "proto-root": { type: "string", default: DEFAULT_PROTO_ROOT },
        timeout: { type: "string", default: "10" },
        "text-file": { type: "string" },
        envelope: { type: "string" },
        out: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    throw new Usage(e.message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const [command, ...rest] = positionals;
  if (command !== "verify" && command !== "trust-list") {
    throw new Usage(command ? `unknown command ${JSON.stringify(command)}` : "a command is required");
  }
  if (!values.gateway) throw new Usage("--gateway is required");
  const match = /^(.+):(\d+)$/.exec(values.gateway);
  if (!match) throw new Usage(`--gateway ${JSON.stringify(values.gateway)} is not HOST:PORT`);
  for (const [name, file] of [["cert", "verifier.crt"], ["key", "verifier.key"], ["root", "root.crt"]]) {
    if (values[name] === undefined) {
      if (values.bundle === undefined) throw new Usage(`--${name} or --bundle is required`);
      values[name] = join(values.bundle, file);
    }
  }
  const timeout = Number(values.timeout);
  if (!(timeout > 0)) throw new Usage(`--timeout ${values.timeout} is not a positive number`);
  const args = { ...values, command, timeout, host: match[1].replace(/^\[|\]$/g, "") };
  if (command === "verify") {
    const given = [rest.length > 0, values["text-file"] !== undefined, values.envelope !== undefined];
    if (given.filter(Boolean).length !== 1 || rest.length > 1) {
      throw new Usage("verify takes exactly one of TEXT, --text-file or --envelope");
    }
    args.text = rest[0];
  } else if (rest.length > 0) {
    throw new Usage("trust-list takes no positional argument");
  }
  return args;
}

function read(path, what) {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new NoCheck(`cannot read the ${what} ${path}: ${e.code ?? e.message}`);
  }
}

function readPem(path, what, label) {
  const data = read(path, what);
  if (!data.includes(`-----BEGIN ${label}-----`)) {
    throw new NoCheck(`the ${what} ${path} holds no PEM ${label}`);
  }
  return data;
}

function loadStandard(protoRoot) {
  let definition;
  try {
    definition = protoLoader.loadSync(PROTO_FILES, {
      includeDirs: [protoRoot],
      keepCase: true,
      longs: Number,
      enums: String,
      defaults: true,
      oneofs: true,
    });
  } catch (e) {
    throw new NoCheck(`the .proto files under ${protoRoot} do not load: ${e.message}`);
  }
  const v1 = grpc.loadPackageDefinition(definition).tessera.v1;
  const numbers = (name) =>
    Object.fromEntries(definition[`tessera.v1.${name}`].type.value.map((v) => [v.name, v.number]));
  return { Gateway: v1.Gateway, outcomes: numbers("Outcome") };
}

function client(args, Gateway) {
  // grpc-js always sends the dialled host as the TLS server name (SNI). For
  // an IP address, which RFC 6066 leaves out of SNI, Node then prints a
  // deprecation warning (DEP0123) on every run; the certificate check itself
  // is unaffected (a local federation's gateway has an IP SAN). Say nothing
  // about it, and only in that case.
  if (isIP(args["server-name"] ?? args.host)) process.noDeprecation = true;
  const credentials = grpc.credentials.createSsl(
    readPem(args.root, "root certificate", "CERTIFICATE"),
    readPem(args.key, "private key", "PRIVATE KEY"),
    readPem(args.cert, "certificate", "CERTIFICATE"),
  );
  const options = args["server-name"] ? { "grpc.ssl_target_name_override": args["server-name"] } : {};
  return new Gateway(args.gateway, credentials, options);
}

function call(stub, method, request, args) {
  const deadline = new Date(Date.now() + args.timeout * 1000);
  return new Promise((done, fail) => {
    stub[method](request, { deadline }, (error, response) => {
      if (error) {
        const code = Object.keys(grpc.status).find((k) => grpc.status[k] === error.code) ?? error.code;
        fail(new NoCheck(`the gateway at ${args.gateway} answered ${method} with ${code}: ${error.details}`));
      } else {
        done(response);
      }
    });
  });
}

function utc(seconds) {
  return new Date(Number(seconds) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function strip(name, prefix) {
  return typeof name === "string" && name.startsWith(prefix) ? name.slice(prefix.length) : String(name);
}

function report(verdict, outcomes) {
  const outcome = strip(verdict.outcome, "OUTCOME_");
  let status;
  if (!(verdict.outcome in outcomes) || outcome === "UNSPECIFIED") {
    console.log(`UNSPECIFIED (outcome ${verdict.outcome}, unknown to this client: not valid)`);
    status = 10;
  } else {
    console.log(outcome);
    status = outcome === "VALID" ? 0 : 10 + outcomes[verdict.outcome];
  }
  if (verdict.signature_valid) {
    console.log(`  colour       ${strip(verdict.colour, "COLOUR_").toLowerCase()}`);
    console.log(`  valid until  ${utc(verdict.valid_until)}`);
  }
  if (verdict.issuer_city) {
    console.log(`  issued by    ${verdict.issuer_name || "a city not in the list"} (${verdict.issuer_city})`);
  }
  console.log(`  checked at   ${utc(verdict.checked_at)}`);
  if (verdict.reason) console.log(`  reason       ${verdict.reason}`);
  console.log(`  detail       ${verdict.detail}`);
  return status;
}

async function verify(args, standard) {
  let request;
  if (args.envelope !== undefined) {
    request = { envelope: read(args.envelope, "badge envelope") };
  } else {
    const text = args.text ?? read(args["text-file"], "badge text").toString("utf8");
    request = { qr_text: text.trim() };
  }
  const stub = client(args, standard.Gateway);
  try {
    return report(await call(stub, "Verify", request, args), standard.outcomes);
  } finally {
    stub.close();
  }
}

async function trustList(args, standard) {
  const stub = client(args, standard.Gateway);
  let answer;
  try {
    answer = await call(stub, "FetchTrustList", { known_sequence: 0 }, args);
  } finally {
    stub.close();
  }
  if (!answer.list) throw new NoCheck(`the gateway at ${args.gateway} holds no trust list`);
  // The signed list as a file (an encoded SignedTrustList, what `tessera
  // verify --offline --trust-list` reads): its three fields are bytes, so
  // this encoding is the gateway's own.
  const { list } = answer;
  const bytes = encodeSignedTrustList(list);
  if (args.out) {
    try {
      writeFileSync(args.out, bytes);
    } catch (e) {
      throw new NoCheck(`cannot write ${args.out}: ${e.code ?? e.message}`);
    }
  }
  console.log(`trust list ${answer.current_sequence}`);
  console.log(`  signed bytes  ${bytes.length} (payload ${list.payload.length}, signer certificate ${list.signer_certificate.length})`);
  if (args.out) console.log(`  written to    ${args.out}`);
  return 0;
}

// SignedTrustList { bytes payload = 1; bytes signature = 2; bytes signer_certificate = 3; }
function encodeSignedTrustList(list) {
  const parts = [];
  for (const [field, value] of [[1, list.payload], [2, list.signature], [3, list.signer_certificate]]) {
    if (value.length === 0) continue;
    parts.push(Buffer.from([(field << 3) | 2]), varint(value.length), value);
  }
  return Buffer.concat(parts);
}

function varint(n) {
  const out = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

async function main(argv) {
  let args;
  try {
    args = parse(argv);
  } catch (e) {
    if (e instanceof Usage) {
      console.error(`error: ${e.message}\n${USAGE}`);
      return 2;
    }
    throw e;
  }
  try {
    const standard = loadStandard(args["proto-root"]);
    return args.command === "verify" ? await verify(args, standard) : await trustList(args, standard);
  } catch (e) {
    if (e instanceof NoCheck) {
      console.error(`error: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

process.exitCode = await main(process.argv.slice(2));
