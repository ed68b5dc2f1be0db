'use strict';
// metav1.Status answers, as kube-apiserver writes them.

class ApiError extends Error {
  constructor(code, reason, message, details) {
    super(message);
    this.code = code;
    this.reason = reason;
    this.details = details;
  }
  status() {
    const s = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason };
    if (this.details !== undefined) s.details = this.details;
    s.code = this.code;
    return s;
  }
}

const qualified = info => (info.group ? `${info.resource}.${info.group}` : info.resource);
const detailsOf = (info, name) => {
  const d = {};
  if (name) d.name = name;
  if (info.group) d.group = info.group;
  d.kind = info.resource;
  return d;
};

const E = {
  notFound: (info, name) => new ApiError(404, 'NotFound', `${qualified(info)} "${name}" not found`, detailsOf(info, name)),
  alreadyExists: (info, name) => new ApiError(409, 'AlreadyExists', `${qualified(info)} "${name}" already exists`, detailsOf(info, name)),
  conflict: (info, name, why) => new ApiError(409, 'Conflict',
    `Operation cannot be fulfilled on ${qualified(info)} "${name}": ${why || 'the object has been modified; please apply your changes to the latest version and try again'}`,
    detailsOf(info, name)),
  badRequest: msg => new ApiError(400, 'BadRequest', msg),
  unauthorized: () => new ApiError(401, 'Unauthorized', 'Unauthorized'),
  forbidden: (verb, info, ns) => new ApiError(403, 'Forbidden',
    `${info.resource}${info.group ? '.' + info.group : ''} is forbidden: User "fake-client" cannot ${verb} resource "${info.resource}" in API group "${info.group || ''}"` +
    (ns ? ` in the namespace "${ns}"` : ' at the cluster scope') +
    ' (fake-apiserver serves one namespace only)', { kind: info.resource }),
  pathNotFound: () => new ApiError(404, 'NotFound', 'the server could not find the requested resource', {}),
  methodNotAllowed: why => new ApiError(405, 'MethodNotAllowed',
    'the server does not allow this method on the requested resource' + (why ? ` (fake-apiserver: ${why})` : ''), {}),
  unsupportedMediaType: ct => new ApiError(415, 'UnsupportedMediaType',
    `the body of the request was in an unknown format - accepted media types include: application/json, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (fake-apiserver: ${ct || 'no content type'} is not served)`, {}),
  notAcceptable: () => new ApiError(406, 'NotAcceptable', 'only the following media types are accepted: application/json (fake-apiserver serves JSON only)', {}),
  tooLarge: () => new ApiError(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728', {}),
  internal: msg => new ApiError(500, 'InternalError', `Internal error occurred: ${msg}`, { causes: [{ message: msg }] }),
  expired: msg => new ApiError(410, 'Expired', msg),
  // field errors -> 422 Invalid
  invalid: (kind, group, name, errs) => {
    const causes = errs.map(e => ({ reason: e.reason, message: e.msg, field: e.field }));
    const list = errs.map(e => `${e.field}: ${e.msg}`);
    const what = group ? `${kind}.${group}` : kind;
    const message = `${what} "${name}" is invalid: ` + (list.length === 1 ? list[0] : `[${list.join(', ')}]`);
    const details = { name, group: group || undefined, kind, causes };
    if (!group) delete details.group;
    return new ApiError(422, 'Invalid', message, details);
  },
};

function goValue(v) {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'object') {
    if (Array.isArray(v)) return `[]${JSON.stringify(v)}`;
    const isStrMap = Object.values(v).every(x => typeof x === 'string');
    if (isStrMap) return 'map[string]string{' + Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}:${JSON.stringify(x)}`).join(', ') + '}';
    return JSON.stringify(v);
  }
  return String(v);
}

// field.Error constructors
const F = {
  required: (field, detail) => ({ reason: 'FieldValueRequired', field, msg: 'Required value' + (detail ? ': ' + detail : '') }),
  invalid: (field, value, detail) => ({ reason: 'FieldValueInvalid', field, msg: `Invalid value: ${goValue(value)}` + (detail ? ': ' + detail : '') }),
  notSupported: (field, value, allowed) => ({ reason: 'FieldValueNotSupported', field,
    msg: `Unsupported value: ${goValue(value)}: supported values: ${allowed.map(a => JSON.stringify(a)).join(', ')}` }),
  forbidden: (field, detail) => ({ reason: 'FieldValueForbidden', field, msg: 'Forbidden: ' + detail }),
  duplicate: (field, value) => ({ reason: 'FieldValueDuplicate', field, msg: `Duplicate value: ${goValue(value)}` }),
  notFound: (field, value) => ({ reason: 'FieldValueNotFound', field, msg: `Not found: ${goValue(value)}` }),
  tooLong: (field, max) => ({ reason: 'FieldValueTooLong', field, msg: `Too long: may not be more than ${max} bytes` }),
  immutable: (field, value) => ({ reason: 'FieldValueInvalid', field, msg: `Invalid value: ${goValue(value)}: field is immutable` }),
};

module.exports = { ApiError, E, F, goValue, qualified };
