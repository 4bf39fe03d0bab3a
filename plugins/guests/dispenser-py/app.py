"""Velferd's reference medication-dispenser adapter in Python, against
`velferd:device@2.0.0` (schema/wit/device-v2).

It decodes the same JSON batches as the Rust reference adapter
(plugins/guests/dispenser-json, release 1.0.0) to the same events and the same
error codes; the host's tests (plugins/host/tests/polyglot.rs) compare the two
on the shared samples and on generated messages.

Built with `componentize-py -d schema/wit/device-v2 -w device-adapter
componentize app --stub-wasi` (see ../build-polyglot.sh): the sandbox grants
no files or sockets, and `--stub-wasi` replaces those imports with traps.

The standard library's `json` is used with hooks that make it as strict as the
Rust adapter's serde: duplicate keys, `NaN`/`Infinity`, lone surrogates and
`1.0` where an integer belongs are all refused.
"""

import json
import re

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types as t

CONTENT_TYPES = ["application/json", "application/vnd.velferd.reference-dispenser+json"]

# What Rust's `str::trim` removes (the Unicode White_Space property); Python's
# `str.strip()` removes a different set.
RUST_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)


class Malformed(Exception):
    pass


class Unsupported(Exception):
    pass


def utf8_length(s):
    return len(s.encode("utf-8"))


def truncate(s, limit):
    """`s` cut to at most `limit` UTF-8 bytes on a character boundary."""
    b = s.encode("utf-8")
    if len(b) <= limit:
        return s
    return b[:limit].decode("utf-8", errors="ignore")


# ---- JSON, as strictly as serde_json ----


class JsonNumber:
    """A number literal, kept as text: serde takes only plain unsigned integers for u8/u32."""

    def __init__(self, text):
        self.text = text

    def unsigned(self, limit):
        if self.text.startswith("-") or len(self.text) > 10:
            return None
        value = int(self.text)
        return value if value <= limit else None


class NotAnInteger:
    """A float literal (`1.0`, `1e3`): never valid where the message holds numbers."""


def _pairs(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise Malformed(f"invalid message JSON: duplicate field `{truncate(key, 40)}`")
        out[key] = value
    return out


def _constant(name):
    raise Malformed(f"invalid message JSON: {name} is not JSON")


def _too_deep(payload):
    """Whether brackets nest deeper than serde_json's limit (127), outside strings."""
    depth = 0
    in_string = escaped = False
    for c in payload:
        if in_string:
            if escaped:
                escaped = False
            elif c == 0x5C:
                escaped = True
            elif c == 0x22:
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c in (0x5B, 0x7B):
            depth += 1
            if depth > 127:
                return True
        elif c in (0x5D, 0x7D):
            depth -= 1
    return False


def parse(payload):
    # The recursive parser would run out of stack long before Python's recursion limit.
    if _too_deep(payload):
        raise Malformed("invalid message JSON: recursion limit exceeded")
    try:
        text = payload.decode("utf-8")
        return json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_constant=_constant,
            parse_int=JsonNumber,
            parse_float=lambda _: NotAnInteger(),
        )
    except (ValueError, RecursionError) as e:
        raise Malformed(f"invalid message JSON: {e}") from None


ITEM_FIELDS = {
    "id": "string",
    "type": "string",
    "at": "string",
    "dose": "?dose",
    "doses_remaining": "?u32",
    "battery": "?u8",
    "code": "?string",
    "text": "?string",
}
DOSE_FIELDS = {"id": "?string", "scheduled": "?string", "assisted": "?bool"}


def shape(value, where, fields):
    """Check an object has only `fields` (name -> kind) and the required ones; serde also
    reads a struct from an array of its fields in order, optional ones left off."""
    out = {}
    if isinstance(value, list):
        names = list(fields)
        if len(value) > len(names):
            raise Malformed(f"invalid message JSON: {where} has too many fields")
        for k, key in enumerate(names):
            if k < len(value):
                out[key] = typed(value[k], fields[key], f"{where}.{key}")
            elif fields[key].startswith("?"):
                out[key] = None
            else:
                raise Malformed(f"invalid message JSON: {where} has too few fields")
        return out
    if not isinstance(value, dict):
        raise Malformed(f"invalid message JSON: {where} must be an object")
    for key, v in value.items():
        kind = fields.get(key)
        if kind is None:
            raise Malformed(f"invalid message JSON: unknown field `{truncate(key, 40)}`")
        out[key] = typed(v, kind, f"{where}.{key}")
    for key, kind in fields.items():
        if key not in out:
            if not kind.startswith("?"):
                raise Malformed(f"invalid message JSON: missing field `{key}`")
            out[key] = None
    return out


def typed(value, kind, where):
    bad = Malformed(f"invalid message JSON: {where} has the wrong type")
    if kind.startswith("?"):
        if value is None:
            return None
        kind = kind[1:]
    if kind == "string":
        if not isinstance(value, str):
            raise bad
        # `json` lets a lone surrogate (`"\ud800"`) through; serde does not.
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Malformed(f"invalid message JSON: {where} holds a lone surrogate") from None
        return value
    if kind == "bool":
        if type(value) is not bool:
            raise bad
        return value
    if kind in ("u8", "u32"):
        n = value.unsigned(255 if kind == "u8" else 4294967295) if isinstance(value, JsonNumber) else None
        if n is None:
            raise bad
        return n
    if kind == "dose":
        return shape(value, where, DOSE_FIELDS)
    if kind == "items":
        if not isinstance(value, list):
            raise bad
        return [shape(item, f"{where}[{k}]", ITEM_FIELDS) for k, item in enumerate(value)]
    raise AssertionError(kind)


# ---- time ----


def is_leap(y):
    return (y % 4 == 0 and y % 100 != 0) or y % 400 == 0


def days_in_month(y, m):
    if m in (1, 3, 5, 7, 8, 10, 12):
        return 31
    if m in (4, 6, 9, 11):
        return 30
    return 29 if is_leap(y) else 28


def days_from_civil(year, month, day):
    """Howard Hinnant's days-from-civil, as the Rust SDK."""
    y = year - (1 if month <= 2 else 0)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_rfc3339(text):
    """An RFC 3339 timestamp in UTC, as the Rust SDK parses it."""
    bad = Malformed(f"not an RFC 3339 timestamp: {json.dumps(truncate(text, 40))}")
    m = TIMESTAMP.fullmatch(text)
    if m is None:
        raise bad
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction = m.group(7)
    nanosecond = 0
    if fraction is not None:
        if len(fraction) > 9:
            raise bad
        nanosecond = int(fraction) * 10 ** (9 - len(fraction))
    offset = 0
    if m.group(8) is None:
        hours, minutes = int(m.group(10)), int(m.group(11))
        if hours > 23 or minutes > 59:
            raise bad
        offset = (hours * 3600 + minutes * 60) * (1 if m.group(9) == "+" else -1)
    if not 1 <= month <= 12 or day == 0 or day > days_in_month(year, month):
        raise bad
    if hour > 23 or minute > 59 or second > 60:
        raise bad
    seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return t.Timestamp(seconds=seconds - offset, nanoseconds=nanosecond)


# ---- the decoder ----


def dose(item):
    d = item["dose"]
    if d is None:
        raise Malformed(f"{item['type']} needs a dose")
    assisted = d["assisted"]
    return t.Dose(
        dose_id=d["id"],
        scheduled_for=None if d["scheduled"] is None else parse_rfc3339(d["scheduled"]),
        assistance=t.Assistance.UNKNOWN
        if assisted is None
        else (t.Assistance.ASSISTED if assisted else t.Assistance.UNASSISTED),
    )


S = t.Severity
SIMPLE = {
    "supply_empty": (t.EventKind_SupplyEmpty, S.SERIOUS),
    "jam": (t.EventKind_RollJammed, S.SERIOUS),
    "lid_open": (t.EventKind_LidOpened, S.MODERATE),
    "lid_closed": (t.EventKind_LidClosed, S.NORMAL),
    "power_lost": (t.EventKind_MainsPowerLost, S.MODERATE),
    "power_restored": (t.EventKind_MainsPowerRestored, S.NORMAL),
    "offline": (t.EventKind_Offline, S.SERIOUS),
    "online": (t.EventKind_Online, S.NORMAL),
}
WITH_DOSE = {
    "dose_available": (t.EventKind_DoseAvailable, S.NORMAL),
    "dose_taken": (t.EventKind_DoseDispensed, S.NORMAL),
    "prn_dose_taken": (t.EventKind_AsNeededDoseDispensed, S.NORMAL),
    "dose_missed": (t.EventKind_DoseMissed, S.SERIOUS),
    "dose_not_confirmed": (t.EventKind_DoseNotConfirmed, S.MODERATE),
}
WITH_SUPPLY = {
    "refill": (t.EventKind_Refilled, S.NORMAL),
    "supply_low": (t.EventKind_SupplyLow, S.MODERATE),
}


def event(serial, item):
    if not 1 <= utf8_length(item["id"]) <= 128:
        raise Malformed("id must be 1 to 128 bytes")
    occurred_at = parse_rfc3339(item["at"])
    kind_name = item["type"]
    if kind_name in WITH_DOSE:
        make, severity = WITH_DOSE[kind_name]
        kind = make(dose(item))
    elif kind_name in WITH_SUPPLY:
        make, severity = WITH_SUPPLY[kind_name]
        kind = make(t.Supply(doses_remaining=item["doses_remaining"]))
    elif kind_name in SIMPLE:
        make, severity = SIMPLE[kind_name]
        kind = make()
    elif kind_name == "battery_low":
        level = item["battery"]
        kind = t.EventKind_BatteryLow(t.Battery(level_percent=level if level is not None and level <= 100 else None))
        severity = S.MODERATE
    elif kind_name == "fault":
        code = item["code"]
        if not code or utf8_length(code) > 32:
            raise Malformed("fault needs a code of 1 to 32 bytes")
        kind, severity = t.EventKind_TechnicalFault(t.Fault(code=code)), S.SERIOUS
    else:
        raise Unsupported(f"event type {json.dumps(truncate(kind_name, 40))}")
    text = item["text"]
    return t.Event(
        supplier_event_id=item["id"],
        device_serial=serial,
        gateway_serial=None,
        occurred_at=occurred_at,
        kind=kind,
        severity=severity,
        detail=None if text is None else truncate(text, 1024),
    )


def decode(message):
    base = message.content_type.split(";")[0].strip(RUST_WHITESPACE)
    if not base.isascii() or base.lower() not in CONTENT_TYPES:
        raise Unsupported(
            f"content type {json.dumps(truncate(message.content_type, 100))} (accepted: {', '.join(CONTENT_TYPES)})"
        )
    batch = shape(parse(message.payload), "message", {"serial": "string", "events": "items"})
    if not 1 <= utf8_length(batch["serial"]) <= 64:
        raise Malformed("serial must be 1 to 64 bytes")
    events = []
    for index, item in enumerate(batch["events"]):
        try:
            events.append(event(batch["serial"], item))
        except Malformed as e:
            raise Malformed(f"events[{index}]: {e}") from None
        except Unsupported as e:
            raise Unsupported(f"events[{index}]: {e}") from None
    return events


class Adapter(exports.Adapter):
    def describe(self):
        return t.AdapterInfo(
            supplier="Velferd reference",
            product="Reference medication dispenser (JSON)",
            adapter_version="1.0.0",
            device_classes=[t.DeviceClass.MEDICATION_DISPENSER],
            content_types=list(CONTENT_TYPES),
        )

    def decode(self, message):
        try:
            return decode(message)
        except Malformed as e:
            raise Err(t.DecodeError_Malformed(str(e))) from None
        except Unsupported as e:
            raise Err(t.DecodeError_Unsupported(str(e))) from None

    def encode_command(self, device_serial, command):
        if isinstance(command, t.Command_TestAlarm):
            raise Err(t.CommandError_Unsupported("the dispenser has no alarm to test"))
        times = command.value
        if not 1 <= len(times) <= 8:
            raise Err(t.CommandError_Invalid("a schedule has 1 to 8 times a day"))
        slots = []
        for time in times:
            if time.hour > 23 or time.minute > 59:
                raise Err(t.CommandError_Invalid(f"no such time {time.hour}:{time.minute}"))
            slots.append(f"{time.hour:02}:{time.minute:02}")
        slots.sort()
        if any(a == b for a, b in zip(slots, slots[1:])):
            raise Err(t.CommandError_Invalid("the schedule repeats a time"))
        # serde_json's bytes: keys sorted, no spaces, non-ASCII as UTF-8.
        body = json.dumps(
            {"serial": device_serial, "command": "set_schedule", "times": slots},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return t.EncodedCommand(content_type=CONTENT_TYPES[1], body=body.encode("utf-8"))
