'use strict';
// The three patch types kube-apiserver takes in JSON: merge patch (RFC 7386),
// strategic merge patch (lists merged by their patchMergeKey, the $patch,
// $retainKeys, $deleteFromPrimitiveList and $setElementOrder directives), and
// JSON patch (RFC 6902).  Throws PatchError (the server answers 400 or 422).

class PatchError extends Error {
  constructor(msg, code = 400) { super(msg); this.code = code; }
}

const clone = v => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));
const isObj = v => v !== null && typeof v === 'object' && !Array.isArray(v);

function mergePatch(target, patch) {
  if (!isObj(patch)) return clone(patch);
  const out = isObj(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

// patch strategy of a list, by its path of field names (indices left out)
// relative to the object; podSpec is where the pod spec sits in this kind.
const PODSPEC_LISTS = {
  containers: 'name', initContainers: 'name', ephemeralContainers: 'name',
  'containers.env': 'name', 'initContainers.env': 'name', 'ephemeralContainers.env': 'name',
  'containers.ports': 'containerPort', 'initContainers.ports': 'containerPort',
  'containers.volumeMounts': 'mountPath', 'initContainers.volumeMounts': 'mountPath',
  'containers.volumeDevices': 'devicePath', 'initContainers.volumeDevices': 'devicePath',
  volumes: 'name', imagePullSecrets: 'name', hostAliases: 'ip',
  topologySpreadConstraints: 'topologyKey', resourceClaims: 'name', schedulingGates: 'name',
};

function listStrategy(kind, path) {
  const p = path.join('.');
  const last = path[path.length - 1];
  if (last === 'ownerReferences' && path[path.length - 2] === 'metadata') return { key: 'uid' };
  if (last === 'finalizers' && path[path.length - 2] === 'metadata') return { primitive: true };
  if (last === 'conditions' && path[path.length - 2] === 'status') return { key: 'type' };
  const podSpec = kind === 'Pod' ? 'spec.' : kind === 'StatefulSet' ? 'spec.template.spec.' : null;
  if (podSpec && p.startsWith(podSpec)) {
    const rel = p.slice(podSpec.length);
    if (PODSPEC_LISTS[rel]) return { key: PODSPEC_LISTS[rel] };
  }
  if (kind === 'Service' && p === 'spec.ports') return { key: 'port' };
  return null;
}

function stripDirectives(v) {
  if (Array.isArray(v)) return v.filter(e => !(isObj(e) && e.$patch === 'delete')).map(stripDirectives);
  if (!isObj(v)) return v;
  const out = {};
  for (const [k, x] of Object.entries(v)) {
    if (k.startsWith('$')) continue;
    if (k.startsWith('$setElementOrder/') || k.startsWith('$deleteFromPrimitiveList/')) continue;
    out[k] = stripDirectives(x);
  }
  return out;
}

function smpMap(orig, patch, kind, path) {
  if (!isObj(patch)) throw new PatchError('strategic merge patch: expected a map');
  if (patch.$patch === 'replace') { const p = clone(patch); delete p.$patch; return stripDirectives(p); }
  if (patch.$patch === 'delete') return undefined;
  if (patch.$patch !== undefined && patch.$patch !== 'merge')
    throw new PatchError(`Unknown patch type: ${patch.$patch} in map: ${JSON.stringify(patch)}`);
  const out = isObj(orig) ? clone(orig) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const f = k.slice('$deleteFromPrimitiveList/'.length);
      if (Array.isArray(out[f])) out[f] = out[f].filter(x => !v.includes(x));
      continue;
    }
    if (k.startsWith('$')) throw new PatchError(`unknown patch directive ${k}`);
    if (v === null) { delete out[k]; continue; }
    const sub = path.concat(k);
    if (Array.isArray(v)) {
      const strat = listStrategy(kind, sub);
      out[k] = strat ? smpList(out[k], v, strat, kind, sub) : stripDirectives(v);
      continue;
    }
    if (isObj(v)) {
      const r = isObj(out[k]) || v.$patch ? smpMap(out[k], v, kind, sub) : stripDirectives(v);
      if (r === undefined) delete out[k]; else out[k] = r;
      continue;
    }
    out[k] = v;
  }
  if (Array.isArray(patch.$retainKeys)) {
    for (const k of Object.keys(out)) if (!patch.$retainKeys.includes(k)) delete out[k];
  }
  return out;
}

function smpList(orig, patch, strat, kind, path) {
  orig = Array.isArray(orig) ? clone(orig) : [];
  if (patch.some(e => isObj(e) && e.$patch === 'replace'))
    return stripDirectives(patch.filter(e => !(isObj(e) && e.$patch === 'replace')));
  if (strat.primitive) {
    const out = orig.slice();
    for (const x of patch) if (!out.includes(x)) out.push(x);
    return out;
  }
  const key = strat.key;
  for (const e of patch) {
    if (!isObj(e)) throw new PatchError(`strategic merge patch: list ${path.join('.')} takes maps`);
    if (!(key in e)) throw new PatchError(`map: ${JSON.stringify(e)} does not contain declared merge key: ${key}`);
    const i = orig.findIndex(o => isObj(o) && o[key] === e[key]);
    if (e.$patch === 'delete') { if (i >= 0) orig.splice(i, 1); continue; }
    if (i >= 0) orig[i] = smpMap(orig[i], e, kind, path);
    else orig.push(stripDirectives(e));
  }
  return orig;
}

function strategicMergePatch(orig, patch, kind) {
  if (!isObj(patch)) throw new PatchError('strategic merge patch: the patch must be a JSON object');
  const r = smpMap(orig, patch, kind, []);
  return r === undefined ? {} : r;
}

// RFC 6901 pointers, RFC 6902 operations
function ptr(p) {
  if (p === '') return [];
  if (p[0] !== '/') throw new PatchError(`JSON pointer must start with '/': ${p}`);
  return p.slice(1).split('/').map(s => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function jsonPatch(doc, ops) {
  if (!Array.isArray(ops)) throw new PatchError('json patch: the patch must be a JSON array');
  doc = clone(doc);
  const parentOf = (toks, what) => {
    let cur = doc;
    for (const t of toks.slice(0, -1)) {
      if (cur === null || typeof cur !== 'object' || !(t in cur))
        throw new PatchError(`${what}: doc is missing path: "/${toks.join('/')}": missing value`);
      cur = cur[t];
    }
    return cur;
  };
  const get = toks => {
    let cur = doc;
    for (const t of toks) {
      if (cur === null || typeof cur !== 'object' || !(t in cur))
        throw new PatchError(`doc is missing path: "/${toks.join('/')}": missing value`);
      cur = cur[t];
    }
    return cur;
  };
  const add = (toks, v) => {
    if (!toks.length) { doc = v; return; }
    const par = parentOf(toks, 'add operation does not apply');
    const last = toks[toks.length - 1];
    if (Array.isArray(par)) {
      const i = last === '-' ? par.length : Number(last);
      if (!Number.isInteger(i) || i < 0 || i > par.length) throw new PatchError(`add operation does not apply: index ${last} out of bounds`);
      par.splice(i, 0, v);
    } else if (par !== null && typeof par === 'object') par[last] = v;
    else throw new PatchError('add operation does not apply');
  };
  const remove = toks => {
    const par = parentOf(toks, 'remove operation does not apply');
    const last = toks[toks.length - 1];
    if (par === null || typeof par !== 'object' || !(last in par))
      throw new PatchError(`remove operation does not apply: doc is missing path: "/${toks.join('/')}": missing value`);
    if (Array.isArray(par)) par.splice(Number(last), 1); else delete par[last];
  };
  for (const op of ops) {
    if (!isObj(op) || typeof op.op !== 'string' || typeof op.path !== 'string') throw new PatchError('json patch: each operation needs op and path');
    const toks = ptr(op.path);
    switch (op.op) {
      case 'add': add(toks, clone(op.value)); break;
      case 'remove': remove(toks); break;
      case 'replace': get(toks); remove(toks); add(toks, clone(op.value)); break;
      case 'move': { const from = ptr(op.from); const v = clone(get(from)); remove(from); add(toks, v); break; }
      case 'copy': add(toks, clone(get(ptr(op.from)))); break;
      case 'test':
        if (JSON.stringify(get(toks)) !== JSON.stringify(op.value)) throw new PatchError(`testing value ${op.path} failed`, 422);
        break;
      default: throw new PatchError(`Unexpected kind: ${op.op}`);
    }
  }
  return doc;
}

module.exports = { mergePatch, strategicMergePatch, jsonPatch, PatchError, clone };
