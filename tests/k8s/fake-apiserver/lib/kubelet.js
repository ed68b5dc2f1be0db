'use strict';
// The fake's "kubelet": realizes the pods scheduled to its node as podman
// containers (podman CLI; CONTAINERS_CONF from --containers-conf, the
// environment, or the repository's tests/containers/containers.conf).
//
//   container  <prefix>-<ns>-<pod>   the pod's first container
//   volume     <prefix>-<ns>-<pvc>   each PersistentVolumeClaim (no copy-up
//                                    of the image's files: a new PV is empty;
//                                    fsGroup is applied as the kubelet does)
//
// Everything carries the label smdb.prefix=<prefix>.  Container restarts
// (restartPolicy Always) re-create the container with the pod's IP, as a
// kubelet starts a new container in the same sandbox.

const fs = require('fs');
const path = require('path');
const net = require('net');
const http = require('http');
const https = require('https');
const { execFile } = require('child_process');
const quantity = require('./quantity');
const { now } = require('./resources');

class ConfigError extends Error {
  constructor(reason, message) { super(message); this.reason = reason; }
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

class Kubelet {
  constructor(store, opts) {
    this.store = store;
    this.ns = opts.namespace;
    this.prefix = opts.podmanPrefix;
    this.network = opts.podmanNetwork;
    this.pollMs = opts.pollMs || 300;
    this.podmanBin = opts.podmanBin || 'podman';
    this.nodeName = 'fake-node';
    this.stateDir = opts.stateDir || fs.mkdtempSync('/tmp/fake-apiserver-');
    const conf = opts.containersConf || process.env.CONTAINERS_CONF || path.join(__dirname, '..', '..', '..', 'containers', 'containers.conf');
    this.env = { ...process.env, CONTAINERS_CONF: conf };
    this.states = new Map();   // pod uid -> state
    this.queues = new Map();   // pod name -> promise chain
    this.polling = false;
  }

  start() {
    this.store.listeners.push((resource, type, obj) => { if (resource === 'pods') this.onPod(type, obj); });
    this.timer = setInterval(() => this.poll(), this.pollMs);
  }
  stop() {
    clearInterval(this.timer);
    for (const s of this.states.values()) this.stopProbes(s);
  }

  log(msg) { process.stdout.write(`fake-apiserver: kubelet: ${msg}\n`); }

  podman(args, { timeout = 120000 } = {}) {
    return new Promise(resolve => {
      execFile(this.podmanBin, args, { env: this.env, timeout, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout: String(stdout), stderr: String(stderr) });
      });
    });
  }

  ctrName(pod) { return `${this.prefix}-${this.ns}-${pod}`; }
  volName(claim) { return `${this.prefix}-${this.ns}-${claim}`; }
  labels(extra) {
    const l = { 'smdb.prefix': this.prefix, 'fake-apiserver.namespace': this.ns, ...extra };
    return Object.entries(l).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
  }

  enqueue(name, fn) {
    const prev = this.queues.get(name) || Promise.resolve();
    const next = prev.then(fn).catch(e => this.log(`${name}: ${e.stack || e}`));
    this.queues.set(name, next);
    return next;
  }

  describe() {
    return [...this.states.values()].map(s => ({ pod: s.name, uid: s.uid, container: s.ctr, ip: s.ip, running: s.running, restartCount: s.c.restartCount, ready: s.c.ready }));
  }

  // ---------------------------------------------------------------- events
  onPod(type, pod) {
    const uid = pod.metadata.uid;
    if (type === 'DELETED') { this.forget(pod); return; }
    if (pod.spec.nodeName !== this.nodeName) return;
    let s = this.states.get(uid);
    if (!s) {
      s = this.newState(pod);
      this.states.set(uid, s);
      this.enqueue(s.name, () => this.startContainer(s));
    }
    if (pod.metadata.deletionTimestamp && !s.terminating) {
      s.terminating = true;
      this.stopProbes(s);
      this.enqueue(s.name, () => this.terminate(s, pod.metadata.deletionGracePeriodSeconds || 0));
    }
  }

  newState(pod) {
    const c = pod.spec.containers[0];
    return { name: pod.metadata.name, uid: pod.metadata.uid, ctr: this.ctrName(pod.metadata.name), gen: 0,
      running: false, everStarted: false, ip: null, hostIP: null, startTime: null, terminating: false, gone: false,
      timers: [], claims: (pod.spec.volumes || []).filter(v => v.persistentVolumeClaim).map(v => v.persistentVolumeClaim.claimName),
      hostDirs: [], probe: {}, lastStart: 0,
      c: { name: c.name, image: c.image, imageID: '', containerID: '', state: { waiting: { reason: 'ContainerCreating' } }, lastState: {},
        ready: false, started: false, restartCount: 0 } };
  }

  pod(s) {
    const p = this.store.get('pods', s.name);
    return p && p.metadata.uid === s.uid ? p : null;
  }

  // the pod's status, from the kubelet's state
  render(s) {
    const pod = this.pod(s);
    if (!pod || s.gone) return;
    this.store.mutate('pods', s.name, p => {
      const st = p.status = p.status || {};
      const old = new Map((st.conditions || []).map(c => [c.type, c]));
      const cond = (type, ok, reason, message) => {
        const prev = old.get(type);
        const status = ok ? 'True' : 'False';
        const c = { type, status, lastProbeTime: null, lastTransitionTime: prev && prev.status === status ? prev.lastTransitionTime : now() };
        if (!ok && reason) c.reason = reason;
        if (!ok && message) c.message = message;
        return c;
      };
      const spec = p.spec.containers;
      const others = spec.slice(1);
      const allReady = s.c.ready && !others.length;
      st.phase = s.everStarted ? 'Running' : 'Pending';
      if (s.ip) { st.podIP = s.ip; st.podIPs = [{ ip: s.ip }]; }
      if (s.hostIP) { st.hostIP = s.hostIP; st.hostIPs = [{ ip: s.hostIP }]; }
      if (s.startTime) st.startTime = s.startTime;
      const notReady = allReady ? null : `containers with unready status: [${[s.c.ready ? null : s.c.name, ...others.map(o => o.name)].filter(Boolean).join(' ')}]`;
      const conds = [
        cond('PodReadyToStartContainers', true),
        cond('Initialized', true),
        cond('Ready', allReady, 'ContainersNotReady', notReady),
        cond('ContainersReady', allReady, 'ContainersNotReady', notReady),
        cond('PodScheduled', true),
      ];
      for (const extra of ['PodResizePending', 'PodResizeInProgress']) if (s[extra]) conds.push({ type: extra, status: 'True', lastProbeTime: null, lastTransitionTime: s[extra].since, reason: s[extra].reason, message: s[extra].message });
      st.conditions = conds;
      const cs = { name: s.c.name, state: s.c.state, lastState: s.c.lastState, ready: s.c.ready, restartCount: s.c.restartCount,
        image: s.c.image, imageID: s.c.imageID, started: s.c.started };
      if (s.c.containerID) cs.containerID = s.c.containerID;
      if (s.c.resources) { cs.resources = s.c.resources; cs.allocatedResources = s.c.resources.requests || {}; }
      st.containerStatuses = [cs, ...others.map(o => ({ name: o.name, state: { waiting: { reason: 'FakeNotRealized', message: 'fake-apiserver realizes the first container of a pod only' } },
        lastState: {}, ready: false, restartCount: 0, image: o.image, imageID: '', started: false }))];
      st.qosClass = st.qosClass || 'BestEffort';
    });
  }

  // ---------------------------------------------------------------- config
  secretData(name, optional) {
    const sec = this.store.get('secrets', name);
    if (!sec) {
      if (optional) return null;
      throw new ConfigError('CreateContainerConfigError', `secret "${name}" not found`);
    }
    return sec.data || {};
  }

  async imageUser(image) {
    const r = await this.podman(['image', 'inspect', '--format', '{{.Config.User}}', image]);
    return r.code === 0 ? r.stdout.trim() : '';
  }

  async buildConfig(pod, s) {
    const c = pod.spec.containers[0];
    const psc = pod.spec.securityContext || {};
    const csc = c.securityContext || {};
    if ((pod.spec.initContainers || []).length)
      throw new ConfigError('CreateContainerConfigError', 'fake-apiserver does not run initContainers');
    // environment: envFrom, then env; $(VAR) references expanded
    const env = new Map();
    for (const ef of c.envFrom || []) {
      if (ef.configMapRef) throw new ConfigError('CreateContainerConfigError', 'fake-apiserver serves no ConfigMaps');
      const data = this.secretData(ef.secretRef.name, ef.secretRef.optional);
      for (const [k, v] of Object.entries(data || {})) env.set((ef.prefix || '') + k, Buffer.from(v, 'base64').toString('utf8'));
    }
    const expand = v => String(v).replace(/\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)/g, (m, n) => (m === '$$' ? '$' : env.has(n) ? env.get(n) : m));
    for (const e of c.env || []) {
      if (!e.valueFrom) { env.set(e.name, expand(e.value || '')); continue; }
      const vf = e.valueFrom;
      if (vf.secretKeyRef) {
        const data = this.secretData(vf.secretKeyRef.name, vf.secretKeyRef.optional);
        if (data === null) continue;
        if (!(vf.secretKeyRef.key in data)) {
          if (vf.secretKeyRef.optional) continue;
          throw new ConfigError('CreateContainerConfigError', `couldn't find key ${vf.secretKeyRef.key} in Secret ${this.ns}/${vf.secretKeyRef.name}`);
        }
        env.set(e.name, Buffer.from(data[vf.secretKeyRef.key], 'base64').toString('utf8'));
      } else if (vf.configMapKeyRef) {
        if (vf.configMapKeyRef.optional) continue;
        throw new ConfigError('CreateContainerConfigError', `configmap "${vf.configMapKeyRef.name}" not found (fake-apiserver serves no ConfigMaps)`);
      } else if (vf.fieldRef) {
        const fp = vf.fieldRef.fieldPath;
        let m;
        const v = fp === 'metadata.name' ? pod.metadata.name : fp === 'metadata.namespace' ? pod.metadata.namespace
          : fp === 'metadata.uid' ? pod.metadata.uid : fp === 'spec.nodeName' ? pod.spec.nodeName
          : fp === 'spec.serviceAccountName' ? pod.spec.serviceAccountName
          : (fp === 'status.podIP' || fp === 'status.podIPs') ? (s.ip || '')
          : (fp === 'status.hostIP' || fp === 'status.hostIPs') ? (s.hostIP || '')
          : (m = /^metadata\.(labels|annotations)\['([^']+)'\]$/.exec(fp)) ? ((pod.metadata[m[1]] || {})[m[2]] || '') : '';
        env.set(e.name, v);
      } else if (vf.resourceFieldRef) {
        const r = vf.resourceFieldRef;
        const [kind, res] = r.resource.split('.');
        const val = ((c.resources || {})[kind] || {})[res];
        if (val === undefined) env.set(e.name, res === 'cpu' ? '2' : String(require('os').totalmem()));
        else if (res === 'cpu') env.set(e.name, String(Number((quantity.toMilli(val) + quantity.toMilli(r.divisor || '1') - 1n) / quantity.toMilli(r.divisor || '1'))));
        else env.set(e.name, String(quantity.toInt(val) / (quantity.toInt(r.divisor || '1') || 1n)));
      }
    }
    // user and groups; runAsNonRoot as the kubelet checks it
    const runAsUser = csc.runAsUser ?? psc.runAsUser;
    const runAsGroup = csc.runAsGroup ?? psc.runAsGroup;
    const nonRoot = csc.runAsNonRoot ?? psc.runAsNonRoot;
    const who = `(pod: "${pod.metadata.name}_${this.ns}(${pod.metadata.uid})", container: ${c.name})`;
    if (nonRoot) {
      if (runAsUser === 0) throw new ConfigError('CreateContainerConfigError', `container's runAsUser breaks non-root policy ${who}`);
      if (runAsUser === undefined) {
        const u = (await this.imageUser(c.image)).split(':')[0];
        if (u === '' || u === '0' || u === 'root') throw new ConfigError('CreateContainerConfigError', `container has runAsNonRoot and image will run as root ${who}`);
        if (!/^\d+$/.test(u)) throw new ConfigError('CreateContainerConfigError', `container has runAsNonRoot and image has non-numeric user (${u}), cannot verify user is non-root ${who}`);
      }
    }
    const args = [];
    if (runAsUser !== undefined) args.push('--user', runAsGroup !== undefined ? `${runAsUser}:${runAsGroup}` : String(runAsUser));
    else if (runAsGroup !== undefined) args.push('--group-add', String(runAsGroup));
    if (psc.fsGroup !== undefined) args.push('--group-add', String(psc.fsGroup));
    for (const g of psc.supplementalGroups || []) args.push('--group-add', String(g));
    const caps = csc.capabilities || {};
    for (const d of caps.drop || []) args.push('--cap-drop', d);
    for (const a of caps.add || []) args.push('--cap-add', a);
    if (csc.privileged) args.push('--privileged');
    if (csc.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
    if (csc.readOnlyRootFilesystem) args.push('--read-only', '--read-only-tmpfs=false');
    // resources
    const lim = (c.resources || {}).limits || {}, req = (c.resources || {}).requests || {};
    if (lim.memory !== undefined) { const b = String(quantity.toInt(lim.memory)); args.push('--memory', b, '--memory-swap', b); }
    if (lim.cpu !== undefined) args.push('--cpus', (Number(quantity.toMilli(lim.cpu)) / 1000).toFixed(3));
    if (req.cpu !== undefined) args.push('--cpu-shares', String(Math.max(2, Math.floor(Number(quantity.toMilli(req.cpu)) * 1024 / 1000))));
    // volumes
    const vols = new Map((pod.spec.volumes || []).map(v => [v.name, v]));
    const dirs = path.join(this.stateDir, 'pods', pod.metadata.uid);
    for (const m of c.volumeMounts || []) {
      const v = vols.get(m.name);
      if (!v) throw new ConfigError('CreateContainerConfigError', `volume "${m.name}" not found`);
      const ro = m.readOnly ? 'ro' : 'rw';
      if (v.persistentVolumeClaim) {
        const claim = v.persistentVolumeClaim.claimName;
        const pvc = this.store.get('persistentvolumeclaims', claim);
        if (!pvc) throw new ConfigError('ContainerCreating', `persistentvolumeclaim "${claim}" not found`);
        if (pvc.metadata.deletionTimestamp) throw new ConfigError('ContainerCreating', `persistentvolumeclaim "${claim}" is being deleted`);
        const vol = this.volName(claim);
        const mp = await this.ensureVolume(vol, pvc);
        this.applyFsGroup(mp, psc);
        if (m.subPath) {
          const sub = path.join(mp, m.subPath);
          fs.mkdirSync(sub, { recursive: true });
          args.push('-v', `${sub}:${m.mountPath}:${ro}`);
        } else args.push('-v', `${vol}:${m.mountPath}:${ro},nocopy`);
      } else if (v.secret) {
        const data = this.secretData(v.secret.secretName, v.secret.optional) || {};
        const dir = path.join(dirs, 'secret-' + v.name);
        fs.rmSync(dir, { recursive: true, force: true });
        fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
        const items = v.secret.items || Object.keys(data).map(k => ({ key: k, path: k }));
        for (const it of items) {
          if (!(it.key in data)) { if (v.secret.optional) continue; throw new ConfigError('ContainerCreating', `couldn't find key ${it.key} in Secret ${this.ns}/${v.secret.secretName}`); }
          const f = path.join(dir, it.path);
          fs.mkdirSync(path.dirname(f), { recursive: true });
          let mode = it.mode ?? v.secret.defaultMode ?? 0o644;
          fs.writeFileSync(f, Buffer.from(data[it.key], 'base64'), { mode });
          if (psc.fsGroup !== undefined) { fs.chownSync(f, 0, psc.fsGroup); mode |= 0o040; }
          fs.chmodSync(f, mode);
        }
        args.push('-v', `${m.subPath ? path.join(dir, m.subPath) : dir}:${m.mountPath}:ro`);
      } else if (v.emptyDir) {
        if (v.emptyDir.medium === 'Memory') {
          const size = v.emptyDir.sizeLimit ? `,size=${quantity.toInt(v.emptyDir.sizeLimit)}` : '';
          args.push('--tmpfs', `${m.mountPath}:rw,mode=1777${size}`);
        } else {
          const dir = path.join(dirs, 'empty-' + v.name);
          fs.mkdirSync(dir, { recursive: true });
          fs.chmodSync(dir, 0o777);
          const src = m.subPath ? path.join(dir, m.subPath) : dir;
          fs.mkdirSync(src, { recursive: true });
          args.push('-v', `${src}:${m.mountPath}:${ro}`);
        }
      } else {
        throw new ConfigError('CreateContainerConfigError', `fake-apiserver: volume type ${Object.keys(v).filter(k => k !== 'name').join(',')} is not supported`);
      }
    }
    s.hostDirs = [dirs];
    // command: entrypoint replaced by command; args after the image
    const tail = [];
    if (c.command && c.command.length) args.push('--entrypoint', JSON.stringify(c.command.map(expand)));
    if (c.args) tail.push(...c.args.map(expand));
    if (c.workingDir) args.push('--workdir', c.workingDir);
    return { env, args, tail };
  }

  async ensureVolume(vol, pvc) {
    let r = await this.podman(['volume', 'inspect', '--format', '{{.Mountpoint}}', vol]);
    if (r.code !== 0) {
      const c = await this.podman(['volume', 'create', ...this.labels({ 'fake-apiserver.pvc': pvc.metadata.name, 'fake-apiserver.pvc-uid': pvc.metadata.uid }), vol]);
      if (c.code !== 0) throw new ConfigError('ContainerCreating', `podman volume create ${vol}: ${c.stderr.trim()}`);
      r = await this.podman(['volume', 'inspect', '--format', '{{.Mountpoint}}', vol]);
    }
    return r.stdout.trim();
  }

  // fsGroup: group ownership and group rw, setgid directories (the
  // kubelet's SetVolumeOwnership)
  applyFsGroup(dir, psc) {
    const gid = psc.fsGroup;
    if (gid === undefined || !dir) return;
    const st = fs.statSync(dir);
    if (psc.fsGroupChangePolicy === 'OnRootMismatch' && st.gid === gid && (st.mode & 0o2070) === 0o2070) return;
    const walk = p => {
      const l = fs.lstatSync(p);
      if (l.isSymbolicLink()) return;
      fs.lchownSync(p, l.uid, gid);
      let mode = l.mode & 0o7777;
      if (l.isDirectory()) mode |= 0o2070;
      else mode |= (mode & 0o100) ? 0o070 : 0o060;
      fs.chmodSync(p, mode);
      if (l.isDirectory()) for (const e of fs.readdirSync(p)) walk(path.join(p, e));
    };
    walk(dir);
  }

  // ---------------------------------------------------------------- start
  async startContainer(s) {
    if (s.terminating || s.gone) return;
    const pod = this.pod(s);
    if (!pod) return;
    const c = pod.spec.containers[0];
    const waiting = (reason, message, retryMs) => {
      s.c.state = { waiting: message ? { reason, message } : { reason } };
      s.c.ready = false;
      this.render(s);
      if (retryMs) this.later(s, retryMs, () => this.enqueue(s.name, () => this.startContainer(s)));
    };
    // image: never pulled (no registry here)
    const ex = await this.podman(['image', 'exists', c.image]);
    if (ex.code !== 0) {
      const never = c.imagePullPolicy === 'Never';
      return waiting(never ? 'ErrImageNeverPull' : 'ErrImagePull',
        never ? `Container image "${c.image}" is not present with pull policy of Never`
          : `fake-apiserver never pulls: image "${c.image}" is not present locally`, 2000);
    }
    let cfg;
    try { cfg = await this.buildConfig(pod, s); } catch (e) {
      if (e instanceof ConfigError) return waiting(e.reason, e.message, 1000);
      throw e;
    }
    await this.podman(['rm', '-f', '-t', '0', s.ctr]);
    const envFile = path.join(this.stateDir, `env-${s.uid}`);
    const envArgs = [];
    const lines = [];
    for (const [k, v] of cfg.env) { if (/[\n\r]/.test(v)) envArgs.push('--env', `${k}=${v}`); else lines.push(`${k}=${v}`); }
    fs.writeFileSync(envFile, lines.join('\n') + '\n', { mode: 0o600 });
    const grace = pod.spec.terminationGracePeriodSeconds ?? 30;
    const hostname = pod.spec.hostname || pod.metadata.name;
    const aliases = [pod.metadata.name];
    if (pod.spec.subdomain) aliases.push(`${hostname}.${pod.spec.subdomain}`, `${hostname}.${pod.spec.subdomain}.${this.ns}`,
      `${hostname}.${pod.spec.subdomain}.${this.ns}.svc`, `${hostname}.${pod.spec.subdomain}.${this.ns}.svc.cluster.local`);
    const netArgs = ['--network', this.network];
    if (s.ip) netArgs.push('--ip', s.ip);
    for (const a of aliases) netArgs.push('--network-alias', a);
    const args = ['create', '--name', s.ctr, '--pull', 'never',
      ...this.labels({ 'fake-apiserver.pod': s.name, 'fake-apiserver.pod-uid': s.uid }),
      ...netArgs, '--hostname', hostname, '--restart', 'no', '--stop-timeout', String(grace),
      '--env-file', envFile, ...envArgs, ...cfg.args, c.image, ...cfg.tail];
    let r = await this.podman(args);
    if (r.code !== 0 && s.ip && /ip|address/i.test(r.stderr)) {
      // the pod's address is taken: a new one, as a new sandbox would get
      s.ip = null;
      r = await this.podman(args.filter((a, i) => !(a === '--ip' || args[i - 1] === '--ip')));
    }
    fs.rmSync(envFile, { force: true });
    if (r.code !== 0) return waiting('CreateContainerError', `podman create: ${r.stderr.trim().slice(-500)}`, this.backoff(s));
    if (s.terminating || s.gone) { await this.podman(['rm', '-f', '-t', '0', s.ctr]); return; }
    const st = await this.podman(['start', s.ctr]);
    const info = await this.inspect(s.ctr);
    if (st.code !== 0 || !info || !info.State.Running) {
      // it died at once: count it as a run that exited
      s.c.containerID = info ? `podman://${info.Id}` : '';
      return this.exited(s, info, st.stderr.trim());
    }
    const netw = (info.NetworkSettings.Networks || {})[this.network] || {};
    s.ip = netw.IPAddress || s.ip;
    s.hostIP = netw.Gateway || s.hostIP;
    s.startTime = s.startTime || now();
    s.everStarted = true;
    s.running = true;
    s.lastStart = Date.now();
    s.gen++;
    s.c.containerID = `podman://${info.Id}`;
    s.c.imageID = info.Image ? `sha256:${info.Image}` : '';
    s.c.state = { running: { startedAt: new Date(info.State.StartedAt).toISOString().replace(/\.\d+Z$/, 'Z') } };
    s.c.resources = c.resources && (c.resources.limits || c.resources.requests) ? JSON.parse(JSON.stringify(c.resources)) : undefined;
    this.startProbes(s, pod);
    this.render(s);
  }

  backoff(s) {
    const n = s.c.restartCount;
    return n <= 1 ? 0 : Math.min(10000, 1000 * 2 ** (n - 2));
  }

  async inspect(name) {
    const r = await this.podman(['inspect', '--type', 'container', name]);
    if (r.code !== 0) return null;
    try { return JSON.parse(r.stdout)[0]; } catch (e) { return null; }
  }

  later(s, ms, fn) {
    const t = setTimeout(() => { s.timers = s.timers.filter(x => x !== t); if (!s.terminating && !s.gone) fn(); }, ms);
    s.timers.push(t);
  }

  // the container is no longer running: restart it (restartPolicy Always)
  async exited(s, info, why) {
    if (s.terminating || s.gone) return;
    this.stopProbes(s);
    s.running = false;
    s.gen++;
    const ranMs = Date.now() - s.lastStart;
    const state = info && info.State;
    const term = { exitCode: state ? state.ExitCode : 137, reason: state && state.OOMKilled ? 'OOMKilled' : (state && state.ExitCode === 0 ? 'Completed' : 'Error'),
      startedAt: state && state.StartedAt && !state.StartedAt.startsWith('0001') ? new Date(state.StartedAt).toISOString().replace(/\.\d+Z$/, 'Z') : null,
      finishedAt: state && state.FinishedAt && !state.FinishedAt.startsWith('0001') ? new Date(state.FinishedAt).toISOString().replace(/\.\d+Z$/, 'Z') : now(),
      containerID: s.c.containerID || undefined };
    if (!info) term.message = 'the container was removed behind the kubelet\'s back';
    else if (why) term.message = why.slice(-500);
    s.c.lastState = { terminated: term };
    s.c.ready = false;
    s.c.started = false;
    s.c.restartCount++;
    // the back-off starts over after a run of 30 s or more
    const delay = ranMs > 30000 ? 0 : this.backoff(s);
    s.c.state = delay ? { waiting: { reason: 'CrashLoopBackOff', message: `back-off ${Math.round(delay / 1000)}s restarting failed container=${s.c.name} pod=${s.name}_${this.ns}(${s.uid})` } }
      : { waiting: { reason: 'ContainerCreating' } };
    this.log(`${s.name}: container exited (${term.reason}, code ${term.exitCode}), restart #${s.c.restartCount} in ${delay} ms`);
    this.render(s);
    this.later(s, delay, () => this.enqueue(s.name, () => this.startContainer(s)));
  }

  // ---------------------------------------------------------------- poll
  async poll() {
    if (this.polling) return;
    const watched = [...this.states.values()].filter(s => s.running && !s.terminating && !s.gone);
    if (!watched.length) return;
    this.polling = true;
    try {
      const r = await this.podman(['ps', '-a', '--format', 'json', '--filter', `label=smdb.prefix=${this.prefix}`, '--filter', `label=fake-apiserver.namespace=${this.ns}`], { timeout: 20000 });
      if (r.code !== 0) return;
      let list;
      try { list = JSON.parse(r.stdout || '[]'); } catch (e) { return; }
      const byName = new Map();
      for (const c of list) for (const n of c.Names || []) byName.set(n, c);
      for (const s of watched) {
        if (!s.running || s.terminating) continue;
        const c = byName.get(s.ctr);
        const id = s.c.containerID.replace('podman://', '');
        if (c && c.Id === id && (c.State === 'running' || c.State === 'paused')) continue;
        const gen = s.gen;
        this.enqueue(s.name, async () => {
          if (s.gen !== gen || !s.running) return;
          const info = c && c.Id === id ? await this.inspect(s.ctr) : null;
          if (info && info.State.Running) return;
          await this.exited(s, info);
        });
      }
    } finally { this.polling = false; }
  }

  // ---------------------------------------------------------------- probes
  startProbes(s, pod) {
    const c = pod.spec.containers[0];
    const gen = s.gen;
    s.probe = {};
    const ports = new Map((c.ports || []).filter(p => p.name).map(p => [p.name, p.containerPort]));
    const hasStartup = !!c.startupProbe;
    s.c.started = !hasStartup;
    s.c.ready = !c.readinessProbe && !hasStartup;
    for (const kind of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      const p = c[kind];
      if (!p) continue;
      const st = s.probe[kind] = { ok: 0, fail: 0 };
      const tick = async () => {
        if (s.gen !== gen || !s.running || s.terminating || s.gone) return;
        if (kind !== 'startupProbe' && !s.c.started) { this.later(s, p.periodSeconds * 1000, tick); return; }
        if (kind === 'startupProbe' && s.c.started) return;
        const res = await this.runProbe(s, p, ports);
        if (s.gen !== gen || !s.running || s.terminating || s.gone) return;
        if (res.ok) { st.ok++; st.fail = 0; } else { st.fail++; st.ok = 0; }
        if (kind === 'readinessProbe') {
          if (res.ok && !s.c.ready && st.ok >= p.successThreshold) { s.c.ready = true; this.render(s); }
          if (!res.ok && s.c.ready && st.fail >= p.failureThreshold) { s.c.ready = false; this.render(s); }
        } else if (kind === 'startupProbe') {
          if (res.ok) {
            s.c.started = true;
            if (!c.readinessProbe) s.c.ready = true;
            this.render(s);
            return;
          }
          if (st.fail >= p.failureThreshold) { this.killForProbe(s, pod, 'startup', res.msg); return; }
        } else if (!res.ok && st.fail >= p.failureThreshold) { this.killForProbe(s, pod, 'liveness', res.msg); return; }
        this.later(s, p.periodSeconds * 1000, tick);
      };
      this.later(s, (p.initialDelaySeconds || 0) * 1000, tick);
    }
  }

  stopProbes(s) {
    for (const t of s.timers) clearTimeout(t);
    s.timers = [];
  }

  killForProbe(s, pod, kind, msg) {
    this.log(`${s.name}: ${kind} probe failed (${msg}), the container is killed`);
    const grace = pod.spec.terminationGracePeriodSeconds ?? 30;
    this.enqueue(s.name, () => this.podman(['stop', '-t', String(grace), s.ctr]));
  }

  runProbe(s, p, ports) {
    const timeout = (p.timeoutSeconds || 1) * 1000;
    const port = v => (typeof v === 'string' ? ports.get(v) : v);
    if (p.tcpSocket) {
      return new Promise(resolve => {
        const pt = port(p.tcpSocket.port);
        if (!pt) return resolve({ ok: false, msg: `no port named ${p.tcpSocket.port}` });
        const sock = net.connect({ host: p.tcpSocket.host || s.ip, port: pt });
        const done = (ok, msg) => { sock.destroy(); clearTimeout(t); resolve({ ok, msg }); };
        const t = setTimeout(() => done(false, 'timeout'), timeout);
        sock.on('connect', () => done(true));
        sock.on('error', e => done(false, e.message));
      });
    }
    if (p.exec) {
      return this.podman(['exec', s.ctr, ...p.exec.command], { timeout: timeout + 2000 })
        .then(r => ({ ok: r.code === 0, msg: `exit ${r.code}: ${r.stderr.trim().slice(-200)}` }));
    }
    if (p.httpGet) {
      const g = p.httpGet;
      return new Promise(resolve => {
        const mod = g.scheme === 'HTTPS' ? https : http;
        const headers = {};
        for (const h of g.httpHeaders || []) headers[h.name] = h.value;
        const req = mod.get({ host: g.host || s.ip, port: port(g.port), path: g.path || '/', headers, timeout, rejectUnauthorized: false }, res => {
          res.resume();
          resolve({ ok: res.statusCode >= 200 && res.statusCode < 400, msg: `HTTP ${res.statusCode}` });
        });
        req.on('timeout', () => { req.destroy(); resolve({ ok: false, msg: 'timeout' }); });
        req.on('error', e => resolve({ ok: false, msg: e.message }));
      });
    }
    return Promise.resolve({ ok: false, msg: 'fake-apiserver: grpc probes are not supported' });
  }

  // ---------------------------------------------------------------- resize
  resize(pod) {
    const s = this.states.get(pod.metadata.uid);
    if (!s) return;
    this.enqueue(s.name, async () => {
      const cur = this.pod(s);
      if (!cur || s.terminating) return;
      const c = cur.spec.containers[0];
      const old = s.c.resources || {};
      const lim = (c.resources || {}).limits || {};
      if (!s.running) { s.c.resources = JSON.parse(JSON.stringify(c.resources || {})); this.render(s); return; }
      s.PodResizeInProgress = { since: now() };
      delete s.PodResizePending;
      this.render(s);
      const args = ['update'];
      if (lim.memory !== undefined) { const b = String(quantity.toInt(lim.memory)); args.push('--memory', b, '--memory-swap', b); }
      if (lim.cpu !== undefined) args.push('--cpus', (Number(quantity.toMilli(lim.cpu)) / 1000).toFixed(3));
      const req = (c.resources || {}).requests || {};
      if (req.cpu !== undefined) args.push('--cpu-shares', String(Math.max(2, Math.floor(Number(quantity.toMilli(req.cpu)) * 1024 / 1000))));
      const r = args.length > 1 ? await this.podman([...args, s.ctr]) : { code: 0 };
      delete s.PodResizeInProgress;
      if (r.code !== 0) {
        s.PodResizePending = { since: now(), reason: 'Infeasible', message: `podman update: ${r.stderr.trim().slice(-300)}` };
        this.render(s);
        return;
      }
      s.c.resources = JSON.parse(JSON.stringify(c.resources || {}));
      this.render(s);
      // resources whose resizePolicy says RestartContainer
      const changed = ['cpu', 'memory'].filter(k => JSON.stringify(((old.limits || {})[k])) !== JSON.stringify(lim[k]) || JSON.stringify((old.requests || {})[k]) !== JSON.stringify(req[k]));
      const restart = (c.resizePolicy || []).some(p => p.restartPolicy === 'RestartContainer' && changed.includes(p.resourceName));
      if (restart) await this.podman(['stop', '-t', String(cur.spec.terminationGracePeriodSeconds ?? 30), s.ctr]);
    });
  }

  // ---------------------------------------------------------------- stop
  async terminate(s, grace) {
    this.stopProbes(s);
    const r = await this.podman(['stop', '-t', String(grace), s.ctr], { timeout: (grace + 30) * 1000 });
    const info = await this.inspect(s.ctr);
    s.running = false;
    s.c.ready = false;
    if (info) {
      s.c.state = { terminated: { exitCode: info.State.ExitCode, reason: info.State.ExitCode === 0 ? 'Completed' : 'Error',
        startedAt: new Date(info.State.StartedAt).toISOString().replace(/\.\d+Z$/, 'Z'), finishedAt: now(), containerID: s.c.containerID } };
      this.render(s);
    } else if (r.code !== 0 && !/no such container/i.test(r.stderr)) this.log(`${s.name}: podman stop: ${r.stderr.trim()}`);
    await this.podman(['rm', '-f', '-t', '0', s.ctr]);
    this.cleanupDirs(s);
    const pod = this.pod(s);
    s.gone = true;
    this.states.delete(s.uid);
    if (pod) this.store.remove('pods', s.name);
  }

  // the pod left the API (a forced deletion, or after terminate())
  forget(pod) {
    if (!pod) return;
    const s = this.states.get(pod.metadata.uid);
    if (!s) return;
    s.gone = true;
    this.stopProbes(s);
    this.enqueue(s.name, async () => {
      await this.podman(['rm', '-f', '-t', '0', s.ctr]);
      this.cleanupDirs(s);
      this.states.delete(s.uid);
    });
  }

  cleanupDirs(s) {
    for (const d of s.hostDirs) fs.rmSync(d, { recursive: true, force: true });
  }

  claimInUse(claim) {
    for (const s of this.states.values()) if (s.claims.includes(claim)) return true;
    return false;
  }

  async removeVolume(claim) {
    const vol = this.volName(claim);
    const ex = await this.podman(['volume', 'exists', vol]);
    if (ex.code !== 0) return true;
    const r = await this.podman(['volume', 'rm', vol]);
    if (r.code !== 0) { this.log(`podman volume rm ${vol}: ${r.stderr.trim()}`); return false; }
    return true;
  }
}

module.exports = { Kubelet };
