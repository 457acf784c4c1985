//! Checked value types of the inventory: durations, byte sizes, ports. Each refuses bad input
//! at parse time with a message saying what was expected, and keeps the operator's spelling so
//! rendered files show the value as written. Checked strings (hosts, paths, names) are in
//! [`super::names`] and re-exported here.

pub use super::names::*;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A duration written with a unit: "100ms", "5s", "1.5s", "2m", "24h".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dur {
    pub text: String,
    pub value: Duration,
}

impl Dur {
    /// A duration from a known-good literal (built-in defaults).
    pub fn lit(text: &str) -> Dur {
        let value = parse_duration(text).unwrap_or_default();
        Dur {
            text: text.to_string(),
            value,
        }
    }

    /// Whole seconds, rounded up, at least `min`.
    pub fn ceil_secs(&self, min: u64) -> u64 {
        let s = self.value.as_secs() + u64::from(self.value.subsec_nanos() > 0);
        s.max(min)
    }
}

const DURATION_HINT: &str =
    "expected a number with a unit: ms, s, m or h, e.g. \"100ms\", \"5s\", \"24h\"";

/// Parses one `<number><unit>` duration with unit ns, us, ms, s, m or h.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| c.is_ascii_alphabetic() || c == 'µ')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("`{s}` is not a duration ({DURATION_HINT})");
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    let n: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let secs = n * scale;
    if !secs.is_finite() || secs > 1e10 {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Formats a duration for Prometheus, nginx and HAProxy: an integer in the largest unit that
/// divides it evenly ("4h", "90s", "1500ms").
pub fn plain_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(DURATION_HINT)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                let value = parse_duration(v).map_err(E::custom)?;
                Ok(Dur {
                    text: v.trim().to_string(),
                    value,
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                Err(E::custom(format!("{v} has no unit ({DURATION_HINT})")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                Err(E::custom(format!("{v} has no unit ({DURATION_HINT})")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
                Err(E::custom(format!("{v} has no unit ({DURATION_HINT})")))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// The heartbeat interval: whole seconds (`1`, as the guide writes it) or a duration ("100ms").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    Secs(u64),
    Text(Dur),
}

impl Tick {
    pub fn duration(&self) -> Duration {
        match self {
            Tick::Secs(s) => Duration::from_secs(*s),
            Tick::Text(d) => d.value,
        }
    }
}

impl<'de> Deserialize<'de> for Tick {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Tick;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("whole seconds (e.g. 1) or a duration such as \"100ms\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Tick, E> {
                if v == 0 || v > 3600 {
                    return Err(E::custom(format!("{v} seconds is out of range (1..=3600)")));
                }
                Ok(Tick::Secs(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Tick, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("{v} is negative")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Tick, E> {
                let value = parse_duration(v).map_err(E::custom)?;
                if value < Duration::from_millis(10) || value > Duration::from_secs(3600) {
                    return Err(E::custom(format!("`{v}` is out of range (10ms..=1h)")));
                }
                Ok(Tick::Text(Dur {
                    text: v.trim().to_string(),
                    value,
                }))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Tick {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Tick::Secs(v) => s.serialize_u64(*v),
            Tick::Text(d) => d.serialize(s),
        }
    }
}

/// A byte size: a plain byte count or a number with a unit ("512MiB", "2GB"; KB = 1024 bytes,
/// as WuKongIM reads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Size {
    Bytes(u64),
    Text(String, u64),
}

impl Size {
    pub fn bytes(&self) -> u64 {
        match self {
            Size::Bytes(b) | Size::Text(_, b) => *b,
        }
    }
}

/// Parses "2GB", "512MiB", "64kb", "1048576".
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("`{s}` is not a size (expected bytes or e.g. \"512MiB\", \"2GB\")");
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    let v = n * mult as f64;
    if !v.is_finite() || v >= u64::MAX as f64 {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(v as u64)
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte count or a size such as \"512MiB\" or \"2GB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size::Bytes(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size::Bytes)
                    .map_err(|_| E::custom(format!("{v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                let b = parse_size(v).map_err(E::custom)?;
                Ok(Size::Text(v.trim().to_string(), b))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Size::Bytes(b) => s.serialize_u64(*b),
            Size::Text(t, _) => s.serialize_str(t),
        }
    }
}

/// A TCP port, 1..=65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        match u16::try_from(v) {
            Ok(p) if p > 0 => Ok(Port(p)),
            _ => Err(de::Error::custom(format!("{v} is not a port (1..=65535)"))),
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10ms").unwrap(), Duration::from_millis(10));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        for bad in ["", "10", "fast", "-1s", "1d", "1e9s", "s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(plain_duration(Duration::from_secs(4 * 3600)), "4h");
        assert_eq!(plain_duration(Duration::from_secs(90)), "90s");
        assert_eq!(plain_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2GB").unwrap(), 2 << 30);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("-1").is_err());
    }
}
