'use strict';
// The fake's "etcd": objects of one namespace, one global resourceVersion
// counter, the event history that watches resume from, and the watchers.

const crypto = require('crypto');
const sel = require('./selector');

const clone = v => JSON.parse(JSON.stringify(v));

class Store {
  constructor({ historyLimit = 10000 } = {}) {
    this.rv = 1000;
    this.data = new Map();          // resource -> Map(name -> {obj, priv})
    this.history = [];              // {rv, resource, type, obj}
    this.oldestRV = this.rv;        // events after this one are kept
    this.historyLimit = historyLimit;
    this.watchers = new Set();
    this.listeners = [];            // (resource, type, obj, old) after every change
  }

  nextRV() { return ++this.rv; }
  uid() { return crypto.randomUUID(); }

  map(resource) {
    if (!this.data.has(resource)) this.data.set(resource, new Map());
    return this.data.get(resource);
  }
  get(resource, name) { const r = this.map(resource).get(name); return r ? r.obj : undefined; }
  rec(resource, name) { return this.map(resource).get(name); }
  list(resource) { return [...this.map(resource).values()].map(r => r.obj).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)); }

  // writes: the object gets the next resourceVersion; an event is recorded
  create(resource, obj, priv = {}) {
    obj.metadata.resourceVersion = String(this.nextRV());
    this.map(resource).set(obj.metadata.name, { obj, priv });
    this.record(resource, 'ADDED', obj, null);
    return obj;
  }
  update(resource, obj) {
    const rec = this.rec(resource, obj.metadata.name);
    const old = rec.obj;
    obj.metadata.resourceVersion = String(this.nextRV());
    rec.obj = obj;
    this.record(resource, 'MODIFIED', obj, old);
    return obj;
  }
  // change in place through fn(copy); no write when nothing changed
  mutate(resource, name, fn) {
    const rec = this.rec(resource, name);
    if (!rec) return undefined;
    const copy = clone(rec.obj);
    delete copy.metadata.resourceVersion;
    fn(copy);
    const before = clone(rec.obj);
    delete before.metadata.resourceVersion;
    if (JSON.stringify(before) === JSON.stringify(copy)) return rec.obj;
    return this.update(resource, copy);
  }
  remove(resource, name) {
    const rec = this.rec(resource, name);
    if (!rec) return undefined;
    this.map(resource).delete(name);
    const obj = clone(rec.obj);
    obj.metadata.resourceVersion = String(this.nextRV());
    this.record(resource, 'DELETED', obj, rec.obj);
    return obj;
  }

  record(resource, type, obj, old) {
    const ev = { rv: Number(obj.metadata.resourceVersion), resource, type, obj: clone(obj), old: old ? clone(old) : null };
    this.history.push(ev);
    if (this.history.length > this.historyLimit) {
      const dropped = this.history.shift();
      this.oldestRV = dropped.rv;
    }
    for (const w of this.watchers) if (w.resource === resource) w.deliver(ev);
    for (const l of this.listeners) l(resource, type, obj, old);
  }

  // "etcd compaction": every resourceVersion known until now becomes too old
  compact() {
    this.oldestRV = this.nextRV();
    this.history = [];
  }

  // events after rv for a resource, or null when rv is too old
  since(resource, rv) {
    if (rv < this.oldestRV) return null;
    return this.history.filter(e => e.resource === resource && e.rv > rv);
  }
}

// A watch: filters events by selector; objects that start or stop matching
// arrive as ADDED or DELETED, as kube-apiserver's watch cache sends them.
class Watcher {
  constructor(store, resource, labelReqs, fieldReqs, send) {
    this.store = store;
    this.resource = resource;
    this.labelReqs = labelReqs;
    this.fieldReqs = fieldReqs;
    this.send = send;
  }
  match(o) { return !!o && sel.matches(this.labelReqs, o.metadata.labels) && sel.fieldMatches(this.fieldReqs, o); }
  deliver(ev) {
    const now = this.match(ev.obj);
    const before = ev.old ? this.match(ev.old) : false;
    let type = ev.type;
    if (type === 'MODIFIED') {
      if (now && !before) type = 'ADDED';
      else if (!now && before) type = 'DELETED';
      else if (!now) return;
    } else if (!now) return;
    this.send(type, ev.obj);
  }
  start() { this.store.watchers.add(this); }
  stop() { this.store.watchers.delete(this); }
}

module.exports = { Store, Watcher, clone };
