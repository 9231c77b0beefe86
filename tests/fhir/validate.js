#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// validate.js -- checks every line of NDJSON files against FHIR R4 with two validators written
// elsewhere: FHIR.js (npm "fhir", built from the R4 4.0.1 StructureDefinitions and value sets)
// and HL7's own R4 JSON schema (fhir.schema.json, run by ajv).
//
// usage: node validate.js [--verbose] FILE...
// Exit 0 when every line of every file is a valid resource (and there is at least one);
// otherwise prints the first problem as FILE:LINE and exits 1. --verbose also prints the
// validators' warnings (codes from systems they cannot expand, such as MDC and LOINC).
'use strict';

const fs = require('fs');
const path = require('path');

// The two validators check different things, so both must pass: FHIR.js checks cardinality,
// data types, arrays, unexpected elements, reference targets and required value-set bindings;
// the schema checks the primitive formats exactly (dateTime, instant, code, uri patterns),
// which FHIR.js matches only loosely.
const { Fhir, ParseConformance, Versions } = require('fhir');
const SchemaValidator = require('@asymmetrik/fhir-json-schema-validator');

function packageVersion(name) {
  try {
    const file = require.resolve(path.join(name, 'package.json'));
    return JSON.parse(fs.readFileSync(file, 'utf8')).version;
  } catch (e) {
    return '?';
  }
}

function main(argv) {
  const verbose = argv.includes('--verbose');
  const files = argv.filter((a) => a !== '--verbose');
  if (files.length === 0) {
    console.error('usage: node validate.js [--verbose] FILE...');
    return 2;
  }
  // Built on first use: compiling the whole R4 schema takes a second or two.
  let fhir = null;
  let schema = null;
  let count = 0;

  for (const file of files) {
    let text;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      console.error(`${file}: cannot read: ${e.message}`);
      return 1;
    }
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') {
      lines.pop(); // the newline that ends the last line
    }
    for (let i = 0; i < lines.length; i++) {
      const where = `${file}:${i + 1}`;
      let resource;
      try {
        resource = JSON.parse(lines[i]);
      } catch (e) {
        console.error(`${where}: not a JSON object (NDJSON wants one per line): ${e.message}`);
        return 1;
      }
      if (resource === null || typeof resource !== 'object' || Array.isArray(resource) ||
          typeof resource.resourceType !== 'string') {
        console.error(`${where}: not a FHIR resource (no resourceType)`);
        return 1;
      }
      const type = resource.resourceType;
      if (fhir === null) {
        fhir = new Fhir(new ParseConformance(true, Versions.R4));
      }
      const r = fhir.validate(resource, { errorOnUnexpected: true });
      const bad = r.messages.filter((m) => m.severity === 'error' || m.severity === 'fatal');
      if (!r.valid || bad.length > 0) {
        const m = bad[0] || { location: '', message: 'invalid' };
        console.error(`${where}: invalid FHIR R4 ${type} (FHIR.js): ${m.location}: ${m.message}`);
        return 1;
      }
      if (verbose) {
        for (const m of r.messages.filter((x) => x.severity === 'warning')) {
          console.error(`${where}: warning (FHIR.js): ${m.location}: ${m.message}`);
        }
      }
      if (schema === null) {
        schema = new SchemaValidator();
      }
      // The schema validator may rewrite what it is given: hand it its own copy.
      const errors = schema.validate(JSON.parse(lines[i]));
      if (errors.length > 0) {
        const e = errors[0];
        const detail = e.params ? ` ${JSON.stringify(e.params)}` : '';
        console.error(`${where}: invalid FHIR R4 ${type} (HL7 JSON schema): ` +
                      `${e.dataPath || '/'}: ${e.message}${detail}`);
        return 1;
      }
      count++;
    }
  }
  if (count === 0) {
    // An empty output proves nothing: a test that validated nothing must not pass.
    console.error(`${files.join(' ')}: no resources to validate`);
    return 1;
  }
  console.log(`${count} resources are valid FHIR R4 (fhir ${packageVersion('fhir')}, ` +
              `HL7 R4 JSON schema via @asymmetrik/fhir-json-schema-validator ` +
              `${packageVersion('@asymmetrik/fhir-json-schema-validator')})`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
