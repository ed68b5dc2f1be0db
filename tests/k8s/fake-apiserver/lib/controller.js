'use strict';
// The fake's kube-controller-manager: the StatefulSet controller (pods
// <sts>-<ordinal> with OrderedReady or Parallel management, PVCs from
// volumeClaimTemplates, rolling updates, status), the garbage collector
// (ownerReferences: Background, Foreground, Orphan) and the PVC protection
// finalizer.  Deletion semantics of every kind are here too.

const crypto = require('crypto');
const { clone } = require('./store');
const defaults = require('./defaults');
const rules = require('./rules');
const sel = require('./selector');
const quantity = require('./quantity');
const { now } = require('./resources');

const hash = v => crypto.createHash('sha256').update(rules.canon(v)).digest('hex').slice(0, 10);

function isRunningAndReady(pod) {
  if (!pod || pod.metadata.deletionTimestamp) return false;
  const st = pod.status || {};
  return st.phase === 'Running' && (st.conditions || []).some(c => c.type === 'Ready' && c.status === 'True');
}

class Controller {
  constructor(store, ns, kubelet) {
    this.store = store;
    this.ns = ns;
    this.kubelet = kubelet;
    this.pending = false;
    this.pvcBusy = new Set();
  }

  start() {
    this.store.listeners.push(() => this.kick());
    this.timer = setInterval(() => this.kick(), 500);
  }
  stop() { clearInterval(this.timer); }

  kick() {
    if (this.pending) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      try { this.reconcile(); } catch (e) { process.stdout.write(`fake-apiserver: controller error: ${e.stack}\n`); }
    });
  }

  reconcile() {
    for (const sts of this.store.list('statefulsets')) this.syncStatefulSet(sts);
    this.garbageCollect();
    this.finalizePVCs();
  }

  ownedPods(sts) {
    return this.store.list('pods').filter(p => (p.metadata.ownerReferences || []).some(r => r.uid === sts.metadata.uid && r.controller));
  }

  revision(sts) { return `${sts.metadata.name}-${hash(sts.spec.template)}`; }

  syncStatefulSet(sts) {
    const name = sts.metadata.name;
    const start = (sts.spec.ordinals && sts.spec.ordinals.start) || 0;
    const replicas = sts.spec.replicas;
    const monotonic = sts.spec.podManagementPolicy !== 'Parallel';
    const updateRev = this.revision(sts);

    if (sts.metadata.deletionTimestamp) {
      const pods = this.ownedPods(sts);
      if ((sts.metadata.finalizers || []).includes('foregroundDeletion')) {
        for (const p of pods) if (!p.metadata.deletionTimestamp) this.deletePod(p, {});
        if (!pods.length) this.dropFinalizer('statefulsets', name, 'foregroundDeletion');
      }
      return;
    }

    // adopt orphans that match the selector and carry our names
    const reqs = sel.fromLabelSelector(sts.spec.selector);
    for (const p of this.store.list('pods')) {
      const m = new RegExp(`^${name}-(\\d+)$`).exec(p.metadata.name);
      if (!m || (p.metadata.ownerReferences || []).some(r => r.controller)) continue;
      if (!sel.matches(reqs, p.metadata.labels) || p.metadata.deletionTimestamp) continue;
      this.store.mutate('pods', p.metadata.name, x => { x.metadata.ownerReferences = (x.metadata.ownerReferences || []).concat([this.ownerRef(sts)]); });
    }

    const byOrdinal = new Map();
    for (const p of this.ownedPods(sts)) {
      const m = /-(\d+)$/.exec(p.metadata.name);
      if (m) byOrdinal.set(Number(m[1]), p);
    }

    let blocked = false;
    for (let i = start; i < start + replicas && !blocked; i++) {
      const pod = byOrdinal.get(i);
      if (!pod) {
        if (!this.ensureClaims(sts, i)) { blocked = monotonic; continue; }
        this.createPod(sts, i, updateRev);
        if (monotonic) blocked = true;
        continue;
      }
      if (pod.metadata.deletionTimestamp) { if (monotonic) blocked = true; continue; }
      this.ensureClaims(sts, i);
      if (monotonic && !isRunningAndReady(pod)) blocked = true;
    }

    // scale down: highest ordinal first, one at a time when OrderedReady
    if (!blocked) {
      const condemned = [...byOrdinal.entries()].filter(([i]) => i < start || i >= start + replicas).sort((a, b) => b[0] - a[0]);
      const firstUnhealthy = condemned.map(c => c[1]).find(p => !isRunningAndReady(p));
      for (const [, p] of condemned) {
        if (p.metadata.deletionTimestamp) { if (monotonic) break; continue; }
        if (monotonic && !isRunningAndReady(p) && p !== firstUnhealthy) break;
        this.deletePod(p, {});
        if (monotonic) break;
      }
      // rolling update: the highest pod not at the update revision
      if (!condemned.length && sts.spec.updateStrategy.type === 'RollingUpdate') {
        const partition = (sts.spec.updateStrategy.rollingUpdate || {}).partition || 0;
        for (let i = start + replicas - 1; i >= start + partition; i--) {
          const p = byOrdinal.get(i);
          if (!p) break;
          if (p.metadata.labels['controller-revision-hash'] !== updateRev && !p.metadata.deletionTimestamp) { this.deletePod(p, {}); break; }
          if (!isRunningAndReady(p)) break;
        }
      }
    }

    // PVC retention whenScaled=Delete: claims of ordinals past replicas go once their pod is gone
    const policy = sts.spec.persistentVolumeClaimRetentionPolicy;
    for (const pvc of this.store.list('persistentvolumeclaims')) {
      for (const t of sts.spec.volumeClaimTemplates || []) {
        const m = new RegExp(`^${t.metadata.name}-${name}-(\\d+)$`).exec(pvc.metadata.name);
        if (!m) continue;
        const ord = Number(m[1]);
        const wantOwner = policy.whenDeleted === 'Delete';
        const hasOwner = (pvc.metadata.ownerReferences || []).some(r => r.uid === sts.metadata.uid);
        if (wantOwner !== hasOwner)
          this.store.mutate('persistentvolumeclaims', pvc.metadata.name, x => {
            const refs = (x.metadata.ownerReferences || []).filter(r => r.uid !== sts.metadata.uid);
            if (wantOwner) refs.push({ ...this.ownerRef(sts), controller: true });
            if (refs.length) x.metadata.ownerReferences = refs; else delete x.metadata.ownerReferences;
          });
        if (policy.whenScaled === 'Delete' && (ord < start || ord >= start + replicas) && !byOrdinal.has(ord) && !pvc.metadata.deletionTimestamp)
          this.deleteObject({ resource: 'persistentvolumeclaims', kind: 'PersistentVolumeClaim' }, pvc, {});
      }
    }

    // status
    const pods = this.ownedPods(sts);
    const ready = pods.filter(isRunningAndReady);
    const minReady = sts.spec.minReadySeconds || 0;
    const available = ready.filter(p => {
      const c = p.status.conditions.find(x => x.type === 'Ready');
      return !minReady || (Date.now() - Date.parse(c.lastTransitionTime)) / 1000 >= minReady;
    });
    const updated = pods.filter(p => p.metadata.labels['controller-revision-hash'] === updateRev);
    this.store.mutate('statefulsets', name, s => {
      const st = s.status = s.status || {};
      const allUpdated = updated.length === pods.length;
      st.observedGeneration = s.metadata.generation;
      st.replicas = pods.length;
      st.readyReplicas = ready.length;
      st.availableReplicas = available.length;
      st.updatedReplicas = updated.length;
      st.updateRevision = updateRev;
      if (!st.currentRevision || (allUpdated && pods.length === replicas)) st.currentRevision = updateRev;
      st.currentReplicas = pods.filter(p => p.metadata.labels['controller-revision-hash'] === st.currentRevision).length;
      st.collisionCount = 0;
    });
  }

  ownerRef(sts) {
    return { apiVersion: 'apps/v1', kind: 'StatefulSet', name: sts.metadata.name, uid: sts.metadata.uid, controller: true, blockOwnerDeletion: true };
  }

  claimName(t, sts, i) { return `${t.metadata.name}-${sts.metadata.name}-${i}`; }

  // the PVCs of ordinal i; false while one is being deleted
  ensureClaims(sts, i) {
    let ok = true;
    for (const t of sts.spec.volumeClaimTemplates || []) {
      const n = this.claimName(t, sts, i);
      const pvc = this.store.get('persistentvolumeclaims', n);
      if (pvc) { if (pvc.metadata.deletionTimestamp) ok = false; continue; }
      const spec = clone(t.spec);
      defaults.pvcSpec(spec);
      if (!spec.storageClassName) spec.storageClassName = 'fake-podman-volume';
      const uid = this.store.uid();
      spec.volumeName = `pvc-${uid}`;
      const labels = { ...((t.metadata && t.metadata.labels) || {}), ...(sts.spec.selector.matchLabels || {}) };
      const obj = { apiVersion: 'v1', kind: 'PersistentVolumeClaim',
        metadata: { name: n, namespace: this.ns, uid, creationTimestamp: now(), labels,
          annotations: { ...((t.metadata && t.metadata.annotations) || {}), 'pv.kubernetes.io/bind-completed': 'yes', 'fake-apiserver/realized-as': 'podman volume' },
          finalizers: ['kubernetes.io/pvc-protection'] },
        spec,
        status: { phase: 'Bound', accessModes: spec.accessModes, capacity: { storage: spec.resources.requests.storage } } };
      if (sts.spec.persistentVolumeClaimRetentionPolicy.whenDeleted === 'Delete') obj.metadata.ownerReferences = [this.ownerRef(sts)];
      this.store.create('persistentvolumeclaims', obj);
    }
    return ok;
  }

  createPod(sts, i, rev) {
    const name = `${sts.metadata.name}-${i}`;
    const tmpl = clone(sts.spec.template);
    const spec = tmpl.spec;
    const claims = (sts.spec.volumeClaimTemplates || []).map(t => ({ name: t.metadata.name, persistentVolumeClaim: { claimName: this.claimName(t, sts, i) } }));
    const claimNames = claims.map(c => c.name);
    spec.volumes = claims.concat((spec.volumes || []).filter(v => !claimNames.includes(v.name)));
    if (!spec.volumes.length) delete spec.volumes;
    spec.hostname = name;
    if (sts.spec.serviceName) spec.subdomain = sts.spec.serviceName;
    defaults.podOnly(spec);
    const pod = { apiVersion: 'v1', kind: 'Pod',
      metadata: { name, namespace: this.ns, uid: this.store.uid(), creationTimestamp: now(), generation: 1,
        labels: { ...(tmpl.metadata.labels || {}), 'controller-revision-hash': rev, 'statefulset.kubernetes.io/pod-name': name, 'apps.kubernetes.io/pod-index': String(i) },
        ownerReferences: [this.ownerRef(sts)] },
      spec,
      status: { phase: 'Pending', qosClass: rules.qosClass(spec) } };
    if (tmpl.metadata.annotations) pod.metadata.annotations = tmpl.metadata.annotations;
    if (this.kubelet) {
      spec.nodeName = this.kubelet.nodeName;
      pod.status.conditions = [{ type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: now() }];
    } else {
      pod.status.conditions = [{ type: 'PodScheduled', status: 'False', lastProbeTime: null, lastTransitionTime: now(), reason: 'Unschedulable',
        message: 'fake-apiserver runs no kubelet (--kubelet none): pods stay Pending' }];
    }
    this.store.create('pods', pod);
  }

  // pods: graceful deletion through the kubelet; unscheduled ones and
  // gracePeriodSeconds=0 go at once (a forced deletion)
  deletePod(pod, opts) {
    const grace = opts.gracePeriodSeconds !== undefined ? Math.max(0, opts.gracePeriodSeconds) : (pod.spec.terminationGracePeriodSeconds ?? 30);
    if (!pod.spec.nodeName || !this.kubelet || grace === 0) {
      const out = this.store.remove('pods', pod.metadata.name);
      if (this.kubelet) this.kubelet.forget(out);
      return { obj: out, deleted: true };
    }
    const cur = pod.metadata.deletionGracePeriodSeconds;
    if (cur !== undefined && cur <= grace) return { obj: pod, deleted: false };
    const out = this.store.mutate('pods', pod.metadata.name, p => {
      p.metadata.deletionTimestamp = new Date(Date.now() + grace * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
      p.metadata.deletionGracePeriodSeconds = grace;
    });
    return { obj: out, deleted: false };
  }

  deleteObject(info, obj, opts) {
    const name = obj.metadata.name;
    if (info.resource === 'pods') return this.deletePod(obj, opts);
    if (obj.metadata.deletionTimestamp) return { obj, deleted: false };
    if (info.resource === 'statefulsets') {
      const policy = opts.propagationPolicy || (opts.orphanDependents ? 'Orphan' : 'Background');
      if (policy === 'Orphan') {
        for (const p of this.ownedPods(obj))
          this.store.mutate('pods', p.metadata.name, x => {
            x.metadata.ownerReferences = x.metadata.ownerReferences.filter(r => r.uid !== obj.metadata.uid);
            if (!x.metadata.ownerReferences.length) delete x.metadata.ownerReferences;
          });
      }
      if (policy === 'Foreground') {
        const out = this.store.mutate('statefulsets', name, s => {
          s.metadata.deletionTimestamp = now();
          s.metadata.deletionGracePeriodSeconds = 0;
          s.metadata.finalizers = [...new Set([...(s.metadata.finalizers || []), 'foregroundDeletion'])];
        });
        this.kick();
        return { obj: out, deleted: false };
      }
    }
    if ((obj.metadata.finalizers || []).length) {
      const out = this.store.mutate(info.resource, name, s => {
        s.metadata.deletionTimestamp = now();
        s.metadata.deletionGracePeriodSeconds = 0;
      });
      this.kick();
      return { obj: out, deleted: false };
    }
    return { obj: this.store.remove(info.resource, name), deleted: true };
  }

  dropFinalizer(resource, name, f) {
    const o = this.store.get(resource, name);
    if (!o) return;
    const left = (o.metadata.finalizers || []).filter(x => x !== f);
    if (!left.length && o.metadata.deletionTimestamp) { this.store.remove(resource, name); return; }
    this.store.mutate(resource, name, x => { if (left.length) x.metadata.finalizers = left; else delete x.metadata.finalizers; });
  }

  garbageCollect() {
    const uids = new Map();
    for (const r of ['statefulsets', 'pods']) for (const o of this.store.list(r)) uids.set(o.metadata.uid, o);
    for (const r of ['pods', 'persistentvolumeclaims']) {
      for (const o of this.store.list(r)) {
        const refs = o.metadata.ownerReferences || [];
        if (!refs.length || o.metadata.deletionTimestamp) continue;
        if (refs.every(ref => !uids.has(ref.uid)))
          this.deleteObject({ resource: r, kind: o.kind }, o, {});
      }
    }
  }

  claimInUse(claim) {
    return this.store.list('pods').some(p => (p.spec.volumes || []).some(v => v.persistentVolumeClaim && v.persistentVolumeClaim.claimName === claim))
      || (this.kubelet && this.kubelet.claimInUse(claim));
  }

  finalizePVCs() {
    for (const pvc of this.store.list('persistentvolumeclaims')) {
      const n = pvc.metadata.name;
      if (!pvc.metadata.deletionTimestamp || this.pvcBusy.has(n)) continue;
      if (!(pvc.metadata.finalizers || []).includes('kubernetes.io/pvc-protection')) continue;
      if (this.claimInUse(n)) continue;
      if (!this.kubelet) { this.dropFinalizer('persistentvolumeclaims', n, 'kubernetes.io/pvc-protection'); continue; }
      this.pvcBusy.add(n);
      this.kubelet.removeVolume(n).then(ok => {
        this.pvcBusy.delete(n);
        if (ok) this.dropFinalizer('persistentvolumeclaims', n, 'kubernetes.io/pvc-protection');
      });
    }
  }

  podResized(pod) { if (this.kubelet) this.kubelet.resize(pod); }
}

module.exports = { Controller, isRunningAndReady };
