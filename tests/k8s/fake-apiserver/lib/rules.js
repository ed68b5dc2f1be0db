'use strict';
// Semantic validation, as kube-apiserver's ValidateX / ValidateXUpdate do it
// (pkg/apis/*/validation), for the fields the fake serves.  Each function
// returns a list of field errors (lib/errors.js F); the server answers 422.

const { F } = require('./errors');
const quantity = require('./quantity');
const sel = require('./selector');

const RE_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const RE_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const RE_1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const RE_QNAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const RE_LVALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const RE_ENV = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const RE_CFGKEY = /^[-._a-zA-Z0-9]+$/;

const MSG = {
  label: "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
  subdomain: "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
  dns1035: "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
  qname: "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
  lvalue: "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
  env: "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')",
  cfgkey: "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
};

function dnsLabel(errs, field, v) {
  if (v.length > 63) errs.push(F.invalid(field, v, 'must be no more than 63 characters'));
  if (!RE_LABEL.test(v)) errs.push(F.invalid(field, v, MSG.label));
}
function dnsSubdomain(errs, field, v) {
  if (v.length > 253) errs.push(F.invalid(field, v, 'must be no more than 253 characters'));
  if (!RE_SUBDOMAIN.test(v)) errs.push(F.invalid(field, v, MSG.subdomain));
}
function dns1035(errs, field, v) {
  if (v.length > 63) errs.push(F.invalid(field, v, 'must be no more than 63 characters'));
  if (!RE_1035.test(v)) errs.push(F.invalid(field, v, MSG.dns1035));
}
function qualifiedName(errs, field, v) {
  const parts = v.split('/');
  let name = v;
  if (parts.length === 2) {
    if (!parts[0]) errs.push(F.invalid(field, v, 'prefix part must be non-empty'));
    else if (parts[0].length > 253 || !RE_SUBDOMAIN.test(parts[0])) errs.push(F.invalid(field, v, 'prefix part ' + MSG.subdomain));
    name = parts[1];
  } else if (parts.length > 2) {
    errs.push(F.invalid(field, v, "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character with an optional DNS subdomain prefix and '/'"));
    return;
  }
  if (!name) errs.push(F.invalid(field, v, 'name part must be non-empty'));
  else if (name.length > 63) errs.push(F.invalid(field, v, 'name part must be no more than 63 characters'));
  else if (!RE_QNAME.test(name)) errs.push(F.invalid(field, v, MSG.qname));
}
function ianaSvcName(errs, field, v) {
  if (v.length > 15) errs.push(F.invalid(field, v, 'must be no more than 15 characters'));
  if (!/^[-a-z0-9]+$/.test(v)) errs.push(F.invalid(field, v, "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"));
  if (/--/.test(v)) errs.push(F.invalid(field, v, 'must not contain consecutive hyphens'));
  if (!/[a-z]/.test(v)) errs.push(F.invalid(field, v, 'must contain at least one letter (a-z)'));
  if (/^-|-$/.test(v)) errs.push(F.invalid(field, v, 'must not begin or end with a hyphen'));
}

function labels(errs, field, m) {
  for (const [k, v] of Object.entries(m || {})) {
    qualifiedName(errs, field, k);
    if (v.length > 63) errs.push(F.invalid(`${field}`, v, 'must be no more than 63 characters'));
    else if (!RE_LVALUE.test(v)) errs.push(F.invalid(`${field}`, v, MSG.lvalue));
  }
}

function annotations(errs, field, m) {
  let size = 0;
  for (const [k, v] of Object.entries(m || {})) { qualifiedName(errs, field, k.toLowerCase()); size += k.length + v.length; }
  if (size > 262144) errs.push(F.tooLong(field, 262144));
}

// nameRule: 'subdomain' | 'label' | 'dns1035'
function objectMeta(errs, meta, nameRule, field = 'metadata') {
  meta = meta || {};
  if (!meta.name && !meta.generateName) errs.push(F.required(`${field}.name`, 'name or generateName is required'));
  if (meta.name) {
    if (nameRule === 'label') dnsLabel(errs, `${field}.name`, meta.name);
    else if (nameRule === 'dns1035') dns1035(errs, `${field}.name`, meta.name);
    else dnsSubdomain(errs, `${field}.name`, meta.name);
  }
  labels(errs, `${field}.labels`, meta.labels);
  annotations(errs, `${field}.annotations`, meta.annotations);
  for (const [i, f] of (meta.finalizers || []).entries()) qualifiedName(errs, `${field}.finalizers[${i}]`, f);
  for (const [i, r] of (meta.ownerReferences || []).entries()) {
    if (!r.uid) errs.push(F.invalid(`${field}.ownerReferences[${i}].uid`, '', 'uid must not be empty'));
  }
}

function labelSelector(errs, field, s) {
  if (!s) return;
  labels(errs, `${field}.matchLabels`, s.matchLabels);
  for (const [i, e] of (s.matchExpressions || []).entries()) {
    const f = `${field}.matchExpressions[${i}]`;
    qualifiedName(errs, `${f}.key`, e.key || '');
    const ops = ['In', 'NotIn', 'Exists', 'DoesNotExist'];
    if (!ops.includes(e.operator)) { errs.push(F.notSupported(`${f}.operator`, e.operator, ops)); continue; }
    const n = (e.values || []).length;
    if ((e.operator === 'In' || e.operator === 'NotIn') && n === 0) errs.push(F.required(`${f}.values`, 'must be specified when `operator` is \'In\' or \'NotIn\''));
    if ((e.operator === 'Exists' || e.operator === 'DoesNotExist') && n > 0) errs.push(F.forbidden(`${f}.values`, 'may not be specified when `operator` is \'Exists\' or \'DoesNotExist\''));
  }
}

function nonNeg(errs, field, v) {
  if (typeof v === 'number' && v < 0) errs.push(F.invalid(field, v, 'must be greater than or equal to 0'));
}
function positive(errs, field, v) {
  if (typeof v === 'number' && v < 1) errs.push(F.invalid(field, v, 'must be greater than or equal to 1'));
}
function portNum(errs, field, v) {
  if (typeof v === 'number' && (v < 1 || v > 65535)) errs.push(F.invalid(field, v, 'must be between 1 and 65535, inclusive'));
}
function portNumOrName(errs, field, v) {
  if (typeof v === 'number') portNum(errs, field, v);
  else if (typeof v === 'string') ianaSvcName(errs, field, v);
}

const STD_RESOURCES = ['cpu', 'memory', 'ephemeral-storage'];
function resourceName(errs, field, k) {
  if (STD_RESOURCES.includes(k) || k.startsWith('hugepages-')) return;
  if (!k.includes('/')) { errs.push(F.invalid(field, k, 'must be a standard resource type or fully qualified')); return; }
  qualifiedName(errs, field, k);
}

function resources(errs, field, r) {
  if (!r) return;
  for (const kind of ['limits', 'requests']) {
    for (const [k, v] of Object.entries(r[kind] || {})) {
      const f = `${field}.${kind}[${k}]`;
      resourceName(errs, f, k);
      const q = quantity.parse(v);
      if (q && q.nano < 0n) errs.push(F.invalid(f, v, 'must be greater than or equal to 0'));
      if (q && k === 'cpu' && q.nano % 1000000n !== 0n) errs.push(F.invalid(f, v, 'must be a whole number of millicpu (fake-apiserver: finer cpu precision is rounded by Kubernetes, refused here)'));
    }
  }
  for (const [k, v] of Object.entries(r.requests || {})) {
    const lim = (r.limits || {})[k];
    if (lim !== undefined && quantity.cmp(v, lim) > 0)
      errs.push(F.invalid(`${field}.requests`, v, `must be less than or equal to ${k} limit of ${lim}`));
  }
}

function probe(errs, field, p, kind, ports) {
  if (!p) return;
  const handlers = ['exec', 'httpGet', 'tcpSocket', 'grpc'].filter(h => p[h]);
  if (handlers.length === 0) errs.push(F.required(field, 'must specify a handler type'));
  if (handlers.length > 1) errs.push(F.forbidden(`${field}.${handlers[1]}`, 'may not specify more than 1 handler type'));
  nonNeg(errs, `${field}.initialDelaySeconds`, p.initialDelaySeconds);
  for (const k of ['timeoutSeconds', 'periodSeconds', 'successThreshold', 'failureThreshold']) positive(errs, `${field}.${k}`, p[k]);
  if (kind !== 'readiness' && p.successThreshold !== undefined && p.successThreshold !== 1)
    errs.push(F.invalid(`${field}.successThreshold`, p.successThreshold, 'must be 1'));
  if (kind === 'readiness' && p.terminationGracePeriodSeconds !== undefined)
    errs.push(F.invalid(`${field}.terminationGracePeriodSeconds`, p.terminationGracePeriodSeconds, 'must not be set for readinessProbes'));
  if (p.exec && (!p.exec.command || !p.exec.command.length)) errs.push(F.required(`${field}.exec.command`));
  for (const h of ['tcpSocket', 'httpGet']) {
    if (!p[h]) continue;
    const port = p[h].port;
    if (port === undefined || port === '') { errs.push(F.required(`${field}.${h}.port`)); continue; }
    portNumOrName(errs, `${field}.${h}.port`, port);
    if (typeof port === 'string' && !ports.includes(port))
      errs.push(F.invalid(`${field}.${h}.port`, port, 'fake-apiserver: names no port of this container (the kubelet would fail the probe)'));
  }
  if (p.httpGet && p.httpGet.scheme && !['HTTP', 'HTTPS'].includes(p.httpGet.scheme))
    errs.push(F.notSupported(`${field}.httpGet.scheme`, p.httpGet.scheme, ['HTTP', 'HTTPS']));
}

function envVars(errs, field, env) {
  const names = new Set();
  for (const [i, e] of (env || []).entries()) {
    const f = `${field}[${i}]`;
    if (!e.name) errs.push(F.required(`${f}.name`));
    else if (!RE_ENV.test(e.name)) errs.push(F.invalid(`${f}.name`, e.name, MSG.env));
    names.add(e.name);
    if (e.valueFrom) {
      if (e.value) errs.push(F.invalid(`${f}.valueFrom`, '', 'may not be specified when `value` is not empty'));
      const srcs = ['fieldRef', 'resourceFieldRef', 'configMapKeyRef', 'secretKeyRef', 'fileKeyRef'].filter(s => e.valueFrom[s]);
      if (srcs.length !== 1) errs.push(F.invalid(`${f}.valueFrom`, '', srcs.length ? 'may not have more than one field specified at a time' : 'must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`'));
      for (const s of ['secretKeyRef', 'configMapKeyRef']) {
        const r = e.valueFrom[s];
        if (!r) continue;
        if (!r.name) errs.push(F.required(`${f}.valueFrom.${s}.name`));
        else dnsSubdomain(errs, `${f}.valueFrom.${s}.name`, r.name);
        if (!r.key) errs.push(F.required(`${f}.valueFrom.${s}.key`));
        else if (!RE_CFGKEY.test(r.key)) errs.push(F.invalid(`${f}.valueFrom.${s}.key`, r.key, MSG.cfgkey));
      }
      const fr = e.valueFrom.fieldRef;
      if (fr) {
        const ok = ['metadata.name', 'metadata.namespace', 'metadata.uid', 'spec.nodeName', 'spec.serviceAccountName', 'status.hostIP', 'status.hostIPs', 'status.podIP', 'status.podIPs'];
        if (!ok.includes(fr.fieldPath) && !/^metadata\.(labels|annotations)\['[^']+'\]$/.test(fr.fieldPath || ''))
          errs.push(F.notSupported(`${f}.valueFrom.fieldRef.fieldPath`, fr.fieldPath, ok));
      }
    }
  }
}

function containers(errs, field, list, volumeNames, podSpec) {
  const names = new Set();
  for (const [i, c] of (list || []).entries()) {
    const f = `${field}[${i}]`;
    if (!c.name) errs.push(F.required(`${f}.name`));
    else {
      dnsLabel(errs, `${f}.name`, c.name);
      if (names.has(c.name)) errs.push(F.duplicate(`${f}.name`, c.name));
      names.add(c.name);
    }
    if (!c.image) errs.push(F.required(`${f}.image`));
    else if (c.image.trim() !== c.image) errs.push(F.invalid(`${f}.image`, c.image, 'must not have leading or trailing whitespace'));
    const pullPolicies = ['Always', 'IfNotPresent', 'Never'];
    if (c.imagePullPolicy !== undefined && !pullPolicies.includes(c.imagePullPolicy)) errs.push(F.notSupported(`${f}.imagePullPolicy`, c.imagePullPolicy, pullPolicies));
    const portNames = [];
    const seenPort = new Set();
    for (const [j, p] of (c.ports || []).entries()) {
      const pf = `${f}.ports[${j}]`;
      if (p.containerPort === undefined) errs.push(F.required(`${pf}.containerPort`));
      portNum(errs, `${pf}.containerPort`, p.containerPort);
      if (p.hostPort !== undefined && p.hostPort !== 0) portNum(errs, `${pf}.hostPort`, p.hostPort);
      const protos = ['TCP', 'UDP', 'SCTP'];
      if (p.protocol !== undefined && !protos.includes(p.protocol)) errs.push(F.notSupported(`${pf}.protocol`, p.protocol, protos));
      if (p.name) {
        ianaSvcName(errs, `${pf}.name`, p.name);
        if (portNames.includes(p.name)) errs.push(F.duplicate(`${pf}.name`, p.name));
        portNames.push(p.name);
      }
      const key = `${p.containerPort}/${p.protocol || 'TCP'}`;
      if (seenPort.has(key)) errs.push(F.duplicate(pf, { containerPort: p.containerPort, protocol: p.protocol || 'TCP' }));
      seenPort.add(key);
    }
    envVars(errs, `${f}.env`, c.env);
    for (const [j, e] of (c.envFrom || []).entries()) {
      const ef = `${f}.envFrom[${j}]`;
      const n = ['secretRef', 'configMapRef'].filter(s => e[s]).length;
      if (n !== 1) errs.push(F.invalid(ef, '', 'must specify one of: `configMapRef` or `secretRef`'));
      if (e.prefix && !RE_ENV.test(e.prefix)) errs.push(F.invalid(`${ef}.prefix`, e.prefix, MSG.env));
    }
    const mounts = new Set();
    for (const [j, m] of (c.volumeMounts || []).entries()) {
      const mf = `${f}.volumeMounts[${j}]`;
      if (!m.name) errs.push(F.required(`${mf}.name`));
      else if (!volumeNames.has(m.name)) errs.push(F.notFound(`${mf}.name`, m.name));
      if (!m.mountPath) errs.push(F.required(`${mf}.mountPath`));
      else {
        if (mounts.has(m.mountPath)) errs.push(F.invalid(`${mf}.mountPath`, m.mountPath, 'must be unique'));
        mounts.add(m.mountPath);
      }
      if (m.subPath && (m.subPath.startsWith('/') || m.subPath.split('/').includes('..')))
        errs.push(F.invalid(`${mf}.subPath`, m.subPath, "must be a relative path without '..'"));
    }
    resources(errs, `${f}.resources`, c.resources);
    probe(errs, `${f}.readinessProbe`, c.readinessProbe, 'readiness', portNames);
    probe(errs, `${f}.livenessProbe`, c.livenessProbe, 'liveness', portNames);
    probe(errs, `${f}.startupProbe`, c.startupProbe, 'startup', portNames);
    for (const [j, rp] of (c.resizePolicy || []).entries()) {
      if (!['cpu', 'memory'].includes(rp.resourceName)) errs.push(F.notSupported(`${f}.resizePolicy[${j}].resourceName`, rp.resourceName, ['cpu', 'memory']));
      if (!['NotRequired', 'RestartContainer'].includes(rp.restartPolicy)) errs.push(F.notSupported(`${f}.resizePolicy[${j}].restartPolicy`, rp.restartPolicy, ['NotRequired', 'RestartContainer']));
    }
    const sc = c.securityContext;
    if (sc) {
      nonNeg(errs, `${f}.securityContext.runAsUser`, sc.runAsUser);
      nonNeg(errs, `${f}.securityContext.runAsGroup`, sc.runAsGroup);
      if (sc.privileged && sc.allowPrivilegeEscalation === false)
        errs.push(F.invalid(`${f}.securityContext`, sc, 'cannot set `allowPrivilegeEscalation` to false and `privileged` to true'));
    }
  }
  return names;
}

// extraVolumes: names that count as volumes (a StatefulSet's claim templates)
function podSpec(errs, field, s, { extraVolumes = [], template = false, restartPolicies } = {}) {
  if (!s) { errs.push(F.required(field)); return; }
  const volumeNames = new Set(extraVolumes);
  for (const [i, v] of (s.volumes || []).entries()) {
    const f = `${field}.volumes[${i}]`;
    if (!v.name) errs.push(F.required(`${f}.name`));
    else {
      dnsLabel(errs, `${f}.name`, v.name);
      if (volumeNames.has(v.name) && !extraVolumes.includes(v.name)) errs.push(F.duplicate(`${f}.name`, v.name));
      volumeNames.add(v.name);
    }
    const srcs = Object.keys(v).filter(k => k !== 'name');
    if (srcs.length === 0) errs.push(F.required(f, 'must specify a volume type'));
    if (srcs.length > 1) errs.push(F.forbidden(`${f}.${srcs[1]}`, 'may not specify more than 1 volume type'));
    if (v.persistentVolumeClaim && !v.persistentVolumeClaim.claimName) errs.push(F.required(`${f}.persistentVolumeClaim.claimName`));
    if (v.secret) {
      if (!v.secret.secretName) errs.push(F.required(`${f}.secret.secretName`));
      const dm = v.secret.defaultMode;
      if (dm !== undefined && (dm < 0 || dm > 0o777)) errs.push(F.invalid(`${f}.secret.defaultMode`, dm, 'must be a number between 0 and 0777 (octal), both inclusive'));
    }
  }
  if (!s.containers || !s.containers.length) errs.push(F.required(`${field}.containers`));
  const cnames = containers(errs, `${field}.containers`, s.containers, volumeNames, s);
  const inames = containers(errs, `${field}.initContainers`, s.initContainers, volumeNames, s);
  for (const n of inames) if (cnames.has(n)) errs.push(F.duplicate(`${field}.initContainers`, n));
  const rps = restartPolicies || ['Always', 'OnFailure', 'Never'];
  if (s.restartPolicy !== undefined && !rps.includes(s.restartPolicy)) errs.push(F.notSupported(`${field}.restartPolicy`, s.restartPolicy, rps));
  const dns = ['ClusterFirstWithHostNet', 'ClusterFirst', 'Default', 'None'];
  if (s.dnsPolicy !== undefined && !dns.includes(s.dnsPolicy)) errs.push(F.notSupported(`${field}.dnsPolicy`, s.dnsPolicy, dns));
  nonNeg(errs, `${field}.terminationGracePeriodSeconds`, s.terminationGracePeriodSeconds);
  if (s.activeDeadlineSeconds !== undefined) positive(errs, `${field}.activeDeadlineSeconds`, s.activeDeadlineSeconds);
  if (s.hostname) dnsLabel(errs, `${field}.hostname`, s.hostname);
  if (s.subdomain) dnsLabel(errs, `${field}.subdomain`, s.subdomain);
  if (s.serviceAccountName) dnsSubdomain(errs, `${field}.serviceAccountName`, s.serviceAccountName);
  labels(errs, `${field}.nodeSelector`, s.nodeSelector);
  const sc = s.securityContext || {};
  for (const k of ['runAsUser', 'runAsGroup', 'fsGroup']) nonNeg(errs, `${field}.securityContext.${k}`, sc[k]);
  if (sc.fsGroupChangePolicy !== undefined && !['OnRootMismatch', 'Always'].includes(sc.fsGroupChangePolicy))
    errs.push(F.notSupported(`${field}.securityContext.fsGroupChangePolicy`, sc.fsGroupChangePolicy, ['OnRootMismatch', 'Always']));
  for (const [i, g] of (sc.supplementalGroups || []).entries()) nonNeg(errs, `${field}.securityContext.supplementalGroups[${i}]`, g);
}

function pvcSpec(errs, field, s) {
  if (!s) { errs.push(F.required(field)); return; }
  const modes = ['ReadWriteOnce', 'ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOncePod'];
  if (!s.accessModes || !s.accessModes.length) errs.push(F.required(`${field}.accessModes`, 'at least 1 access mode is required'));
  for (const [i, m] of (s.accessModes || []).entries()) if (!modes.includes(m)) errs.push(F.notSupported(`${field}.accessModes[${i}]`, m, modes));
  if ((s.accessModes || []).includes('ReadWriteOncePod') && s.accessModes.length > 1)
    errs.push(F.forbidden(`${field}.accessModes`, 'may not use ReadWriteOncePod with other access modes'));
  const st = s.resources && s.resources.requests && s.resources.requests.storage;
  if (st === undefined) errs.push(F.required(`${field}.resources[storage]`));
  else {
    const q = quantity.parse(st);
    if (q && q.nano <= 0n) errs.push(F.invalid(`${field}.resources[storage]`, st, 'must be greater than zero'));
  }
  const vm = ['Block', 'Filesystem'];
  if (s.volumeMode !== undefined && !vm.includes(s.volumeMode)) errs.push(F.notSupported(`${field}.volumeMode`, s.volumeMode, vm));
  if (s.storageClassName) dnsSubdomain(errs, `${field}.storageClassName`, s.storageClassName);
  labelSelector(errs, `${field}.selector`, s.selector);
}

// ---------------------------------------------------------------- kinds

function statefulSet(o) {
  const errs = [];
  objectMeta(errs, o.metadata, 'subdomain');
  const s = o.spec;
  if (!s) { errs.push(F.required('spec')); return errs; }
  nonNeg(errs, 'spec.replicas', s.replicas);
  nonNeg(errs, 'spec.minReadySeconds', s.minReadySeconds);
  nonNeg(errs, 'spec.revisionHistoryLimit', s.revisionHistoryLimit);
  if (s.ordinals) nonNeg(errs, 'spec.ordinals.start', s.ordinals.start);
  const pmp = ['OrderedReady', 'Parallel'];
  if (!pmp.includes(s.podManagementPolicy)) errs.push(F.notSupported('spec.podManagementPolicy', s.podManagementPolicy, pmp));
  const us = s.updateStrategy || {};
  if (!['RollingUpdate', 'OnDelete'].includes(us.type)) errs.push(F.notSupported('spec.updateStrategy.type', us.type, ['OnDelete', 'RollingUpdate']));
  if (us.type === 'OnDelete' && us.rollingUpdate) errs.push(F.invalid('spec.updateStrategy.rollingUpdate', us.rollingUpdate, "only allowed for updateStrategy 'RollingUpdate'"));
  if (us.rollingUpdate) nonNeg(errs, 'spec.updateStrategy.rollingUpdate.partition', us.rollingUpdate.partition);
  const rp = s.persistentVolumeClaimRetentionPolicy || {};
  for (const k of ['whenDeleted', 'whenScaled'])
    if (!['Retain', 'Delete'].includes(rp[k])) errs.push(F.notSupported(`spec.persistentVolumeClaimRetentionPolicy.${k}`, rp[k], ['Retain', 'Delete']));
  if (s.serviceName) dnsLabel(errs, 'spec.serviceName', s.serviceName);
  if (!s.selector) errs.push(F.required('spec.selector'));
  else {
    labelSelector(errs, 'spec.selector', s.selector);
    const empty = !Object.keys(s.selector.matchLabels || {}).length && !(s.selector.matchExpressions || []).length;
    if (empty) errs.push(F.invalid('spec.selector', s.selector, 'empty selector is invalid for statefulset'));
    else {
      const tl = (s.template && s.template.metadata && s.template.metadata.labels) || {};
      if (!sel.matches(sel.fromLabelSelector(s.selector), tl))
        errs.push(F.invalid('spec.template.metadata.labels', tl, '`selector` does not match template `labels`'));
    }
  }
  const claimNames = [];
  for (const [i, t] of (s.volumeClaimTemplates || []).entries()) {
    const f = `spec.volumeClaimTemplates[${i}]`;
    const n = t.metadata && t.metadata.name;
    if (!n) errs.push(F.required(`${f}.metadata.name`));
    else { dnsSubdomain(errs, `${f}.metadata.name`, n); claimNames.push(n); }
    labels(errs, `${f}.metadata.labels`, t.metadata && t.metadata.labels);
    pvcSpec(errs, `${f}.spec`, t.spec);
  }
  if (!s.template) errs.push(F.required('spec.template'));
  else {
    labels(errs, 'spec.template.metadata.labels', s.template.metadata && s.template.metadata.labels);
    annotations(errs, 'spec.template.metadata.annotations', s.template.metadata && s.template.metadata.annotations);
    podSpec(errs, 'spec.template.spec', s.template.spec, { extraVolumes: claimNames, template: true, restartPolicies: ['Always'] });
    if (s.template.spec && s.template.spec.activeDeadlineSeconds !== undefined)
      errs.push(F.forbidden('spec.template.spec.activeDeadlineSeconds', 'activeDeadlineSeconds in StatefulSet is not Supported'));
  }
  return errs;
}

const canon = v => JSON.stringify(v, (k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort()) : x));

function statefulSetUpdate(o, old) {
  const errs = statefulSet(o);
  const strip = s => { const c = JSON.parse(JSON.stringify(s)); for (const k of ['replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy', 'minReadySeconds']) delete c[k]; for (const t of c.volumeClaimTemplates || []) delete t.status; return c; };
  if (canon(strip(o.spec)) !== canon(strip(old.spec)))
    errs.push(F.forbidden('spec', "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"));
  return errs;
}

function isIPv4(s) { return /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(s) && s.split('.').every(x => +x <= 255 && String(+x) === x); }
function isCIDR(s) {
  const m = /^(.*)\/(\d{1,3})$/.exec(s || '');
  if (!m) return false;
  if (isIPv4(m[1])) return +m[2] <= 32;
  return /^[0-9a-fA-F:]+$/.test(m[1]) && m[1].includes(':') && +m[2] <= 128;
}

function service(o) {
  const errs = [];
  objectMeta(errs, o.metadata, 'dns1035');
  const s = o.spec;
  const types = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];
  if (!types.includes(s.type)) errs.push(F.notSupported('spec.type', s.type, types));
  const headless = s.clusterIP === 'None';
  if (s.type === 'ExternalName') {
    if (!s.externalName) errs.push(F.required('spec.externalName'));
    else dnsSubdomain(errs, 'spec.externalName', s.externalName);
    if (s.clusterIP) errs.push(F.forbidden('spec.clusterIP', 'may not be set for ExternalName services'));
  } else if (!headless && !(s.ports || []).length) errs.push(F.required('spec.ports'));
  if (s.clusterIP && !headless && !isIPv4(s.clusterIP)) errs.push(F.invalid('spec.clusterIP', s.clusterIP, 'must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'));
  if (headless && s.type !== 'ClusterIP') errs.push(F.invalid('spec.clusterIPs[0]', 'None', 'may only be set to "None" for ClusterIP services'));
  const multi = (s.ports || []).length > 1;
  const names = new Set(), keys = new Set();
  for (const [i, p] of (s.ports || []).entries()) {
    const f = `spec.ports[${i}]`;
    if (multi && !p.name) errs.push(F.required(`${f}.name`));
    if (p.name) {
      dnsLabel(errs, `${f}.name`, p.name);
      if (names.has(p.name)) errs.push(F.duplicate(`${f}.name`, p.name));
      names.add(p.name);
    }
    if (p.port === undefined) errs.push(F.required(`${f}.port`));
    portNum(errs, `${f}.port`, p.port);
    const protos = ['TCP', 'UDP', 'SCTP'];
    if (!protos.includes(p.protocol)) errs.push(F.notSupported(`${f}.protocol`, p.protocol, protos));
    portNumOrName(errs, `${f}.targetPort`, p.targetPort);
    if (p.nodePort !== undefined && p.nodePort !== 0) {
      if (s.type !== 'NodePort' && s.type !== 'LoadBalancer') errs.push(F.forbidden(`${f}.nodePort`, 'may not be used when `type` is \'ClusterIP\''));
      else if (p.nodePort < 30000 || p.nodePort > 32767) errs.push(F.invalid(`${f}.nodePort`, p.nodePort, 'provided port is not in the valid range. The range of valid ports is 30000-32767'));
    }
    const k = `${p.port}/${p.protocol}`;
    if (keys.has(k)) errs.push(F.duplicate(f, { port: p.port, protocol: p.protocol }));
    keys.add(k);
  }
  labels(errs, 'spec.selector', s.selector);
  if (!['ClientIP', 'None'].includes(s.sessionAffinity)) errs.push(F.notSupported('spec.sessionAffinity', s.sessionAffinity, ['ClientIP', 'None']));
  return errs;
}

function serviceUpdate(o, old) {
  const errs = service(o);
  if (old.spec.clusterIP && o.spec.clusterIP !== old.spec.clusterIP && old.spec.type !== 'ExternalName' && o.spec.type !== 'ExternalName')
    errs.push(F.immutable('spec.clusterIPs[0]', o.spec.clusterIP));
  return errs;
}

const SECRET_KEYS = {
  'kubernetes.io/tls': ['tls.crt', 'tls.key'],
  'kubernetes.io/ssh-auth': ['ssh-privatekey'],
  'kubernetes.io/dockerconfigjson': ['.dockerconfigjson'],
  'kubernetes.io/dockercfg': ['.dockercfg'],
};

function secret(o) {
  const errs = [];
  objectMeta(errs, o.metadata, 'subdomain');
  let size = 0;
  for (const [k, v] of Object.entries(o.data || {})) {
    if (!RE_CFGKEY.test(k) || k.length > 253) errs.push(F.invalid(`data[${k}]`, k, MSG.cfgkey));
    size += Buffer.from(v, 'base64').length;
  }
  if (size > 1048576) errs.push(F.tooLong('data', 1048576));
  for (const k of SECRET_KEYS[o.type] || []) if (!(o.data || {})[k]) errs.push(F.required(`data[${k}]`));
  if (o.type === 'kubernetes.io/service-account-token' && !((o.metadata.annotations || {})['kubernetes.io/service-account.name']))
    errs.push(F.required('metadata.annotations[kubernetes.io/service-account.name]'));
  if (!o.type) errs.push(F.required('type'));
  return errs;
}

function secretUpdate(o, old) {
  const errs = secret(o);
  if (o.type !== old.type) errs.push(F.immutable('type', o.type));
  if (old.immutable) {
    if (!o.immutable) errs.push(F.forbidden('immutable', 'field is immutable when `immutable` is set'));
    if (canon(o.data || {}) !== canon(old.data || {})) errs.push(F.forbidden('data', 'field is immutable when `immutable` is set'));
  }
  return errs;
}

function netpolPorts(errs, field, ports) {
  for (const [i, p] of (ports || []).entries()) {
    const f = `${field}[${i}]`;
    const protos = ['TCP', 'UDP', 'SCTP'];
    if (!protos.includes(p.protocol)) errs.push(F.notSupported(`${f}.protocol`, p.protocol, protos));
    if (p.port !== undefined) portNumOrName(errs, `${f}.port`, p.port);
    if (p.endPort !== undefined) {
      if (typeof p.port !== 'number') errs.push(F.required(`${f}.port`, 'must specify a numerical port when endPort is set'));
      else if (p.endPort < p.port) errs.push(F.invalid(`${f}.endPort`, p.endPort, 'must be greater than or equal to `port`'));
    }
  }
}
function netpolPeers(errs, field, peers) {
  for (const [i, p] of (peers || []).entries()) {
    const f = `${field}[${i}]`;
    const n = ['podSelector', 'namespaceSelector', 'ipBlock'].filter(k => p[k]).length;
    if (n === 0) errs.push(F.required(f, 'must specify a peer'));
    if (p.ipBlock && n > 1) errs.push(F.forbidden(f, 'may not specify both ipBlock and another peer'));
    labelSelector(errs, `${f}.podSelector`, p.podSelector);
    labelSelector(errs, `${f}.namespaceSelector`, p.namespaceSelector);
    if (p.ipBlock) {
      if (!p.ipBlock.cidr) errs.push(F.required(`${f}.ipBlock.cidr`));
      else if (!isCIDR(p.ipBlock.cidr)) errs.push(F.invalid(`${f}.ipBlock.cidr`, p.ipBlock.cidr, 'must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)'));
      for (const [j, e] of (p.ipBlock.except || []).entries())
        if (!isCIDR(e)) errs.push(F.invalid(`${f}.ipBlock.except[${j}]`, e, 'must be a valid CIDR value'));
    }
  }
}

function networkPolicy(o) {
  const errs = [];
  objectMeta(errs, o.metadata, 'subdomain');
  const s = o.spec;
  labelSelector(errs, 'spec.podSelector', s.podSelector);
  for (const [i, r] of (s.ingress || []).entries()) { netpolPorts(errs, `spec.ingress[${i}].ports`, r.ports); netpolPeers(errs, `spec.ingress[${i}].from`, r.from); }
  for (const [i, r] of (s.egress || []).entries()) { netpolPorts(errs, `spec.egress[${i}].ports`, r.ports); netpolPeers(errs, `spec.egress[${i}].to`, r.to); }
  if ((s.policyTypes || []).length > 2) errs.push(F.invalid('spec.policyTypes', s.policyTypes, 'may not specify more than two policyTypes'));
  for (const [i, t] of (s.policyTypes || []).entries()) if (!['Ingress', 'Egress'].includes(t)) errs.push(F.notSupported(`spec.policyTypes[${i}]`, t, ['Ingress', 'Egress']));
  return errs;
}

function scale(o) {
  const errs = [];
  if (!o.metadata || !o.metadata.name) errs.push(F.required('metadata.name'));
  nonNeg(errs, 'spec.replicas', (o.spec || {}).replicas);
  return errs;
}

function deleteOptions(o) {
  const errs = [];
  const pp = ['Orphan', 'Background', 'Foreground'];
  if (o.propagationPolicy !== undefined && !pp.includes(o.propagationPolicy)) errs.push(F.notSupported('propagationPolicy', o.propagationPolicy, pp));
  if (o.propagationPolicy !== undefined && o.orphanDependents !== undefined) errs.push(F.invalid('propagationPolicy', o.propagationPolicy, 'orphanDependents and deletionPropagation cannot be both set'));
  for (const [i, d] of (o.dryRun || []).entries()) if (d !== 'All') errs.push(F.notSupported(`dryRun[${i}]`, d, ['All']));
  return errs;
}

// Guaranteed, Burstable or BestEffort, from the pod's containers
function qosClass(spec) {
  let anyReq = false, guaranteed = true;
  for (const c of (spec.containers || []).concat(spec.initContainers || [])) {
    const r = c.resources || {}, l = r.limits || {}, q = r.requests || {};
    for (const k of ['cpu', 'memory']) {
      if (l[k] !== undefined || q[k] !== undefined) anyReq = true;
      if (l[k] === undefined || (q[k] !== undefined && quantity.cmp(q[k], l[k]) !== 0)) guaranteed = false;
    }
  }
  if (!anyReq) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

// PATCH pods/{name}/resize: only cpu and memory of the containers may change
function podResize(newPod, oldPod) {
  const errs = [];
  const strip = p => {
    const c = JSON.parse(JSON.stringify(p.spec));
    for (const x of c.containers || []) delete x.resources;
    return c;
  };
  if (canon(strip(newPod)) !== canon(strip(oldPod)))
    errs.push(F.forbidden('spec', 'only cpu and memory resources are mutable'));
  const oldC = new Map((oldPod.spec.containers || []).map(c => [c.name, c]));
  for (const [i, c] of (newPod.spec.containers || []).entries()) {
    const r = c.resources || {};
    const or = (oldC.get(c.name) || {}).resources || {};
    for (const kind of ['limits', 'requests']) {
      const keys = new Set([...Object.keys(r[kind] || {}), ...Object.keys(or[kind] || {})]);
      for (const k of keys) {
        if (k === 'cpu' || k === 'memory') continue;
        if ((r[kind] || {})[k] !== (or[kind] || {})[k])
          errs.push(F.forbidden(`spec.containers[${i}].resources.${kind}[${k}]`, 'only cpu and memory resources are mutable'));
      }
      for (const k of ['cpu', 'memory']) {
        const had = (or[kind] || {})[k] !== undefined, has = (r[kind] || {})[k] !== undefined;
        if (had && !has) errs.push(F.forbidden(`spec.containers[${i}].resources.${kind}[${k}]`, 'resource ' + k + ' ' + kind + ' cannot be removed'));
        if (!had && has && kind === 'limits') errs.push(F.forbidden(`spec.containers[${i}].resources.limits[${k}]`, 'resource ' + k + ' limit cannot be added'));
      }
    }
    resources(errs, `spec.containers[${i}].resources`, r);
  }
  const before = qosClass(oldPod.spec), after = qosClass(newPod.spec);
  if (before !== after) errs.push(F.invalid('spec', after, 'Pod QOS Class may not change as a result of resizing'));
  return errs;
}

module.exports = { statefulSet, statefulSetUpdate, service, serviceUpdate, secret, secretUpdate, networkPolicy, scale, deleteOptions, podResize, qosClass, objectMeta, dnsLabel, canon };
