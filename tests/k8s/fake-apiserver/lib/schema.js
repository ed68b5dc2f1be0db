'use strict';
// Decoding a request body the way kube-apiserver's strict decoder does, with
// the schemas kubernetes-models carries (generated from Kubernetes' OpenAPI):
//
//  * types, formats, int32 ranges, base64, quantities (as oneOf number or
//    quantity string), date-times  -> 400 BadRequest, like a decode error;
//  * required fields and enums     -> 422 Invalid with causes;
//  * unknown fields                -> 400 "strict decoding error".
//
// Unknown fields: the generated validators are compiled ajv code without the
// schema objects, so the property lists are taken from the validators
// themselves: the body is handed to the model's validator through Proxies
// that record every property the validator looks up.  A compiled validator
// checks `data.<prop>` for every declared property of an object, and
// enumerates the keys of a free-form map (labels, data, limits: their
// additionalProperties), so a key it never asked for is not declared in the
// schema.

const { E, F } = require('./errors');
const quantity = require('./quantity');

const M = p => require('kubernetes-models/' + p);
// the _schemas are not in the packages' "exports": load them by file name
const path = require('path');
const pkgDir = name => path.dirname(require.resolve(name));
const S = p => require(path.join(pkgDir('kubernetes-models'), '_schemas', p + '.js')).validate;
const A = p => require(path.join(pkgDir('@kubernetes-models/apimachinery'), '_schemas', p + '.js')).validate;

const TYPES = {
  Secret: { apiVersion: 'v1', model: () => M('v1/Secret').Secret, schema: () => S('IoK8sApiCoreV1Secret') },
  Service: { apiVersion: 'v1', model: () => M('v1/Service').Service, schema: () => S('IoK8sApiCoreV1Service') },
  Pod: { apiVersion: 'v1', model: () => M('v1/Pod').Pod, schema: () => S('IoK8sApiCoreV1Pod') },
  PersistentVolumeClaim: { apiVersion: 'v1', model: () => M('v1/PersistentVolumeClaim').PersistentVolumeClaim, schema: () => S('IoK8sApiCoreV1PersistentVolumeClaim') },
  StatefulSet: { apiVersion: 'apps/v1', model: () => M('apps/v1/StatefulSet').StatefulSet, schema: () => S('IoK8sApiAppsV1StatefulSet') },
  NetworkPolicy: { apiVersion: 'networking.k8s.io/v1', model: () => M('networking.k8s.io/v1/NetworkPolicy').NetworkPolicy, schema: () => S('IoK8sApiNetworkingV1NetworkPolicy') },
  Scale: { apiVersion: 'autoscaling/v1', model: () => M('autoscaling/v1/Scale').Scale, schema: () => S('IoK8sApiAutoscalingV1Scale') },
  // only validated (POST /fake/validate: the shipped manifests), not served
  Namespace: { apiVersion: 'v1', model: () => M('v1/Namespace').Namespace, schema: () => S('IoK8sApiCoreV1Namespace') },
  ServiceAccount: { apiVersion: 'v1', model: () => M('v1/ServiceAccount').ServiceAccount, schema: () => S('IoK8sApiCoreV1ServiceAccount') },
  ConfigMap: { apiVersion: 'v1', model: () => M('v1/ConfigMap').ConfigMap, schema: () => S('IoK8sApiCoreV1ConfigMap') },
  Deployment: { apiVersion: 'apps/v1', model: () => M('apps/v1/Deployment').Deployment, schema: () => S('IoK8sApiAppsV1Deployment') },
  Role: { apiVersion: 'rbac.authorization.k8s.io/v1', model: () => M('rbac.authorization.k8s.io/v1/Role').Role, schema: () => S('IoK8sApiRbacV1Role') },
  RoleBinding: { apiVersion: 'rbac.authorization.k8s.io/v1', model: () => M('rbac.authorization.k8s.io/v1/RoleBinding').RoleBinding, schema: () => S('IoK8sApiRbacV1RoleBinding') },
  DeleteOptions: { apiVersion: 'v1', model: () => require('@kubernetes-models/apimachinery/apis/meta/v1/DeleteOptions').DeleteOptions,
    schema: () => A('IoK8sApimachineryPkgApisMetaV1DeleteOptions') },
};

// "/spec/template/spec/containers/0/image" -> "spec.template.spec.containers[0].image"
function fieldPath(instancePath, extra) {
  let out = '';
  for (const t of instancePath.split('/').slice(1)) {
    const tok = t.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(tok)) out += `[${tok}]`;
    else out += (out ? '.' : '') + tok;
  }
  if (extra !== undefined) out += (out ? '.' : '') + extra;
  return out;
}

function valueAt(obj, instancePath) {
  let cur = obj;
  for (const t of instancePath.split('/').slice(1)) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = cur[t.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return cur;
}

function jsonType(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return 'number ' + v;
  return typeof v === 'object' ? 'object' : typeof v;
}

// record which properties the validator asked for, per object
function traceAccess(validate, body) {
  const seen = new Map();
  const proxies = new WeakMap();
  const wrap = v => {
    if (v === null || typeof v !== 'object') return v;
    if (proxies.has(v)) return proxies.get(v);
    const keys = new Set();
    keys.all = false;
    seen.set(v, keys);
    const p = new Proxy(v, {
      get(t, k, r) { if (typeof k === 'string') keys.add(k); return wrap(Reflect.get(t, k, r)); },
      has(t, k) { if (typeof k === 'string') keys.add(k); return Reflect.has(t, k); },
      ownKeys(t) { keys.all = true; return Reflect.ownKeys(t); },
    });
    proxies.set(v, p);
    return p;
  };
  validate(wrap(body));
  const unknown = [];
  const walk = (v, path) => {
    if (v === null || typeof v !== 'object') return;
    const keys = seen.get(v);
    if (!keys) return;  // never looked into: free-form (RawExtension, preserve-unknown-fields)
    if (Array.isArray(v)) { v.forEach((e, i) => walk(e, `${path}[${i}]`)); return; }
    for (const k of Object.keys(v)) {
      const p = path ? `${path}.${k}` : k;
      if (!keys.all && !keys.has(k)) unknown.push(p);
      else walk(v[k], p);
    }
  };
  walk(body, '');
  return unknown;
}

function dropUnknown(body, paths) {
  for (const p of paths) {
    const toks = p.match(/[^.[\]]+/g);
    let cur = body;
    for (const t of toks.slice(0, -1)) cur = cur && cur[t];
    if (cur && typeof cur === 'object') delete cur[toks[toks.length - 1]];
  }
}

// -> {obj, warnings}; throws ApiError.  kind: the kind the URL names.
function decode(kind, body, { fieldValidation = 'Strict', name } = {}) {
  const t = TYPES[kind];
  const handled = `${kind} in version "${t.apiVersion.split('/').pop()}" cannot be handled as a ${kind}`;
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw E.badRequest(`${handled}: json: cannot unmarshal ${jsonType(body)} into Go value of type struct`);
  if (kind !== 'DeleteOptions') {
    if (body.kind === undefined || body.kind === '')
      throw E.badRequest(`Object 'Kind' is missing in '${JSON.stringify(body).slice(0, 512)}'`);
    if (body.apiVersion === undefined || body.apiVersion === '')
      throw E.badRequest(`Object 'apiVersion' is missing in '${JSON.stringify(body).slice(0, 512)}'`);
    if (body.apiVersion !== t.apiVersion)
      throw E.badRequest(`the API version in the data (${body.apiVersion}) does not match the expected API version (${t.apiVersion})`);
    if (body.kind !== kind)
      throw E.badRequest(`the kind in the data (${body.kind}) does not match the expected kind (${kind})`);
  } else {
    if (body.kind !== undefined && body.kind !== 'DeleteOptions')
      throw E.badRequest(`the kind in the data (${body.kind}) does not match the expected kind (DeleteOptions)`);
  }

  // schema: kubernetes-models' own validate()
  let errors = [];
  const Model = t.model();
  try {
    new Model(body).validate();
  } catch (e) {
    if (!e.errors) throw e;
    errors = e.errors;
  }
  // a oneOf (quantity, int-or-string) reports its branches too: keep one
  // error per field, the most telling
  const rank = { oneOf: 5, format: 4, type: 3, enum: 2, required: 1 };
  const byPath = new Map();
  for (const err of errors) {
    const key = err.keyword === 'required' ? err.instancePath + '/' + err.params.missingProperty : err.instancePath;
    const cur = byPath.get(key);
    if (!cur || (rank[err.keyword] || 0) > (rank[cur.keyword] || 0)) byPath.set(key, err);
  }
  const decodeErrs = [], fieldErrs = [];
  for (const err of byPath.values()) {
    const field = err.keyword === 'required' ? fieldPath(err.instancePath, err.params.missingProperty) : fieldPath(err.instancePath);
    const v = valueAt(body, err.instancePath);
    switch (err.keyword) {
      case 'required': fieldErrs.push(F.required(field)); break;
      case 'enum': fieldErrs.push(F.notSupported(field, v, err.params.allowedValues)); break;
      case 'format':
        if (err.params.format === 'quantity') decodeErrs.push(`${field}: ${quantity.REGEX_MSG}`);
        else if (err.params.format === 'byte') decodeErrs.push(`${field}: illegal base64 data in ${JSON.stringify(v).slice(0, 64)}`);
        else if (err.params.format === 'int32' || err.params.format === 'int64')
          decodeErrs.push(`json: cannot unmarshal number ${v} into Go struct field .${field} of type ${err.params.format}`);
        else decodeErrs.push(`${field}: ${JSON.stringify(v)} is not a valid ${err.params.format}`);
        break;
      case 'oneOf':
        decodeErrs.push(`json: cannot unmarshal ${jsonType(v)} into Go struct field .${field} of type int-or-string or quantity` +
          (typeof v === 'string' ? ` (${quantity.REGEX_MSG})` : ''));
        break;
      case 'type':
        decodeErrs.push(`json: cannot unmarshal ${jsonType(v)} into Go struct field .${field} of type ${err.params.type}`);
        break;
      default: fieldErrs.push(F.invalid(field, v, err.message || err.keyword));
    }
  }
  // Kubernetes accepts fewer quantity suffixes than kubernetes-models' format
  const reported = new Set([...byPath.values()].map(e => fieldPath(e.instancePath)));
  for (const f of findBadQuantities(kind, body))
    if (!reported.has(f)) decodeErrs.push(`${f}: ${quantity.REGEX_MSG}`);
  if (decodeErrs.length) throw E.badRequest(`${handled}: ${decodeErrs.join('; ')}`);

  // unknown fields, with the model's own validator
  const unknown = traceAccess(t.schema(), body);
  const warnings = [];
  if (unknown.length) {
    if (fieldValidation === 'Strict') {
      const err = E.badRequest(`${handled}: strict decoding error: ` +
        unknown.map(p => `unknown field "${p}"`).join(', ') +
        ' (' + unknown.map(p => `.${p}: field not declared in schema`).join(', ') + ')');
      err.details = { causes: unknown.map(p => ({ reason: 'FieldValueInvalid', message: 'field not declared in schema', field: '.' + p })) };
      throw err;
    }
    if (fieldValidation === 'Warn') for (const p of unknown) warnings.push(`unknown field "${p}"`);
    dropUnknown(body, unknown);
  }
  if (fieldErrs.length) {
    const group = t.apiVersion.includes('/') ? t.apiVersion.split('/')[0] : '';
    throw E.invalid(kind, group, name || (body.metadata && body.metadata.name) || '', fieldErrs);
  }
  return { obj: body, warnings };
}

// quantities a kubernetes-models format lets through but Kubernetes refuses
function findBadQuantities(kind, body) {
  const bad = [];
  const check = (m, path) => {
    if (!m || typeof m !== 'object') return;
    for (const [k, v] of Object.entries(m)) if (typeof v === 'string' && quantity.parse(v) === null) bad.push(`${path}.${k}`);
  };
  const containers = (spec, path) => {
    if (!spec || typeof spec !== 'object') return;
    for (const list of ['containers', 'initContainers']) {
      (Array.isArray(spec[list]) ? spec[list] : []).forEach((c, i) => {
        if (c && c.resources) { check(c.resources.limits, `${path}.${list}[${i}].resources.limits`); check(c.resources.requests, `${path}.${list}[${i}].resources.requests`); }
      });
    }
  };
  const spec = body.spec || {};
  if (kind === 'StatefulSet') {
    containers(spec.template && spec.template.spec, 'spec.template.spec');
    (Array.isArray(spec.volumeClaimTemplates) ? spec.volumeClaimTemplates : []).forEach((t, i) => {
      const r = t && t.spec && t.spec.resources;
      if (r) { check(r.requests, `spec.volumeClaimTemplates[${i}].spec.resources.requests`); check(r.limits, `spec.volumeClaimTemplates[${i}].spec.resources.limits`); }
    });
  }
  if (kind === 'Pod') containers(spec, 'spec');
  return bad;
}

module.exports = { decode, TYPES, traceAccess };
