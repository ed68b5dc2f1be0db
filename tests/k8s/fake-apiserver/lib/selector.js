'use strict';
// Label selectors (the string form of ?labelSelector= and the LabelSelector
// object of specs) and the field selectors the fake supports.

class SelectorError extends Error {}

const KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function checkKey(k) {
  if (!KEY.test(k) || k.split('/').pop().length > 63)
    throw new SelectorError(`unable to parse requirement: <nil>: Invalid value: "${k}": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`);
}
function checkValue(v) {
  if (!VALUE.test(v) || v.length > 63)
    throw new SelectorError(`unable to parse requirement: values[0]: Invalid value: "${v}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`);
}

// split on commas that are not inside parentheses
function splitTop(s) {
  const out = [];
  let depth = 0, cur = '';
  for (const c of s) {
    if (c === '(') depth++;
    if (c === ')') depth--;
    if (c === ',' && depth === 0) { out.push(cur); cur = ''; } else cur += c;
  }
  if (depth !== 0) throw new SelectorError('unable to parse requirement: unbalanced parentheses');
  out.push(cur);
  return out;
}

// [{key, op: 'In'|'NotIn'|'Exists'|'DoesNotExist'|'Gt'|'Lt', values}]
function parseLabelSelector(s) {
  if (s === undefined || s === null) return [];
  s = s.trim();
  if (s === '') return [];
  const reqs = [];
  for (let part of splitTop(s)) {
    part = part.trim();
    let m;
    if (part === '') throw new SelectorError(`found '', expected: identifier`);
    if ((m = /^!\s*(\S+)$/.exec(part))) { checkKey(m[1]); reqs.push({ key: m[1], op: 'DoesNotExist', values: [] }); continue; }
    if ((m = /^(\S+?)\s+(in|notin)\s*\(([^)]*)\)$/.exec(part))) {
      checkKey(m[1]);
      const vals = m[3].split(',').map(x => x.trim());
      vals.forEach(checkValue);
      reqs.push({ key: m[1], op: m[2] === 'in' ? 'In' : 'NotIn', values: vals });
      continue;
    }
    if ((m = /^([^=!<>\s]+)\s*(==|=|!=)\s*([^=!,\s]*)$/.exec(part))) {
      checkKey(m[1]); checkValue(m[3]);
      reqs.push({ key: m[1], op: m[2] === '!=' ? 'NotIn' : 'In', values: [m[3]] });
      continue;
    }
    if ((m = /^([^=!<>\s]+)\s*(<|>)\s*(\d+)$/.exec(part))) {
      checkKey(m[1]);
      reqs.push({ key: m[1], op: m[2] === '>' ? 'Gt' : 'Lt', values: [m[3]] });
      continue;
    }
    if ((m = /^([^=!<>\s(),]+)$/.exec(part))) { checkKey(m[1]); reqs.push({ key: m[1], op: 'Exists', values: [] }); continue; }
    throw new SelectorError(`unable to parse requirement: found '${part}', expected: in, notin, =, ==, !=, gt, lt`);
  }
  return reqs;
}

// metav1.LabelSelector object -> requirements (already validated)
function fromLabelSelector(sel) {
  const reqs = [];
  if (!sel) return reqs;
  for (const [k, v] of Object.entries(sel.matchLabels || {})) reqs.push({ key: k, op: 'In', values: [v] });
  for (const e of sel.matchExpressions || []) reqs.push({ key: e.key, op: e.operator, values: e.values || [] });
  return reqs;
}

function matches(reqs, labels) {
  labels = labels || {};
  for (const r of reqs) {
    const has = Object.prototype.hasOwnProperty.call(labels, r.key);
    const v = labels[r.key];
    switch (r.op) {
      case 'In': if (!has || !r.values.includes(v)) return false; break;
      case 'NotIn': if (has && r.values.includes(v)) return false; break;
      case 'Exists': if (!has) return false; break;
      case 'DoesNotExist': if (has) return false; break;
      case 'Gt': if (!has || !(Number(v) > Number(r.values[0]))) return false; break;
      case 'Lt': if (!has || !(Number(v) < Number(r.values[0]))) return false; break;
      default: return false;
    }
  }
  return true;
}

function toString(sel) {
  const parts = [];
  for (const [k, v] of Object.entries((sel && sel.matchLabels) || {})) parts.push(`${k}=${v}`);
  for (const e of (sel && sel.matchExpressions) || []) {
    if (e.operator === 'In') parts.push(`${e.key} in (${e.values.join(',')})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${e.values.join(',')})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push('!' + e.key);
  }
  return parts.sort().join(',');
}

// field selectors: metadata.name and metadata.namespace (every resource), and
// status.phase / spec.nodeName for pods, as kube-apiserver supports them
const FIELDS = {
  '*': { 'metadata.name': o => o.metadata.name, 'metadata.namespace': o => o.metadata.namespace },
  pods: { 'status.phase': o => (o.status || {}).phase || '', 'spec.nodeName': o => (o.spec || {}).nodeName || '' },
  secrets: { type: o => o.type || '' },
};

function parseFieldSelector(s, resource) {
  if (!s) return [];
  const reqs = [];
  for (let part of s.split(',')) {
    part = part.trim();
    const m = /^([^=!]+)(==|=|!=)(.*)$/.exec(part);
    if (!m) throw new SelectorError(`invalid selector: '${s}'; can't understand '${part}'`);
    const get = FIELDS['*'][m[1]] || (FIELDS[resource] || {})[m[1]];
    if (!get) throw new SelectorError(`"${m[1]}" is not a known field selector: only "metadata.name", "metadata.namespace"`);
    reqs.push({ get, neg: m[2] === '!=', value: m[3] });
  }
  return reqs;
}

function fieldMatches(reqs, obj) {
  for (const r of reqs) if ((r.get(obj) === r.value) === r.neg) return false;
  return true;
}

module.exports = { parseLabelSelector, fromLabelSelector, matches, toString, parseFieldSelector, fieldMatches, SelectorError };
