//! Value types the config file spells as strings: durations ("10ms", "5s", "24h"), byte sizes
//! ("2GB", "512MiB" or plain bytes), the heartbeat tick (integer seconds or a duration) and
//! `id@host:port` node specs. Each parses strictly and serializes back to the same spelling.
//! The deserializers ([`read_duration`], [`read_tick`], [`read_size`]) are shared with wk-ops'
//! inventory, which reads the same values with a narrower grammar and keeps their spelling.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A duration written as a string like "10ms", "5s", "1m30s", "24h".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
}

/// Parses "100ms", "5s", "1m30s", "24h", "1.5s". Bare numbers are refused: a unit is required.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(d) = humantime::parse_duration(t) {
        return Ok(d);
    }
    // Go-style fractional values such as "1.5s" that humantime refuses.
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!("`{s}` is not a duration (expected e.g. \"100ms\", \"5s\", \"24h\")")
    })?;
    let Some(scale) = duration_unit_secs(unit) else {
        return Err(format!(
            "`{s}` is not a duration (expected e.g. \"100ms\", \"5s\", \"24h\")"
        ));
    };
    let secs = n * scale;
    if !secs.is_finite() || !(0.0..=1e12).contains(&secs) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Seconds in one `unit` of a single-unit duration ("1.5s"): ns, us (or µs), ms, s, m, h.
pub fn duration_unit_secs(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return None,
    })
}

/// Formats a duration the way the guide writes them ("10ms", "5s", "24h").
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return humantime::format_duration(d).to_string().replace(' ', "");
    }
    if ms == 0 {
        "0s".into()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read_duration(d, parse_duration, DURATION_HINT).map(|(_, v)| Dur(v))
    }
}

/// The heartbeat interval: the guide writes integer seconds (`heartbeatTick: 1`); a duration
/// string ("100ms") is accepted too so failover can be tuned finer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick(pub Duration);

impl Serialize for Tick {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            s.serialize_u64(d.as_secs())
        } else {
            s.serialize_str(&format_duration(d))
        }
    }
}

impl<'de> Deserialize<'de> for Tick {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read_tick(d, parse_duration).map(|w| Tick(w.value()))
    }
}

/// The range of a heartbeat given as a duration (`spelled` as written): 10ms..=1h.
pub fn check_tick(d: Duration, spelled: &str) -> Result<(), String> {
    if d < Duration::from_millis(10) || d > Duration::from_secs(3600) {
        return Err(format!("`{spelled}` is out of range (10ms..=1h)"));
    }
    Ok(())
}

/// A byte size: plain bytes (1048576) or a string with a unit ("2GB", "512MiB", "64KB").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

/// Parses "2GB", "512MiB", "64kb", "1048576". Decimal units (KB, MB, GB, TB) are taken as powers
/// of 1024 as Go's WuKongIM does; the binary spellings (KiB…) mean the same.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a size (expected bytes or e.g. \"512MiB\", \"2GB\")"))?;
    let mult = size_unit_bytes(unit.trim())
        .ok_or_else(|| format!("`{s}` has an unknown size unit `{unit}`"))?;
    let v = n * mult as f64;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(v as u64)
}

/// Bytes in one `unit` of a size, any case: none or b, k/kb/kib, m/mb/mib, g/gb/gib,
/// t/tb/tib (powers of 1024 for the decimal spellings too, as WuKongIM reads them).
pub fn size_unit_bytes(unit: &str) -> Option<u64> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    })
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b = self.0;
        for (unit, m) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if b >= m && b.is_multiple_of(m) {
                return s.serialize_str(&format!("{}{unit}", b / m));
            }
        }
        s.serialize_u64(b)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read_size(d, parse_size).map(|w| ByteSize(w.value()))
    }
}

/// How a tick or size was written: a bare number, or a string (trimmed) with what it means.
/// The server keeps only the value; wk-ops' inventory keeps the text, so rendered files show
/// it as the operator wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written<T> {
    Number(T),
    Text(String, T),
}

impl<T: Copy> Written<T> {
    pub fn value(&self) -> T {
        match self {
            Written::Number(v) | Written::Text(_, v) => *v,
        }
    }
}

/// A parser of the string form of a value (the server's grammar, or the inventory's narrower one).
pub type Parse<T> = fn(&str) -> Result<T, String>;

/// What the server's durations look like, for error messages.
const DURATION_HINT: &str = "a duration string such as \"10ms\", \"5s\" or \"24h\"";

/// Reads a duration string with `parse`; a bare number is refused, saying a unit is missing
/// (`hint` says what was expected). Returns the trimmed text and the duration.
pub fn read_duration<'de, D: Deserializer<'de>>(
    d: D,
    parse: Parse<Duration>,
    hint: &'static str,
) -> Result<(String, Duration), D::Error> {
    struct V(Parse<Duration>, &'static str);
    impl de::Visitor<'_> for V {
        type Value = (String, Duration);
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.1)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let d = (self.0)(v).map_err(E::custom)?;
            Ok((v.trim().to_string(), d))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Err(E::custom(format!("{v} has no unit ({})", self.1)))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Err(E::custom(format!("{v} has no unit ({})", self.1)))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Err(E::custom(format!("{v} has no unit ({})", self.1)))
        }
    }
    d.deserialize_any(V(parse, hint))
}

/// Reads a heartbeat tick: whole seconds (1..=3600) or a duration string read with `parse`
/// (10ms..=1h).
pub fn read_tick<'de, D: Deserializer<'de>>(
    d: D,
    parse: Parse<Duration>,
) -> Result<Written<Duration>, D::Error> {
    struct V(Parse<Duration>);
    impl de::Visitor<'_> for V {
        type Value = Written<Duration>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("whole seconds (e.g. 1) or a duration string (e.g. \"100ms\")")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            if v == 0 || v > 3600 {
                return Err(E::custom(format!("{v} seconds is out of range (1..=3600)")));
            }
            Ok(Written::Number(Duration::from_secs(v)))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map_err(|_| E::custom(format!("{v} is negative")))
                .and_then(|v| self.visit_u64(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let d = (self.0)(v).map_err(E::custom)?;
            check_tick(d, v).map_err(E::custom)?;
            Ok(Written::Text(v.trim().to_string(), d))
        }
    }
    d.deserialize_any(V(parse))
}

/// Reads a byte size: a byte count, or a size string read with `parse`.
pub fn read_size<'de, D: Deserializer<'de>>(
    d: D,
    parse: Parse<u64>,
) -> Result<Written<u64>, D::Error> {
    struct V(Parse<u64>);
    impl de::Visitor<'_> for V {
        type Value = Written<u64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a byte count or a size string such as \"512MiB\" or \"2GB\"")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Written::Number(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(Written::Number)
                .map_err(|_| E::custom(format!("{v} is negative")))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let b = (self.0)(v).map_err(E::custom)?;
            Ok(Written::Text(v.trim().to_string(), b))
        }
    }
    d.deserialize_any(V(parse))
}

/// One entry of `cluster.initNodes`: `"1001@192.168.1.101:11110"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub id: u64,
    pub addr: String,
}

impl NodeSpec {
    pub fn parse(s: &str) -> Result<NodeSpec, String> {
        let (id, addr) = s
            .split_once('@')
            .ok_or_else(|| format!("`{s}` is not of the form \"id@host:port\""))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: node id `{id}` is not a positive integer"))?;
        if id == 0 {
            return Err(format!("`{s}`: node id 0 is reserved"));
        }
        check_host_port(addr.trim()).map_err(|e| format!("`{s}`: {e}"))?;
        Ok(NodeSpec {
            id,
            addr: addr.trim().to_string(),
        })
    }
}

/// Checks that `s` looks like `host:port` with a non-empty host and a valid port.
pub fn check_host_port(s: &str) -> Result<(), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("`{s}` is not host:port"))?;
    if host.is_empty() {
        return Err(format!("`{s}` has an empty host"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("`{s}` has an invalid port `{port}`"))?;
    Ok(())
}

impl fmt::Display for NodeSpec {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.addr)
    }
}

impl Serialize for NodeSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NodeSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NodeSpec::parse(&s).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10ms").unwrap(), Duration::from_millis(10));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("fast").is_err());
        for d in ["10ms", "5s", "2m", "24h"] {
            assert_eq!(format_duration(parse_duration(d).unwrap()), d);
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2GB").unwrap(), 2 << 30);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert!(parse_size("12 parsecs").is_err());
    }

    #[test]
    fn node_specs() {
        let n = NodeSpec::parse("1001@192.168.1.101:11110").unwrap();
        assert_eq!((n.id, n.addr.as_str()), (1001, "192.168.1.101:11110"));
        assert!(NodeSpec::parse("1001-192.168.1.101:11110").is_err());
        assert!(NodeSpec::parse("x@h:1").is_err());
        assert!(NodeSpec::parse("1@h:99999").is_err());
    }
}
