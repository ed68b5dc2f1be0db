'use strict';
// The resources the fake serves, what each kind does on create, update and
// delete (validation, defaults, server-set fields), as kube-apiserver's
// registries do.

const { E, F } = require('./errors');
const defaults = require('./defaults');
const rules = require('./rules');
const { clone } = require('./store');

const RESOURCES = {
  'v1/secrets': { resource: 'secrets', group: '', version: 'v1', kind: 'Secret', list: 'SecretList',
    verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'], subresources: {} },
  'v1/services': { resource: 'services', group: '', version: 'v1', kind: 'Service', list: 'ServiceList', hasStatus: true, returnDeleted: true,
    verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'], subresources: {} },
  'v1/persistentvolumeclaims': { resource: 'persistentvolumeclaims', group: '', version: 'v1', kind: 'PersistentVolumeClaim', list: 'PersistentVolumeClaimList', hasStatus: true, returnDeleted: true,
    verbs: ['get', 'list', 'watch', 'delete'], subresources: {},
    why: 'PersistentVolumeClaims are made by the StatefulSet controller from volumeClaimTemplates only' },
  'v1/pods': { resource: 'pods', group: '', version: 'v1', kind: 'Pod', list: 'PodList', hasStatus: true, returnDeleted: true,
    verbs: ['get', 'list', 'watch', 'delete'], subresources: { resize: ['get', 'patch'] },
    why: 'Pods are made by the StatefulSet controller only; their resources change through pods/{name}/resize' },
  'apps/v1/statefulsets': { resource: 'statefulsets', group: 'apps', version: 'v1', kind: 'StatefulSet', list: 'StatefulSetList', hasStatus: true,
    verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'], subresources: { scale: ['get', 'update', 'patch'] } },
  'networking.k8s.io/v1/networkpolicies': { resource: 'networkpolicies', group: 'networking.k8s.io', version: 'v1', kind: 'NetworkPolicy', list: 'NetworkPolicyList',
    verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'], subresources: {} },
};
for (const r of Object.values(RESOURCES)) r.apiVersion = r.group ? `${r.group}/${r.version}` : r.version;

const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

class Registry {
  constructor(store, namespace) {
    this.store = store;
    this.namespace = namespace;
    this.nextClusterIP = 10;
    this.nextNodePort = 30000;
  }

  // --- kind hooks --------------------------------------------------------
  prepare(info, obj, old) {
    switch (info.kind) {
      case 'Secret':
        defaults.secret(obj);
        return old ? rules.secretUpdate(obj, old) : rules.secret(obj);
      case 'Service':
        defaults.service(obj);
        if (old) this.keepAllocated(obj, old);
        else this.allocate(obj);
        return old ? rules.serviceUpdate(obj, old) : rules.service(obj);
      case 'StatefulSet':
        defaults.statefulSet(obj);
        return old ? rules.statefulSetUpdate(obj, old) : rules.statefulSet(obj);
      case 'NetworkPolicy':
        defaults.networkPolicy(obj);
        return rules.networkPolicy(obj);
      default:
        return [];
    }
  }

  allocate(svc) {
    const s = svc.spec;
    if (s.type === 'ExternalName') return;
    if (!s.clusterIP) {
      const used = new Set(this.store.list('services').map(x => x.spec.clusterIP));
      let ip;
      do { const n = this.nextClusterIP++; ip = `10.96.${Math.floor(n / 250)}.${(n % 250) + 1}`; } while (used.has(ip));
      s.clusterIP = ip;
    }
    s.clusterIPs = [s.clusterIP];
    if (s.type === 'NodePort' || s.type === 'LoadBalancer')
      for (const p of s.ports || []) if (!p.nodePort) p.nodePort = this.nextNodePort++;
  }

  keepAllocated(svc, old) {
    const s = svc.spec, o = old.spec;
    if (!s.clusterIP && o.clusterIP && s.type !== 'ExternalName') s.clusterIP = o.clusterIP;
    if (s.type !== 'ExternalName') s.clusterIPs = s.clusterIP ? [s.clusterIP] : undefined;
    if (!s.clusterIP && s.type !== 'ExternalName') this.allocate(svc);
    if (s.type === 'NodePort' || s.type === 'LoadBalancer') {
      for (const p of s.ports || []) {
        if (p.nodePort) continue;
        const op = (o.ports || []).find(x => x.port === p.port && x.protocol === p.protocol);
        p.nodePort = (op && op.nodePort) || this.nextNodePort++;
      }
    }
  }

  initialStatus(info, obj) {
    if (info.kind === 'StatefulSet') obj.status = { replicas: 0, availableReplicas: 0, currentReplicas: 0, updatedReplicas: 0, readyReplicas: 0, observedGeneration: 0, collisionCount: 0 };
    else if (info.kind === 'Service') obj.status = { loadBalancer: {} };
    else delete obj.status;
  }

  // --- create ------------------------------------------------------------
  create(info, obj, { dryRun }) {
    const meta = obj.metadata = obj.metadata || {};
    if (meta.namespace && meta.namespace !== this.namespace)
      throw E.badRequest('the namespace of the provided object does not match the namespace sent on the request');
    if (meta.resourceVersion)
      throw E.internal('resourceVersion should not be set on objects to be created');
    meta.namespace = this.namespace;
    if (!meta.name && meta.generateName) meta.name = meta.generateName + Math.random().toString(36).slice(2, 7);
    for (const k of ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation', 'selfLink', 'managedFields']) delete meta[k];
    const errs = this.prepare(info, obj, null);
    if (errs.length) throw E.invalid(info.kind, info.group, meta.name || '', errs);
    if (this.store.get(info.resource, meta.name)) throw E.alreadyExists(info, meta.name);
    meta.uid = this.store.uid();
    meta.creationTimestamp = now();
    if (info.kind === 'StatefulSet') meta.generation = 1;
    this.initialStatus(info, obj);
    if (dryRun) return obj;
    return this.store.create(info.resource, obj);
  }

  // --- update ------------------------------------------------------------
  update(info, name, obj, { dryRun, subresource } = {}) {
    const meta = obj.metadata = obj.metadata || {};
    if (meta.name !== undefined && meta.name !== name)
      throw E.badRequest(`the name of the object (${meta.name}) does not match the name on the URL (${name})`);
    if (meta.namespace && meta.namespace !== this.namespace)
      throw E.badRequest('the namespace of the provided object does not match the namespace sent on the request');
    const old = this.store.get(info.resource, name);
    if (!old) throw E.notFound(info, name);
    if (meta.resourceVersion && meta.resourceVersion !== old.metadata.resourceVersion) throw E.conflict(info, name);
    if (meta.uid && meta.uid !== old.metadata.uid)
      throw E.conflict(info, name, `Precondition failed: UID in precondition: ${meta.uid}, UID in object meta: ${old.metadata.uid}`);
    meta.name = name;
    meta.namespace = this.namespace;
    for (const k of ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation']) {
      if (old.metadata[k] !== undefined) meta[k] = old.metadata[k]; else delete meta[k];
    }
    delete meta.managedFields;
    delete meta.selfLink;
    if (info.hasStatus) { if (old.status !== undefined) obj.status = clone(old.status); else delete obj.status; }
    const errs = this.prepare(info, obj, old);
    if (errs.length) throw E.invalid(info.kind, info.group, name, errs);
    if (info.kind === 'StatefulSet' && rules.canon(obj.spec) !== rules.canon(old.spec)) meta.generation = (old.metadata.generation || 1) + 1;
    meta.resourceVersion = old.metadata.resourceVersion;
    if (rules.canon(obj) === rules.canon(old)) return old;   // no-op: no new resourceVersion
    if (dryRun) return obj;
    if (old.metadata.deletionTimestamp && !(meta.finalizers || []).length) {
      this.store.update(info.resource, obj);
      return this.store.remove(info.resource, name);
    }
    return this.store.update(info.resource, obj);
  }
}

function successStatus(info, obj) {
  const details = { name: obj.metadata.name };
  if (info.group) details.group = info.group;
  details.kind = info.resource;
  details.uid = obj.metadata.uid;
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details };
}

module.exports = { RESOURCES, Registry, successStatus, now };
