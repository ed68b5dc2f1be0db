'use strict';
// What kube-apiserver's defaulting adds to the objects it stores (the
// SetDefaults_* functions of the API groups, for the fields of the kinds the
// fake serves), and the canonical form of quantities.

const quantity = require('./quantity');

const setIf = (o, k, v) => { if (o[k] === undefined || o[k] === null) o[k] = v; };

function canonQ(m) {
  if (!m || typeof m !== 'object') return;
  for (const k of Object.keys(m)) { const c = quantity.canonicalize(m[k]); if (c !== null) m[k] = c; }
}

function probe(p) {
  if (!p) return;
  setIf(p, 'timeoutSeconds', 1);
  setIf(p, 'periodSeconds', 10);
  setIf(p, 'successThreshold', 1);
  setIf(p, 'failureThreshold', 3);
  if (p.httpGet) { setIf(p.httpGet, 'path', '/'); setIf(p.httpGet, 'scheme', 'HTTP'); }
  if (p.grpc) setIf(p.grpc, 'service', '');
}

function container(c) {
  setIf(c, 'terminationMessagePath', '/dev/termination-log');
  setIf(c, 'terminationMessagePolicy', 'File');
  if (c.image !== undefined && c.imagePullPolicy === undefined) {
    const img = String(c.image);
    const tagless = !/:[^/]+$/.test(img.split('@')[0]) && !img.includes('@');
    c.imagePullPolicy = (tagless || /:latest$/.test(img)) ? 'Always' : 'IfNotPresent';
  }
  for (const p of c.ports || []) setIf(p, 'protocol', 'TCP');
  for (const e of c.env || []) {
    const f = e.valueFrom && e.valueFrom.fieldRef;
    if (f) setIf(f, 'apiVersion', 'v1');
  }
  c.resources = c.resources || {};
  canonQ(c.resources.limits);
  canonQ(c.resources.requests);
  probe(c.readinessProbe); probe(c.livenessProbe); probe(c.startupProbe);
}

function podSpec(s) {
  setIf(s, 'restartPolicy', 'Always');
  setIf(s, 'terminationGracePeriodSeconds', 30);
  setIf(s, 'dnsPolicy', 'ClusterFirst');
  setIf(s, 'securityContext', {});
  setIf(s, 'schedulerName', 'default-scheduler');
  for (const c of s.containers || []) container(c);
  for (const c of s.initContainers || []) container(c);
  for (const v of s.volumes || []) {
    if (v.secret) setIf(v.secret, 'defaultMode', 420);
    if (v.configMap) setIf(v.configMap, 'defaultMode', 420);
    if (v.emptyDir && v.emptyDir.sizeLimit !== undefined) v.emptyDir.sizeLimit = quantity.canonicalize(v.emptyDir.sizeLimit) || v.emptyDir.sizeLimit;
  }
  canonQ(s.overhead);
}

// a pod (not a template) also gets requests from its limits
function podOnly(s) {
  for (const c of (s.containers || []).concat(s.initContainers || [])) {
    const r = c.resources || (c.resources = {});
    if (r.limits) {
      r.requests = r.requests || {};
      for (const [k, v] of Object.entries(r.limits)) setIf(r.requests, k, v);
    }
  }
  setIf(s, 'serviceAccountName', 'default');
  setIf(s, 'serviceAccount', s.serviceAccountName);
  setIf(s, 'enableServiceLinks', true);
  setIf(s, 'priority', 0);
  setIf(s, 'preemptionPolicy', 'PreemptLowerPriority');
  setIf(s, 'tolerations', [
    { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
    { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
  ]);
}

function pvcSpec(s) {
  setIf(s, 'volumeMode', 'Filesystem');
  if (s.resources) { canonQ(s.resources.requests); canonQ(s.resources.limits); }
}

function statefulSet(o) {
  const s = o.spec;
  setIf(s, 'replicas', 1);
  setIf(s, 'podManagementPolicy', 'OrderedReady');
  setIf(s, 'updateStrategy', { type: 'RollingUpdate' });
  setIf(s.updateStrategy, 'type', 'RollingUpdate');
  if (s.updateStrategy.type === 'RollingUpdate') {
    setIf(s.updateStrategy, 'rollingUpdate', {});
    setIf(s.updateStrategy.rollingUpdate, 'partition', 0);
  }
  setIf(s, 'revisionHistoryLimit', 10);
  setIf(s, 'persistentVolumeClaimRetentionPolicy', {});
  setIf(s.persistentVolumeClaimRetentionPolicy, 'whenDeleted', 'Retain');
  setIf(s.persistentVolumeClaimRetentionPolicy, 'whenScaled', 'Retain');
  if (s.template) {
    s.template.metadata = s.template.metadata || {};
    if (s.template.spec) podSpec(s.template.spec);
  }
  for (const t of s.volumeClaimTemplates || []) {
    setIf(t, 'apiVersion', 'v1');
    setIf(t, 'kind', 'PersistentVolumeClaim');
    t.metadata = t.metadata || {};
    t.spec = t.spec || {};
    pvcSpec(t.spec);
    setIf(t, 'status', { phase: 'Pending' });
  }
}

function service(o) {
  const s = o.spec = o.spec || {};
  setIf(s, 'type', 'ClusterIP');
  setIf(s, 'sessionAffinity', 'None');
  if (s.type !== 'ExternalName') {
    setIf(s, 'internalTrafficPolicy', 'Cluster');
    setIf(s, 'ipFamilyPolicy', 'SingleStack');
    setIf(s, 'ipFamilies', ['IPv4']);
  }
  if (s.type === 'NodePort' || s.type === 'LoadBalancer') setIf(s, 'externalTrafficPolicy', 'Cluster');
  for (const p of s.ports || []) {
    setIf(p, 'protocol', 'TCP');
    setIf(p, 'targetPort', p.port);
  }
}

function networkPolicy(o) {
  const s = o.spec;
  for (const r of (s.ingress || [])) for (const p of r.ports || []) setIf(p, 'protocol', 'TCP');
  for (const r of (s.egress || [])) for (const p of r.ports || []) setIf(p, 'protocol', 'TCP');
  if (!s.policyTypes || !s.policyTypes.length) s.policyTypes = s.egress ? ['Ingress', 'Egress'] : ['Ingress'];
}

function secret(o) {
  setIf(o, 'type', 'Opaque');
  if (o.stringData) {
    o.data = o.data || {};
    for (const [k, v] of Object.entries(o.stringData)) o.data[k] = Buffer.from(String(v), 'utf8').toString('base64');
    delete o.stringData;
  }
}

module.exports = { statefulSet, service, networkPolicy, secret, podSpec, podOnly, pvcSpec, container, canonQ };
