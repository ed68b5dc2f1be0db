#!/usr/bin/env node
'use strict';
// FAKE Kubernetes API server, for tests only.  It is not kube-apiserver: see
// README.md beside this file for what it validates and what it does not.
//
//   node server.js --namespace NS --token-file F [--control-token-file F]
//                  (--cert C --key K | --insecure-http) [--listen 127.0.0.1:6443]
//                  [--audit FILE] [--kubelet podman|none] [--podman-prefix P]
//                  [--podman-network NET] [--state-dir DIR] [--poll-ms 300]

const fs = require('fs');
const http = require('http');
const https = require('https');
const crypto = require('crypto');
const { URL } = require('url');

const { ApiError, E, F } = require('./lib/errors');
const { decode } = require('./lib/schema');
const { Store, Watcher, clone } = require('./lib/store');
const { RESOURCES, Registry, successStatus, now } = require('./lib/resources');
const sel = require('./lib/selector');
const patchlib = require('./lib/patch');
const rules = require('./lib/rules');
const defaults = require('./lib/defaults');
const { Controller } = require('./lib/controller');
const { Kubelet } = require('./lib/kubelet');

const VERSION = { major: '1', minor: '33', gitVersion: 'v1.33.0-fake', gitCommit: 'fake-apiserver', gitTreeState: 'clean',
  buildDate: '2025-01-01T00:00:00Z', goVersion: 'none (node.js fake)', compiler: 'none', platform: 'linux/amd64', emulationMajor: '1', emulationMinor: '33' };

function parseArgs(argv) {
  const o = { listen: '127.0.0.1:6443', kubelet: 'podman', pollMs: 300, podmanPrefix: 'fakek8s', podmanNetwork: 'podman' };
  const flags = { '--namespace': 'namespace', '--token-file': 'tokenFile', '--control-token-file': 'controlTokenFile', '--cert': 'cert', '--key': 'key',
    '--listen': 'listen', '--audit': 'audit', '--kubelet': 'kubelet', '--podman-prefix': 'podmanPrefix', '--podman-network': 'podmanNetwork',
    '--state-dir': 'stateDir', '--poll-ms': 'pollMs', '--containers-conf': 'containersConf', '--podman': 'podmanBin' };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i], v;
    if (a === '--insecure-http') { o.insecureHttp = true; continue; }
    if (a === '--help' || a === '-h') { process.stdout.write(fs.readFileSync(__filename, 'utf8').split('\n').slice(2, 9).join('\n') + '\n'); process.exit(0); }
    const eq = a.indexOf('=');
    if (eq > 0) { v = a.slice(eq + 1); a = a.slice(0, eq); } else v = argv[++i];
    if (!flags[a] || v === undefined) die(`unknown or incomplete option ${a}`);
    o[flags[a]] = v;
  }
  if (!o.namespace) die('--namespace is required');
  if (!o.tokenFile) die('--token-file is required');
  if (!o.insecureHttp && !(o.cert && o.key)) die('give --cert and --key, or --insecure-http');
  if (!['podman', 'none'].includes(o.kubelet)) die('--kubelet is podman or none');
  o.pollMs = Number(o.pollMs);
  return o;
}

function die(msg) { process.stderr.write(`fake-apiserver: ${msg}\n`); process.exit(2); }
function readToken(f) {
  const t = fs.readFileSync(f, 'utf8').split('\n')[0].trim();
  if (!t) die(`${f}: empty token`);
  return t;
}
const safeEq = (a, b) => {
  const x = Buffer.from(a || ''), y = Buffer.from(b || '');
  return x.length === y.length && crypto.timingSafeEqual(x, y);
};

class Server {
  constructor(opts) {
    this.opts = opts;
    this.ns = opts.namespace;
    this.token = readToken(opts.tokenFile);
    this.controlToken = opts.controlTokenFile ? readToken(opts.controlTokenFile) : null;
    this.store = new Store();
    this.registry = new Registry(this.store, this.ns);
    this.faults = [];
    this.faultSeq = 0;
    this.watchExpiredAs = 'event';
    this.openWatches = new Set();
    this.kubelet = opts.kubelet === 'podman' ? new Kubelet(this.store, opts) : null;
    this.controller = new Controller(this.store, this.ns, this.kubelet);
    if (opts.audit) this.auditFd = fs.openSync(opts.audit, 'a');
  }

  listen() {
    const [host, port] = splitHostPort(this.opts.listen);
    const handler = (req, res) => this.handle(req, res).catch(err => {
      this.log(`internal error: ${err.stack || err}`);
      if (!res.headersSent) this.sendStatus(res, E.internal(String(err.message || err)));
      else res.destroy();
    });
    this.http = this.opts.insecureHttp ? http.createServer(handler)
      : https.createServer({ cert: fs.readFileSync(this.opts.cert), key: fs.readFileSync(this.opts.key) }, handler);
    this.http.keepAliveTimeout = 60000;
    this.http.on('connection', s => s.setNoDelay(true));
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(Number(port), host, () => {
        const a = this.http.address();
        const scheme = this.opts.insecureHttp ? 'http' : 'https';
        process.stdout.write(`fake-apiserver: THIS IS A FAKE Kubernetes API server for tests, not kube-apiserver; ` +
          `listening on ${scheme}://${a.address}:${a.port} namespace=${this.ns} kubelet=${this.opts.kubelet}` +
          (this.kubelet ? ` podman-prefix=${this.opts.podmanPrefix} podman-network=${this.opts.podmanNetwork}` : '') + '\n');
        resolve();
      });
    });
  }

  log(msg) { process.stdout.write(`fake-apiserver: ${new Date().toISOString()} ${msg}\n`); }

  audit(rec) {
    if (this.auditFd === undefined) return;
    fs.writeSync(this.auditFd, JSON.stringify(rec) + '\n');
  }

  headers(extra = {}) {
    return { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'X-Fake-Apiserver': '1',
      'Audit-Id': crypto.randomUUID(), ...extra };
  }

  send(res, code, body, extra) {
    const data = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(code, this.headers({ 'Content-Length': Buffer.byteLength(data), ...extra }));
    res.end(data);
    res.fakeCode = code;
  }
  sendStatus(res, err, extra) {
    if (!(err instanceof ApiError)) err = E.internal(String(err && err.message || err));
    this.send(res, err.code, err.status(), extra);
  }

  readBody(req) {
    return new Promise((resolve, reject) => {
      const chunks = [];
      let n = 0;
      req.on('data', c => { n += c.length; if (n > 3 * 1024 * 1024) { reject(E.tooLarge()); req.destroy(); } else chunks.push(c); });
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });
  }

  // ------------------------------------------------------------- routing
  async handle(req, res) {
    const url = new URL(req.url, 'http://x');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const q = url.searchParams;
    const started = Date.now();
    const rec = { ts: new Date().toISOString(), method: req.method, path, query: url.search ? url.search.slice(1) : '' };
    const writeAudit = () => {
      if (rec.written) return;
      rec.written = true;
      if (res.fakeName) rec.objectName = res.fakeName;
      rec.code = res.fakeCode || res.statusCode;
      rec.ms = Date.now() - started;
      if (!rec.control) { const { written, ...out } = rec; this.audit(out); }
    };
    // a watch is recorded when its response starts (it may never finish)
    res.fakeAudit = writeAudit;
    res.on('finish', writeAudit);
    res.on('close', writeAudit);

    if (path.startsWith('/fake/')) { rec.control = true; return this.handleControl(req, res, path); }

    const route = this.route(req.method, path, q);
    Object.assign(rec, route.audit);

    // public, as the system:public-info-viewer role makes them
    if (['/healthz', '/livez', '/readyz', '/version'].includes(path) && req.method === 'GET') {
      rec.user = this.authOk(req) ? 'fake-client' : 'system:anonymous';
      if (await this.applyFault(req, res, path, rec)) return;
      if (path === '/version') return this.send(res, 200, VERSION);
      res.writeHead(200, this.headers({ 'Content-Type': 'text/plain; charset=utf-8' }));
      res.fakeCode = 200;
      return res.end('ok');
    }
    if (!this.authOk(req)) { rec.user = 'system:anonymous'; return this.sendStatus(res, E.unauthorized()); }
    rec.user = 'fake-client';
    if (await this.applyFault(req, res, path, rec)) return;
    const accept = req.headers.accept || '';
    if (accept && !/application\/json|\*\/\*|application\/\*/.test(accept)) return this.sendStatus(res, E.notAcceptable());
    try {
      if (route.error) throw route.error;
      if (route.discovery) return this.send(res, 200, route.discovery);
      return await this.handleResource(req, res, route, q);
    } catch (err) {
      if (err instanceof ApiError) return this.sendStatus(res, err);
      throw err;
    }
  }

  authOk(req) {
    const h = req.headers.authorization || '';
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    return !!m && safeEq(m[1], this.token);
  }

  // -> {audit, info, name, sub, verb} | {discovery} | {error}
  route(method, path, q) {
    const parts = path.split('/').filter(Boolean);
    const isWatch = ['1', 'true'].includes(q.get('watch'));
    let group, version, rest;
    if (parts[0] === 'api') { group = ''; version = parts[1]; rest = parts.slice(2); }
    else if (parts[0] === 'apis') { group = parts[1]; version = parts[2]; rest = parts.slice(3); }
    else return { audit: { nonResourceURL: path, verb: method.toLowerCase() }, error: E.pathNotFound() };
    if (parts[0] === 'api' && parts.length === 1) return { audit: { nonResourceURL: path, verb: 'get' }, discovery: this.discoveryApi() };
    if (parts[0] === 'apis' && parts.length === 1) return { audit: { nonResourceURL: path, verb: 'get' }, discovery: this.discoveryApis() };
    const gv = group ? `${group}/${version}` : version;
    if (version === undefined) return { audit: { nonResourceURL: path, verb: 'get' }, error: E.pathNotFound() };
    if (rest.length === 0) {
      const d = this.discoveryGroupVersion(gv);
      return d ? { audit: { nonResourceURL: path, verb: 'get' }, discovery: d } : { audit: { nonResourceURL: path, verb: 'get' }, error: E.pathNotFound() };
    }
    let ns = null;
    if (rest[0] === 'namespaces' && rest.length >= 3) { ns = rest[1]; rest = rest.slice(2); }
    const [resource, name, sub, ...extra] = rest;
    let verb;
    switch (method) {
      case 'GET': verb = name ? 'get' : (isWatch ? 'watch' : 'list'); break;
      case 'HEAD': verb = name ? 'get' : 'list'; break;
      case 'POST': verb = 'create'; break;
      case 'PUT': verb = 'update'; break;
      case 'PATCH': verb = 'patch'; break;
      case 'DELETE': verb = name ? 'delete' : 'deletecollection'; break;
      default: verb = method.toLowerCase();
    }
    const audit = { verb, apiGroup: group, apiVersion: version, resource, subresource: sub || '', namespace: ns || '', name: name || '' };
    const info = RESOURCES[`${gv}/${resource}`];
    if (extra.length) return { audit, error: E.pathNotFound() };
    if (ns === null) {
      if (info || (rest[0] === 'namespaces')) return { audit, error: E.forbidden(verb, info || { resource, group }, null) };
      return { audit, error: E.pathNotFound() };
    }
    if (ns !== this.ns) return { audit, error: E.forbidden(verb, info || { resource, group }, ns) };
    if (!info) return { audit, error: E.pathNotFound() };
    if (sub && !info.subresources[sub]) return { audit, error: E.pathNotFound() };
    const allowed = sub ? info.subresources[sub] : info.verbs;
    if (!allowed.includes(verb)) return { audit, error: E.methodNotAllowed(info.why || `${verb} of ${resource}${sub ? '/' + sub : ''} is not implemented by the fake`) };
    return { audit, info, name, sub, verb };
  }

  discoveryApi() {
    return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: this.opts.listen }] };
  }
  discoveryApis() {
    const groups = [['apps', 'v1'], ['networking.k8s.io', 'v1'], ['autoscaling', 'v1']];
    return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups.map(([g, v]) => ({ name: g, versions: [{ groupVersion: `${g}/${v}`, version: v }], preferredVersion: { groupVersion: `${g}/${v}`, version: v } })) };
  }
  discoveryGroupVersion(gv) {
    const res = Object.values(RESOURCES).filter(r => r.apiVersion === gv);
    if (!res.length && gv !== 'autoscaling/v1') return null;
    const out = [];
    for (const r of res) {
      out.push({ name: r.resource, singularName: r.kind.toLowerCase(), namespaced: true, kind: r.kind, verbs: r.verbs });
      for (const [s, verbs] of Object.entries(r.subresources))
        out.push({ name: `${r.resource}/${s}`, singularName: '', namespaced: true, kind: s === 'scale' ? 'Scale' : r.kind, group: s === 'scale' ? 'autoscaling' : undefined, version: s === 'scale' ? 'v1' : undefined, verbs });
    }
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv, resources: out };
  }

  // ------------------------------------------------------------- faults
  async applyFault(req, res, path, rec) {
    for (const f of this.faults) {
      if (f.remaining === 0) continue;
      if (f.method && !new RegExp(`^(?:${f.method})$`, 'i').test(req.method)) continue;
      if (f.path && !new RegExp(f.path).test(req.url)) continue;
      if (f.remaining > 0) f.remaining--;
      f.hits++;
      rec.fault = f.id;
      if (f.delayMs) await new Promise(r => setTimeout(r, f.delayMs));
      if (f.action === 'delay') return false;
      if (f.action === 'reset') { res.fakeCode = 0; this.audit({ ...rec, code: 0, note: 'connection reset by fault' }); rec.control = true; req.socket.destroy(); return true; }
      const reasons = { 400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 409: 'Conflict', 410: 'Expired', 422: 'Invalid', 429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable', 504: 'Timeout' };
      const err = new ApiError(f.status, f.reason || reasons[f.status] || 'Unknown', f.message || `fake-apiserver: injected fault ${f.id}`, {});
      const extra = {};
      if (f.status === 429 || f.status === 503) extra['Retry-After'] = String(f.retryAfter || 1);
      this.sendStatus(res, err, extra);
      return true;
    }
    return false;
  }

  async handleControl(req, res, path) {
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization || '');
    if (!this.controlToken) return this.sendStatus(res, E.pathNotFound());
    if (!m || !safeEq(m[1], this.controlToken)) return this.sendStatus(res, E.unauthorized());
    let body = {};
    if (req.method === 'POST' || req.method === 'PUT') {
      const raw = await this.readBody(req);
      try { body = raw ? JSON.parse(raw) : {}; } catch (e) { return this.sendStatus(res, E.badRequest('control: invalid JSON')); }
    }
    if (path === '/fake/faults') {
      if (req.method === 'GET') return this.send(res, 200, { faults: this.faults });
      if (req.method === 'DELETE') { this.faults = []; return this.send(res, 200, { faults: [] }); }
      if (req.method === 'POST') {
        const f = { id: `fault-${++this.faultSeq}`, method: body.method || null, path: body.path || null, status: Number(body.status || 500),
          remaining: body.count === undefined ? 1 : Number(body.count), action: body.action || 'status', delayMs: Number(body.delayMs || 0),
          reason: body.reason, message: body.message, retryAfter: body.retryAfter, hits: 0 };
        try { if (f.method) new RegExp(f.method); if (f.path) new RegExp(f.path); } catch (e) { return this.sendStatus(res, E.badRequest('control: bad regex: ' + e.message)); }
        if (!['status', 'reset', 'delay'].includes(f.action)) return this.sendStatus(res, E.badRequest('control: action is status, reset or delay'));
        this.faults.push(f);
        return this.send(res, 201, f);
      }
    }
    if (path === '/fake/watch/expire' && req.method === 'POST') {
      this.store.compact();
      if (body.as) this.watchExpiredAs = body.as === 'http' ? 'http' : 'event';
      let closed = 0;
      if (body.closeWatches !== false) for (const w of [...this.openWatches]) { w.end(); closed++; }
      return this.send(res, 200, { oldestResourceVersion: String(this.store.oldestRV), closedWatches: closed, expiredAs: this.watchExpiredAs });
    }
    if (path === '/fake/validate' && req.method === 'POST') {
      // a manifest of any kind the fake has a schema for, checked like a
      // create (schema, unknown fields), stored nowhere
      try {
        decode(body.kind, body, { name: body.metadata && body.metadata.name });
      } catch (e) {
        if (e instanceof ApiError) return this.sendStatus(res, e);
        if (e instanceof TypeError) return this.sendStatus(res, E.badRequest(`no schema for kind ${body.kind}`));
        throw e;
      }
      return this.send(res, 200, { valid: true, kind: body.kind });
    }
    if (path === '/fake/state' && req.method === 'GET') {
      const out = {};
      for (const [r, m] of this.store.data) out[r] = [...m.values()].map(x => x.obj);
      return this.send(res, 200, { resourceVersion: String(this.store.rv), objects: out, kubelet: this.kubelet ? this.kubelet.describe() : null });
    }
    return this.sendStatus(res, E.pathNotFound());
  }

  // ------------------------------------------------------------- resources
  async handleResource(req, res, route, q) {
    const { info, name, sub, verb } = route;
    const dryRun = q.getAll('dryRun');
    for (const d of dryRun) if (d !== 'All') throw E.invalid('DeleteOptions', '', '', [F.notSupported('dryRun', d, ['All'])]);
    const isDry = dryRun.includes('All');
    const fv = q.get('fieldValidation') || 'Strict';
    if (!['Strict', 'Warn', 'Ignore'].includes(fv)) throw E.badRequest(`fieldValidation must be one of "Ignore", "Warn", or "Strict", got ${fv}`);
    const warnings = [];
    const body = async kind => {
      const ct = (req.headers['content-type'] || '').split(';')[0].trim();
      const raw = await this.readBody(req);
      if (ct !== 'application/json') throw E.unsupportedMediaType(ct);
      let parsed;
      try { parsed = JSON.parse(raw); } catch (e) { throw E.badRequest(`couldn't get version/kind; json parse error: ${e.message}`); }
      const r = decode(kind, parsed, { fieldValidation: fv, name });
      warnings.push(...r.warnings);
      return r.obj;
    };
    const reply = (code, obj) => this.send(res, code, obj, warnings.length ? { Warning: warnings.map(w => `299 - ${JSON.stringify(w)}`).join(', ') } : {});

    if (sub === 'scale') return this.handleScale(req, res, route, q, { isDry, fv, reply, warnings });
    if (sub === 'resize') return this.handleResize(req, res, route, q, { isDry, fv, reply, warnings });

    switch (verb) {
      case 'list': {
        const lr = this.selectors(q, info.resource);
        const items = this.store.list(info.resource).filter(o => sel.matches(lr.labels, o.metadata.labels) && sel.fieldMatches(lr.fields, o))
          .map(o => { const c = clone(o); delete c.kind; delete c.apiVersion; return c; });
        return reply(200, { kind: info.list, apiVersion: info.apiVersion, metadata: { resourceVersion: String(this.store.rv) }, items });
      }
      case 'watch': return this.handleWatch(req, res, info, q);
      case 'get': {
        const o = this.store.get(info.resource, name);
        if (!o) throw E.notFound(info, name);
        return reply(200, o);
      }
      case 'create': {
        const obj = await body(info.kind);
        const out = this.registry.create(info, obj, { dryRun: isDry });
        res.fakeName = out.metadata.name;
        return reply(201, out);
      }
      case 'update': {
        const obj = await body(info.kind);
        return reply(200, this.registry.update(info, name, obj, { dryRun: isDry }));
      }
      case 'patch': {
        const old = this.store.get(info.resource, name);
        const result = await this.applyPatch(req, info.kind, old, info, name);
        const r = decode(info.kind, result, { fieldValidation: fv, name });
        warnings.push(...r.warnings);
        return reply(200, this.registry.update(info, name, r.obj, { dryRun: isDry }));
      }
      case 'delete': {
        const opts = await this.deleteOptions(req, q);
        const old = this.store.get(info.resource, name);
        if (!old) throw E.notFound(info, name);
        const pre = opts.preconditions || {};
        if (pre.uid && pre.uid !== old.metadata.uid)
          throw E.conflict(info, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${old.metadata.uid}`);
        if (pre.resourceVersion && pre.resourceVersion !== old.metadata.resourceVersion)
          throw E.conflict(info, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion}`);
        if (isDry || (opts.dryRun || []).includes('All')) return reply(200, info.returnDeleted ? old : successStatus(info, old));
        const out = this.controller.deleteObject(info, old, opts);
        return reply(200, out.deleted && !info.returnDeleted ? successStatus(info, old) : out.obj);
      }
    }
    throw E.methodNotAllowed();
  }

  selectors(q, resource) {
    try {
      return { labels: sel.parseLabelSelector(q.get('labelSelector')), fields: sel.parseFieldSelector(q.get('fieldSelector'), resource) };
    } catch (e) {
      if (e instanceof sel.SelectorError) throw E.badRequest(e.message);
      throw e;
    }
  }

  async deleteOptions(req, q) {
    const raw = await this.readBody(req);
    let opts = {};
    if (raw.trim()) {
      const ct = (req.headers['content-type'] || '').split(';')[0].trim();
      if (ct && ct !== 'application/json') throw E.unsupportedMediaType(ct);
      try { opts = JSON.parse(raw); } catch (e) { throw E.badRequest(`couldn't get version/kind; json parse error: ${e.message}`); }
      opts = decode('DeleteOptions', opts, { fieldValidation: 'Strict' }).obj;
    }
    if (q.get('propagationPolicy')) opts.propagationPolicy = q.get('propagationPolicy');
    if (q.get('gracePeriodSeconds') !== null) {
      const g = Number(q.get('gracePeriodSeconds'));
      if (!Number.isInteger(g)) throw E.badRequest(`gracePeriodSeconds: invalid value ${q.get('gracePeriodSeconds')}`);
      opts.gracePeriodSeconds = g;
    }
    if (q.get('orphanDependents') !== null) opts.orphanDependents = q.get('orphanDependents') === 'true';
    const errs = rules.deleteOptions(opts);
    if (errs.length) throw E.invalid('DeleteOptions', '', '', errs);
    return opts;
  }

  async applyPatch(req, kind, current, info, name) {
    const ct = (req.headers['content-type'] || '').split(';')[0].trim();
    const raw = await this.readBody(req);
    const types = ['application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/json-patch+json'];
    if (ct === 'application/apply-patch+yaml' || ct === 'application/apply-patch+json')
      throw new ApiError(415, 'UnsupportedMediaType', 'fake-apiserver: server-side apply is not implemented by the fake', {});
    if (!types.includes(ct)) throw E.unsupportedMediaType(ct);
    if (!current) throw E.notFound(info, name);
    let p;
    try { p = JSON.parse(raw); } catch (e) { throw E.badRequest(`error decoding patch: ${e.message}`); }
    try {
      if (ct === 'application/merge-patch+json') {
        if (p === null || typeof p !== 'object' || Array.isArray(p)) throw new patchlib.PatchError('json: cannot unmarshal a non-object merge patch');
        return patchlib.mergePatch(current, p);
      }
      if (ct === 'application/strategic-merge-patch+json') return patchlib.strategicMergePatch(current, p, kind);
      return patchlib.jsonPatch(current, p);
    } catch (e) {
      if (e instanceof patchlib.PatchError) {
        if (e.code === 422) throw new ApiError(422, 'Invalid', e.message, {});
        throw E.badRequest(e.message);
      }
      throw e;
    }
  }

  // ------------------------------------------------------------- watch
  handleWatch(req, res, info, q) {
    const lr = this.selectors(q, info.resource);
    const rvParam = q.get('resourceVersion');
    const timeout = q.get('timeoutSeconds') !== null ? Number(q.get('timeoutSeconds')) : null;
    if (timeout !== null && !(timeout >= 0)) throw E.badRequest(`timeoutSeconds: invalid value ${q.get('timeoutSeconds')}`);
    const initialAll = !rvParam || rvParam === '0' || q.get('sendInitialEvents') === 'true';
    let replay = [];
    if (!initialAll || (q.get('sendInitialEvents') === 'true' && rvParam && rvParam !== '0')) {
      const n = Number(rvParam);
      if (!/^\d+$/.test(rvParam)) throw E.badRequest(`resourceVersion: Invalid value: "${rvParam}": must be a non-negative integer`);
      const ev = this.store.since(info.resource, n);
      if (ev === null) {
        const err = E.expired(`too old resource version: ${n} (${this.store.oldestRV})`);
        if (this.watchExpiredAs === 'http') throw err;
        res.writeHead(200, this.headers({ 'Transfer-Encoding': 'chunked' }));
        res.fakeCode = 200;
        res.end(JSON.stringify({ type: 'ERROR', object: err.status() }) + '\n');
        return;
      }
      replay = ev;
    }
    res.writeHead(200, this.headers({ 'Transfer-Encoding': 'chunked' }));
    res.fakeCode = 200;
    res.fakeAudit();
    const send = (type, obj) => { if (!res.writableEnded) res.write(JSON.stringify({ type, object: obj }) + '\n'); };
    const w = new Watcher(this.store, info.resource, lr.labels, lr.fields, send);
    if (initialAll) {
      for (const o of this.store.list(info.resource)) if (w.match(o)) send('ADDED', o);
      if (q.get('sendInitialEvents') === 'true')
        send('BOOKMARK', { kind: info.kind, apiVersion: info.apiVersion, metadata: { resourceVersion: String(this.store.rv), annotations: { 'k8s.io/initial-events-end': 'true' } } });
    }
    for (const ev of replay) w.deliver(ev);
    w.start();
    let timer = null;
    const handle = {
      end: () => { w.stop(); if (timer) clearTimeout(timer); this.openWatches.delete(handle); if (!res.writableEnded) res.end(); },
    };
    this.openWatches.add(handle);
    if (timeout !== null) timer = setTimeout(handle.end, timeout * 1000);
    res.on('close', handle.end);
    req.on('close', () => { if (!res.writableEnded) handle.end(); });
  }

  // ------------------------------------------------------------- scale
  scaleOf(sts) {
    return { kind: 'Scale', apiVersion: 'autoscaling/v1',
      metadata: { name: sts.metadata.name, namespace: sts.metadata.namespace, uid: sts.metadata.uid, resourceVersion: sts.metadata.resourceVersion, creationTimestamp: sts.metadata.creationTimestamp },
      spec: { replicas: sts.spec.replicas }, status: { replicas: (sts.status || {}).replicas || 0, selector: sel.toString(sts.spec.selector) } };
  }

  async handleScale(req, res, route, q, ctx) {
    const { info, name, verb } = route;
    const sts = this.store.get('statefulsets', name);
    let scale;
    if (verb === 'get') { if (!sts) throw E.notFound(info, name); return ctx.reply(200, this.scaleOf(sts)); }
    if (verb === 'update') {
      const ct = (req.headers['content-type'] || '').split(';')[0].trim();
      const raw = await this.readBody(req);
      if (ct !== 'application/json') throw E.unsupportedMediaType(ct);
      let p;
      try { p = JSON.parse(raw); } catch (e) { throw E.badRequest(`couldn't get version/kind; json parse error: ${e.message}`); }
      scale = decode('Scale', p, { fieldValidation: ctx.fv, name }).obj;
      if (!sts) throw E.notFound(info, name);
    } else {
      if (!sts) { await this.readBody(req); throw E.notFound(info, name); }
      const result = await this.applyPatch(req, 'Scale', this.scaleOf(sts), info, name);
      scale = decode('Scale', result, { fieldValidation: ctx.fv, name }).obj;
    }
    if (scale.metadata && scale.metadata.name && scale.metadata.name !== name)
      throw E.badRequest(`the name of the object (${scale.metadata.name}) does not match the name on the URL (${name})`);
    const errs = rules.scale({ ...scale, metadata: { name, ...(scale.metadata || {}) } });
    if (errs.length) throw E.invalid('Scale', 'autoscaling', name, errs);
    const rv = scale.metadata && scale.metadata.resourceVersion;
    if (rv && rv !== sts.metadata.resourceVersion) throw E.conflict(info, name);
    const next = clone(sts);
    next.spec.replicas = (scale.spec || {}).replicas || 0;
    delete next.metadata.resourceVersion;
    const out = this.registry.update(info, name, next, { dryRun: ctx.isDry });
    return ctx.reply(200, this.scaleOf(out));
  }

  // ------------------------------------------------------------- resize
  async handleResize(req, res, route, q, ctx) {
    const { info, name, verb } = route;
    const pod = this.store.get('pods', name);
    if (verb === 'get') { if (!pod) throw E.notFound(info, name); return ctx.reply(200, pod); }
    const result = await this.applyPatch(req, 'Pod', pod, info, name);
    const next = decode('Pod', result, { fieldValidation: ctx.fv, name }).obj;
    if (next.metadata.resourceVersion && next.metadata.resourceVersion !== pod.metadata.resourceVersion) throw E.conflict(info, name);
    for (const c of next.spec.containers || []) { if (c.resources) { defaults.canonQ(c.resources.limits); defaults.canonQ(c.resources.requests); } }
    const errs = rules.podResize(next, pod);
    if (errs.length) throw E.invalid('Pod', '', name, errs);
    if (pod.metadata.deletionTimestamp) throw E.conflict(info, name, 'the pod is terminating');
    if (ctx.isDry) return ctx.reply(200, next);
    const out = this.store.mutate('pods', name, p => {
      p.spec.containers = next.spec.containers;
      p.metadata.generation = (p.metadata.generation || 1) + 1;
    });
    this.controller.podResized(out);
    return ctx.reply(200, out);
  }
}

function splitHostPort(s) {
  const i = s.lastIndexOf(':');
  if (i < 0) die(`--listen ${s}: HOST:PORT`);
  return [s.slice(0, i).replace(/^\[|\]$/g, ''), s.slice(i + 1)];
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const srv = new Server(opts);
  await srv.listen();
  srv.controller.start();
  if (srv.kubelet) srv.kubelet.start();
  let stopping = false;
  const stop = async sig => {
    if (stopping) return;
    stopping = true;
    srv.log(`${sig}: stopping (containers are left to the test's teardown)`);
    for (const w of [...srv.openWatches]) w.end();
    srv.controller.stop();
    if (srv.kubelet) srv.kubelet.stop();
    srv.http.close();
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

if (require.main === module) main().catch(e => die(e.stack || String(e)));

module.exports = { Server, parseArgs };
