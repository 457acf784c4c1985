//! Checked value types of the inventory: durations, byte sizes, ports. Each refuses bad input
//! at parse time with a message saying what was expected, and keeps the operator's spelling so
//! rendered files show the value as written. Checked strings (hosts, paths, names) are in
//! [`super::names`] and re-exported here.
//!
//! What a value means is the server's reading ([`wukongim::config`]): the units of durations
//! and sizes, the heartbeat's range, the spelling of durations in rendered files. The
//! inventory's grammar is narrower than the server's (one number and one unit, no "1m30s" or
//! "1d", no signs or spaces), since values also go to nginx, HAProxy, Prometheus and systemd.

pub use super::names::*;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;
use wukongim::config as server;
use wukongim::config::Written;

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
    let n = plain_number(num).ok_or_else(bad)?;
    let scale = server::duration_unit_secs(unit).ok_or_else(bad)?;
    let secs = n * scale;
    if !secs.is_finite() || secs > 1e10 {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// An unsigned decimal number without exponent ("5", "1.5", ".5").
fn plain_number(num: &str) -> Option<f64> {
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    num.parse().ok()
}

/// Formats a duration for Prometheus, nginx and HAProxy: an integer in the largest unit that
/// divides it evenly ("4h", "90s", "1500ms"); below a millisecond is dropped. This is the
/// server's spelling of whole milliseconds.
pub fn plain_duration(d: Duration) -> String {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    server::format_duration(Duration::from_millis(ms))
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (text, value) = server::read_duration(d, parse_duration, DURATION_HINT)?;
        Ok(Dur { text, value })
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

// The range (1..=3600 s, 10ms..=1h) and its messages are the server's.
impl<'de> Deserialize<'de> for Tick {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match server::read_tick(d, parse_duration)? {
            Written::Number(v) => Tick::Secs(v.as_secs()),
            Written::Text(text, value) => Tick::Text(Dur { text, value }),
        })
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
    let n = plain_number(num).ok_or_else(bad)?;
    let mult = server::size_unit_bytes(unit).ok_or_else(bad)?;
    let v = n * mult as f64;
    if !v.is_finite() || v >= u64::MAX as f64 {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(v as u64)
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match server::read_size(d, parse_size)? {
            Written::Number(b) => Size::Bytes(b),
            Written::Text(text, b) => Size::Text(text, b),
        })
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
    fn values_mean_what_the_server_reads() {
        for d in [
            "3ns", "100us", "250µs", "10ms", "1500ms", "1.5s", "5s", "2m", "90m", "24h", "0.25h",
        ] {
            assert_eq!(parse_duration(d), server::parse_duration(d), "{d}");
        }
        for s in ["0", "1048576", "64kb", "512MiB", "2GB", "1.5g", "3t"] {
            assert_eq!(parse_size(s), server::parse_size(s), "{s}");
        }
        for ms in [0, 1, 1500, 90_000, 4 * 3_600_000] {
            let d = Duration::from_millis(ms);
            assert_eq!(plain_duration(d), server::format_duration(d));
            assert_eq!(parse_duration(&plain_duration(d)), Ok(d));
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2GB").unwrap(), 2 << 30);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("-1").is_err());
    }
}
