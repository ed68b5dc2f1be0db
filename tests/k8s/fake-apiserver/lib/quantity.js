'use strict';
// resource.Quantity as kube-apiserver parses and serializes it
// (k8s.io/apimachinery/pkg/api/resource): the suffixes Kubernetes accepts
// (stricter than kubernetes-models' format, which takes any SI prefix), and
// the canonical form the server stores ("1024Mi" -> "1Gi", "0.5" -> "500m").
// Values are kept as BigInt nano-units; finer precision rounds up, as there.

const RE = /^([+-]?(?:\d+|\d+\.\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;
const BIN = { Ki: 1n, Mi: 2n, Gi: 3n, Ti: 4n, Pi: 5n, Ei: 6n };
const DEC = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const DEC_SUFFIX = { '-9': 'n', '-6': 'u', '-3': 'm', '0': '', '3': 'k', '6': 'M', '9': 'G', '12': 'T', '15': 'P', '18': 'E' };
const BIN_SUFFIX = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];

const REGEX_MSG = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

function pow10(n) { return 10n ** BigInt(n); }

function ceilDiv(a, b) {  // b > 0
  const q = a / b;
  return (a % b !== 0n && a > 0n) ? q + 1n : q;
}

// {nano: BigInt, format: 'BinarySI'|'DecimalSI'|'DecimalExponent'} or null
function parse(v) {
  if (typeof v === 'number') {
    if (!isFinite(v)) return null;
    v = String(v);
    if (/e/i.test(v)) v = Number(v).toFixed(9);
  }
  if (typeof v !== 'string') return null;
  const m = RE.exec(v);
  if (!m) return null;
  let num = m[1], suffix = m[2] || '';
  let neg = false;
  if (num[0] === '+' || num[0] === '-') { neg = num[0] === '-'; num = num.slice(1); }
  let [ip, fp = ''] = num.split('.');
  ip = ip || '0';
  // mantissa = digits / 10^fp.length
  const digits = BigInt(ip + fp);
  const scale = fp.length;
  let format, numer, denom;
  if (suffix in BIN) {
    format = 'BinarySI';
    numer = digits * (1n << (10n * BIN[suffix])) * pow10(9);
    denom = pow10(scale);
  } else {
    let exp;
    if (suffix && (suffix[0] === 'e' || suffix[0] === 'E')) {
      format = 'DecimalExponent';
      exp = parseInt(suffix.slice(1), 10);
      if (Math.abs(exp) > 1000) return null;
    } else {
      format = 'DecimalSI';
      exp = DEC[suffix];
    }
    let e = exp + 9 - scale;
    if (e >= 0) { numer = digits * pow10(e); denom = 1n; } else { numer = digits; denom = pow10(-e); }
  }
  let nano = ceilDiv(numer, denom);
  if (neg) nano = -nano;
  return { nano, format };
}

function canonical(q) {
  let { nano, format } = q;
  if (nano === 0n) return '0';
  const neg = nano < 0n;
  const abs = neg ? -nano : nano;
  const sign = neg ? '-' : '';
  const G = pow10(9);
  if (format === 'BinarySI') {
    if (abs < 1024n * G || abs % G !== 0n) format = 'DecimalSI';
  }
  if (format === 'BinarySI') {
    let v = abs / G, k = 0;
    while (k < 6 && v % 1024n === 0n) { v /= 1024n; k++; }
    return sign + v.toString() + BIN_SUFFIX[k];
  }
  // largest exponent (multiple of 3) that keeps the mantissa integral
  let best = -9;
  for (let e = 18; e >= -9; e -= 3) {
    if (abs % pow10(e + 9) === 0n) { best = e; break; }
  }
  const mant = abs / pow10(best + 9);
  if (format === 'DecimalExponent') return sign + mant.toString() + (best === 0 ? '' : 'e' + best);
  return sign + mant.toString() + DEC_SUFFIX[String(best)];
}

function canonicalize(v) {
  const q = parse(v);
  return q ? canonical(q) : null;
}

// bytes (memory, storage): rounded up
function toInt(v) {
  const q = parse(v);
  if (!q) return null;
  return ceilDiv(q.nano, pow10(9));
}

function toMilli(v) {
  const q = parse(v);
  if (!q) return null;
  return ceilDiv(q.nano, pow10(6));
}

function cmp(a, b) {
  const x = parse(a).nano, y = parse(b).nano;
  return x < y ? -1 : x > y ? 1 : 0;
}

module.exports = { parse, canonical, canonicalize, toInt, toMilli, cmp, REGEX_MSG };
