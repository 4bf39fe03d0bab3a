// Velferd's reference medication-dispenser adapter in JavaScript, against
// `velferd:device@2.0.0` (schema/wit/device-v2). It decodes the same JSON batches
// as the Rust reference adapter (plugins/guests/dispenser-json, release 1.0.0)
// to the same events and the same error codes; the host's tests
// (plugins/host/tests/polyglot.rs) compare the two on the shared samples and on
// generated messages.
//
// Built with `jco componentize --backend quickjs --backend-qjs-disable-async
// --backend-qjs-stub-wasi` (see ../build-polyglot.sh): QuickJS, the synchronous
// runtime (the host has no component-model async), and every WASI import
// replaced by a trap, since the sandbox grants nothing.
//
// JSON is parsed by hand, not with JSON.parse, to be as strict as the Rust
// adapter's serde: JSON.parse takes the last of duplicate keys, accepts lone
// surrogates, and cannot tell `1` from `1.0` — all of which serde refuses.

const CONTENT_TYPES = ["application/json", "application/vnd.velferd.reference-dispenser+json"];

const RUST_WHITESPACE = "\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const RUST_TRIM = new RegExp(`^[${RUST_WHITESPACE}]+|[${RUST_WHITESPACE}]+$`, "g");

class Malformed extends Error {}
class Unsupported extends Error {}

// ---- UTF-8 ----

/** Bytes of `s` in UTF-8 (the contract's limits are in bytes). */
function utf8Length(s) {
  let n = 0;
  for (const ch of s) {
    const c = ch.codePointAt(0);
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  return n;
}

/** `s` cut to at most `max` UTF-8 bytes on a character boundary. */
function truncate(s, max) {
  let n = 0;
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0);
    const w = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    if (n + w > max) break;
    n += w;
    out += ch;
  }
  return out;
}

// ---- a strict JSON parser over the payload's bytes ----

// A number literal: `int` when it is a plain unsigned integer (what serde
// accepts for u8/u32), otherwise not usable as one.
class JsonNumber {
  constructor(text) {
    this.text = text;
  }
  unsigned(max) {
    if (!/^(0|[1-9][0-9]*)$/.test(this.text)) return null;
    if (this.text.length > 10) return null;
    const v = Number(this.text);
    return v <= max ? v : null;
  }
}

class Parser {
  constructor(bytes) {
    this.b = bytes;
    this.i = 0;
    this.depth = 0;
  }
  fail(what) {
    throw new Malformed(`invalid message JSON: ${what} at byte ${this.i}`);
  }
  ws() {
    const b = this.b;
    while (this.i < b.length) {
      const c = b[this.i];
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.i++;
      else break;
    }
  }
  document() {
    this.ws();
    const v = this.value();
    this.ws();
    if (this.i !== this.b.length) this.fail("trailing characters");
    return v;
  }
  value() {
    if (this.i >= this.b.length) this.fail("EOF while parsing a value");
    const c = this.b[this.i];
    if (c === 0x7b) return this.object();
    if (c === 0x5b) return this.array();
    if (c === 0x22) return this.string();
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    if (this.literal("true")) return true;
    if (this.literal("false")) return false;
    if (this.literal("null")) return null;
    this.fail("expected value");
  }
  literal(word) {
    for (let k = 0; k < word.length; k++) {
      if (this.b[this.i + k] !== word.charCodeAt(k)) return false;
    }
    this.i += word.length;
    return true;
  }
  nest() {
    // serde_json's recursion limit: 127 levels of nesting.
    if (++this.depth > 127) this.fail("recursion limit exceeded");
  }
  object() {
    this.nest();
    this.i++;
    const out = new Map();
    this.ws();
    if (this.b[this.i] === 0x7d) {
      this.i++;
      this.depth--;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.b[this.i] !== 0x22) this.fail("key must be a string");
      const key = this.string();
      this.ws();
      if (this.b[this.i] !== 0x3a) this.fail("expected `:`");
      this.i++;
      this.ws();
      const v = this.value();
      if (out.has(key)) this.fail(`duplicate field \`${truncate(key, 40)}\``);
      out.set(key, v);
      this.ws();
      const c = this.b[this.i];
      this.i++;
      if (c === 0x2c) continue;
      if (c === 0x7d) break;
      this.i--;
      this.fail("expected `,` or `}`");
    }
    this.depth--;
    return out;
  }
  array() {
    this.nest();
    this.i++;
    const out = [];
    this.ws();
    if (this.b[this.i] === 0x5d) {
      this.i++;
      this.depth--;
      return out;
    }
    for (;;) {
      this.ws();
      out.push(this.value());
      this.ws();
      const c = this.b[this.i];
      this.i++;
      if (c === 0x2c) continue;
      if (c === 0x5d) break;
      this.i--;
      this.fail("expected `,` or `]`");
    }
    this.depth--;
    return out;
  }
  number() {
    const start = this.i;
    const b = this.b;
    const digit = () => this.i < b.length && b[this.i] >= 0x30 && b[this.i] <= 0x39;
    if (b[this.i] === 0x2d) this.i++;
    if (!digit()) this.fail("invalid number");
    if (b[this.i] === 0x30) this.i++;
    else while (digit()) this.i++;
    if (b[this.i] === 0x2e) {
      this.i++;
      if (!digit()) this.fail("invalid number");
      while (digit()) this.i++;
    }
    if (b[this.i] === 0x65 || b[this.i] === 0x45) {
      this.i++;
      if (b[this.i] === 0x2b || b[this.i] === 0x2d) this.i++;
      if (!digit()) this.fail("invalid number");
      while (digit()) this.i++;
    }
    let text = "";
    for (let k = start; k < this.i; k++) text += String.fromCharCode(b[k]);
    return new JsonNumber(text);
  }
  hex4() {
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const c = this.b[this.i++];
      let d;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
      else this.fail("invalid escape");
      v = v * 16 + d;
    }
    return v;
  }
  string() {
    const b = this.b;
    this.i++;
    let out = "";
    for (;;) {
      if (this.i >= b.length) this.fail("EOF while parsing a string");
      const c = b[this.i];
      if (c === 0x22) {
        this.i++;
        return out;
      }
      if (c < 0x20) this.fail("control character in string");
      if (c === 0x5c) {
        this.i++;
        const e = b[this.i++];
        switch (e) {
          case 0x22: out += '"'; break;
          case 0x5c: out += "\\"; break;
          case 0x2f: out += "/"; break;
          case 0x62: out += "\b"; break;
          case 0x66: out += "\f"; break;
          case 0x6e: out += "\n"; break;
          case 0x72: out += "\r"; break;
          case 0x74: out += "\t"; break;
          case 0x75: {
            const u = this.hex4();
            if (u >= 0xdc00 && u <= 0xdfff) this.fail("lone trailing surrogate");
            if (u >= 0xd800 && u <= 0xdbff) {
              if (b[this.i] !== 0x5c || b[this.i + 1] !== 0x75) this.fail("lone leading surrogate");
              this.i += 2;
              const lo = this.hex4();
              if (lo < 0xdc00 || lo > 0xdfff) this.fail("lone leading surrogate");
              out += String.fromCharCode(u, lo);
            } else {
              out += String.fromCharCode(u);
            }
            break;
          }
          default:
            this.fail("invalid escape");
        }
        continue;
      }
      if (c < 0x80) {
        out += String.fromCharCode(c);
        this.i++;
        continue;
      }
      // Multi-byte UTF-8: shortest form only, no surrogates, at most U+10FFFF.
      let need, cp, min;
      if (c >= 0xc2 && c <= 0xdf) [need, cp, min] = [1, c & 0x1f, 0x80];
      else if (c >= 0xe0 && c <= 0xef) [need, cp, min] = [2, c & 0x0f, 0x800];
      else if (c >= 0xf0 && c <= 0xf4) [need, cp, min] = [3, c & 0x07, 0x10000];
      else this.fail("invalid UTF-8");
      for (let k = 1; k <= need; k++) {
        const cc = b[this.i + k];
        if (cc === undefined || (cc & 0xc0) !== 0x80) this.fail("invalid UTF-8");
        cp = (cp << 6) | (cc & 0x3f);
      }
      if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) this.fail("invalid UTF-8");
      out += String.fromCodePoint(cp);
      this.i += need + 1;
    }
  }
}

// ---- the message's shape, checked as strictly as the Rust adapter's serde structs ----

const isObject = (v) => v instanceof Map;

/** Check `obj` has only `fields` (name → kind) and the required ones; return a plain object. */
function shape(obj, where, fields) {
  if (Array.isArray(obj)) return shapeOfArray(obj, where, fields);
  if (!isObject(obj)) throw new Malformed(`invalid message JSON: ${where} must be an object`);
  const out = {};
  for (const [key, v] of obj) {
    const kind = fields[key];
    if (kind === undefined) throw new Malformed(`invalid message JSON: unknown field \`${truncate(key, 40)}\``);
    out[key] = typed(v, kind, `${where}.${key}`);
  }
  for (const [key, kind] of Object.entries(fields)) {
    if (!(key in out)) {
      if (kind.startsWith("?")) out[key] = null;
      else throw new Malformed(`invalid message JSON: missing field \`${key}\``);
    }
  }
  return out;
}

/** serde also reads a struct from an array of its fields in order (optional ones may be left off). */
function shapeOfArray(array, where, fields) {
  const names = Object.keys(fields);
  if (array.length > names.length) throw new Malformed(`invalid message JSON: ${where} has too many fields`);
  const out = {};
  names.forEach((key, k) => {
    const kind = fields[key];
    if (k < array.length) out[key] = typed(array[k], kind, `${where}.${key}`);
    else if (kind.startsWith("?")) out[key] = null;
    else throw new Malformed(`invalid message JSON: ${where} has too few fields`);
  });
  return out;
}

function typed(v, kind, where) {
  const bad = () => new Malformed(`invalid message JSON: ${where} has the wrong type`);
  if (kind.startsWith("?")) {
    if (v === null) return null;
    kind = kind.slice(1);
  }
  switch (kind) {
    case "string":
      if (typeof v !== "string") throw bad();
      return v;
    case "bool":
      if (typeof v !== "boolean") throw bad();
      return v;
    case "u8":
    case "u32": {
      const n = v instanceof JsonNumber ? v.unsigned(kind === "u8" ? 255 : 4294967295) : null;
      if (n === null) throw bad();
      return n;
    }
    case "dose":
      return shape(v, where, { id: "?string", scheduled: "?string", assisted: "?bool" });
    case "items":
      if (!Array.isArray(v)) throw bad();
      return v.map((item, index) =>
        shape(item, `${where}[${index}]`, {
          id: "string",
          type: "string",
          at: "string",
          dose: "?dose",
          doses_remaining: "?u32",
          battery: "?u8",
          code: "?string",
          text: "?string",
        }),
      );
    default:
      throw new Error(`unknown kind ${kind}`);
  }
}

// ---- time ----

const isLeap = (y) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;

function daysInMonth(y, m) {
  if ([1, 3, 5, 7, 8, 10, 12].includes(m)) return 31;
  if ([4, 6, 9, 11].includes(m)) return 30;
  return isLeap(y) ? 29 : 28;
}

// Howard Hinnant's days-from-civil, as the Rust SDK.
function daysFromCivil(year, month, day) {
  const y = year - (month <= 2 ? 1 : 0);
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** An RFC 3339 timestamp to `{seconds, nanoseconds}` in UTC, as the Rust SDK parses it. */
function parseRfc3339(text) {
  const bad = () => new Malformed(`not an RFC 3339 timestamp: ${JSON.stringify(truncate(text, 40))}`);
  const m = /^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))$/.exec(
    text,
  );
  if (!m || utf8Length(text) < 20) throw bad();
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  let nanosecond = 0;
  if (m[7] !== undefined) {
    if (m[7].length > 9) throw bad();
    nanosecond = Number(m[7]) * 10 ** (9 - m[7].length);
  }
  let offset = 0;
  if (m[8] === undefined) {
    const hours = Number(m[10]);
    const minutes = Number(m[11]);
    if (hours > 23 || minutes > 59) throw bad();
    offset = (hours * 3600 + minutes * 60) * (m[9] === "+" ? 1 : -1);
  }
  if (month < 1 || month > 12 || day === 0 || day > daysInMonth(year, month)) throw bad();
  if (hour > 23 || minute > 59 || second > 60) throw bad();
  const seconds = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
  return { seconds: seconds - offset, nanoseconds: nanosecond };
}

// ---- the decoder ----

function dose(item) {
  const d = item.dose;
  if (d === null) throw new Malformed(`${item.type} needs a dose`);
  return {
    doseId: d.id,
    scheduledFor: d.scheduled === null ? null : parseRfc3339(d.scheduled),
    assistance: d.assisted === null ? "unknown" : d.assisted ? "assisted" : "unassisted",
  };
}

function event(serial, item) {
  const idLength = utf8Length(item.id);
  if (idLength === 0 || idLength > 128) throw new Malformed("id must be 1 to 128 bytes");
  const occurredAt = parseRfc3339(item.at);
  const supply = () => ({ dosesRemaining: item.doses_remaining });
  const battery = () => ({ levelPercent: item.battery !== null && item.battery <= 100 ? item.battery : null });
  let kind;
  let severity;
  switch (item.type) {
    case "dose_available": [kind, severity] = [{ tag: "dose-available", val: dose(item) }, "normal"]; break;
    case "dose_taken": [kind, severity] = [{ tag: "dose-dispensed", val: dose(item) }, "normal"]; break;
    case "prn_dose_taken": [kind, severity] = [{ tag: "as-needed-dose-dispensed", val: dose(item) }, "normal"]; break;
    case "dose_missed": [kind, severity] = [{ tag: "dose-missed", val: dose(item) }, "serious"]; break;
    case "dose_not_confirmed": [kind, severity] = [{ tag: "dose-not-confirmed", val: dose(item) }, "moderate"]; break;
    case "refill": [kind, severity] = [{ tag: "refilled", val: supply() }, "normal"]; break;
    case "supply_low": [kind, severity] = [{ tag: "supply-low", val: supply() }, "moderate"]; break;
    case "supply_empty": [kind, severity] = [{ tag: "supply-empty" }, "serious"]; break;
    case "jam": [kind, severity] = [{ tag: "roll-jammed" }, "serious"]; break;
    case "lid_open": [kind, severity] = [{ tag: "lid-opened" }, "moderate"]; break;
    case "lid_closed": [kind, severity] = [{ tag: "lid-closed" }, "normal"]; break;
    case "power_lost": [kind, severity] = [{ tag: "mains-power-lost" }, "moderate"]; break;
    case "power_restored": [kind, severity] = [{ tag: "mains-power-restored" }, "normal"]; break;
    case "battery_low": [kind, severity] = [{ tag: "battery-low", val: battery() }, "moderate"]; break;
    case "offline": [kind, severity] = [{ tag: "offline" }, "serious"]; break;
    case "online": [kind, severity] = [{ tag: "online" }, "normal"]; break;
    case "fault": {
      const code = item.code;
      if (code === null || code === "" || utf8Length(code) > 32) {
        throw new Malformed("fault needs a code of 1 to 32 bytes");
      }
      [kind, severity] = [{ tag: "technical-fault", val: { code } }, "serious"];
      break;
    }
    default:
      throw new Unsupported(`event type ${JSON.stringify(truncate(item.type, 40))}`);
  }
  return {
    supplierEventId: item.id,
    deviceSerial: serial,
    gatewaySerial: null,
    occurredAt,
    kind,
    severity,
    detail: item.text === null ? null : truncate(item.text, 1024),
  };
}

function decode(message) {
  // As Rust's `str::trim` (Unicode White_Space) and `eq_ignore_ascii_case`, which JavaScript's
  // `trim` and `toLowerCase` are not quite.
  const base = message.contentType.split(";")[0].replace(RUST_TRIM, "");
  if (!/^[\x00-\x7f]*$/.test(base) || !CONTENT_TYPES.includes(base.toLowerCase())) {
    throw new Unsupported(
      `content type ${JSON.stringify(truncate(message.contentType, 100))} (accepted: ${CONTENT_TYPES.join(", ")})`,
    );
  }
  const batch = shape(new Parser(message.payload).document(), "message", { serial: "string", events: "items" });
  const serialLength = utf8Length(batch.serial);
  if (serialLength === 0 || serialLength > 64) throw new Malformed("serial must be 1 to 64 bytes");
  return batch.events.map((item, index) => {
    try {
      return event(batch.serial, item);
    } catch (e) {
      if (e instanceof Malformed) throw new Malformed(`events[${index}]: ${e.message}`);
      if (e instanceof Unsupported) throw new Unsupported(`events[${index}]: ${e.message}`);
      throw e;
    }
  });
}

function encodeCommand(deviceSerial, command) {
  if (command.tag === "test-alarm") {
    throw { tag: "unsupported", val: "the dispenser has no alarm to test" };
  }
  const times = command.val;
  if (times.length === 0 || times.length > 8) throw { tag: "invalid", val: "a schedule has 1 to 8 times a day" };
  const slots = [];
  for (const t of times) {
    if (t.hour > 23 || t.minute > 59) throw { tag: "invalid", val: `no such time ${t.hour}:${t.minute}` };
    slots.push(`${String(t.hour).padStart(2, "0")}:${String(t.minute).padStart(2, "0")}`);
  }
  slots.sort();
  for (let k = 1; k < slots.length; k++) {
    if (slots[k] === slots[k - 1]) throw { tag: "invalid", val: "the schedule repeats a time" };
  }
  // Keys in the order serde_json writes them (sorted), so the bytes match the Rust adapter's.
  const body = JSON.stringify({ command: "set_schedule", serial: deviceSerial, times: slots });
  return { contentType: CONTENT_TYPES[1], body: utf8Bytes(body) };
}

function utf8Bytes(s) {
  const out = [];
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 0x3f), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
  }
  return new Uint8Array(out);
}

export const adapter = {
  describe() {
    return {
      supplier: "Velferd reference",
      product: "Reference medication dispenser (JSON)",
      adapterVersion: "1.0.0",
      deviceClasses: ["medication-dispenser"],
      contentTypes: CONTENT_TYPES,
    };
  },

  decode(message) {
    try {
      return decode(message);
    } catch (e) {
      if (e instanceof Malformed) throw { tag: "malformed", val: e.message };
      if (e instanceof Unsupported) throw { tag: "unsupported", val: e.message };
      throw e;
    }
  },

  encodeCommand,
};
