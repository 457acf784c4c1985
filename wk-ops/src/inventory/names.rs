//! Checked strings of the inventory: hosts, absolute paths, account and unit names, calendar
//! expressions, e-mail addresses, command patterns. Strings that end up in unit files,
//! nginx/haproxy configs or shell commands are limited to characters that need no quoting
//! there, so a value can never break out of its line.

use serde::{de, Deserialize, Deserializer, Serialize};
use std::fmt;

/// Defines a string newtype whose values pass `check` at parse time.
macro_rules! checked_string {
    ($(#[$m:meta])* $name:ident, $check:path) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// A value from a known-good literal (built-in defaults).
            pub fn lit(s: &str) -> Self {
                $name(s.to_string())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $check(&s).map_err(de::Error::custom)?;
                Ok($name(s))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_string!(
    /// A host: IPv4 address, IPv6 address (without brackets) or DNS name.
    Host,
    check_host
);
checked_string!(
    /// An absolute path made of characters that need no quoting in unit and proxy files.
    AbsPath,
    check_abs_path
);
checked_string!(
    /// An absolute path that may contain `{id}` (replaced by the node id).
    PathPattern,
    check_path_pattern
);
checked_string!(
    /// An absolute path that may contain `*` wildcards (nginx `include`).
    AbsGlob,
    check_abs_glob
);
checked_string!(
    /// A systemd unit name that may contain `{id}`, e.g. "wukongim@{id}".
    UnitPattern,
    check_unit_pattern
);
checked_string!(
    /// A shell command that may contain `{id}`, `{name}` (the service name) and `{host}`.
    CommandPattern,
    check_command_pattern
);
checked_string!(
    /// A path for the SSH client: absolute or starting with `~/`.
    SshPath,
    check_ssh_path
);
checked_string!(
    /// A name used in file names, labels and unit names: letters, digits, `.`, `_`, `-`.
    Name,
    check_name
);
checked_string!(
    /// A Unix user or group name.
    Account,
    check_account
);
checked_string!(
    /// A systemd calendar expression (`OnCalendar=`), e.g. "daily" or "*-*-* 03:00:00".
    Calendar,
    check_calendar
);
checked_string!(
    /// An e-mail address.
    Email,
    check_email
);
checked_string!(
    /// A `host:port` address.
    HostPort,
    check_host_port
);
checked_string!(
    /// One line of text with no control characters.
    Line,
    check_line
);

/// Checks an IPv4/IPv6 literal or a DNS name.
pub fn check_host(s: &str) -> Result<(), String> {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("`{s}` is not an IP address or host name"))
    }
}

fn path_chars_ok(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+@:,=".contains(c))
}

/// Checks an absolute path whose characters need no quoting anywhere we write it.
pub fn check_abs_path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err(format!("`{s}` is not an absolute path"));
    }
    if !path_chars_ok(s) {
        return Err(format!(
            "`{s}` contains characters other than letters, digits and / . _ - + @ : , ="
        ));
    }
    if s.split('/').any(|c| c == "..") {
        return Err(format!("`{s}` contains `..`"));
    }
    Ok(())
}

fn check_path_pattern(s: &str) -> Result<(), String> {
    let plain = s.replace("{id}", "1");
    if plain.contains(['{', '}']) {
        return Err(format!("`{s}`: the only placeholder allowed is {{id}}"));
    }
    check_abs_path(&plain).map_err(|_| format!("`{s}` is not an absolute path of plain characters"))
}

fn check_abs_glob(s: &str) -> Result<(), String> {
    check_abs_path(&s.replace('*', "x")).map_err(|_| {
        format!("`{s}` is not an absolute path (letters, digits, / . _ - + @ : , = *)")
    })
}

fn check_unit_pattern(s: &str) -> Result<(), String> {
    let plain = s.replace("{id}", "1");
    let ok = !plain.is_empty()
        && plain.len() <= 200
        && plain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@._:-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a unit name (letters, digits, @ . _ : - and the placeholder {{id}})"
        ))
    }
}

fn check_command_pattern(s: &str) -> Result<(), String> {
    check_line(s)?;
    let plain = s
        .replace("{id}", "")
        .replace("{name}", "")
        .replace("{host}", "");
    if plain.contains(['{', '}']) {
        return Err(format!(
            "`{s}`: the placeholders allowed are {{id}}, {{name}} and {{host}}"
        ));
    }
    Ok(())
}

fn check_ssh_path(s: &str) -> Result<(), String> {
    match s.strip_prefix("~/") {
        Some(rest) if path_chars_ok(rest) && !rest.is_empty() => Ok(()),
        Some(_) => Err(format!("`{s}` contains unusual characters")),
        None => check_abs_path(s),
    }
}

fn check_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a name (1-63 letters, digits, `.`, `_` or `-`)"
        ))
    }
}

fn check_account(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a user or group name (lowercase letters, digits, `_`, `-`)"
        ))
    }
}

fn check_calendar(s: &str) -> Result<(), String> {
    let ok = !s.trim().is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || " *:/-.,~".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a calendar expression such as \"daily\" or \"*-*-* 03:00:00\""
        ))
    }
}

fn check_email(s: &str) -> Result<(), String> {
    let ok = match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && check_host(domain).is_ok()
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("`{s}` is not an e-mail address"))
    }
}

/// Checks `host:port` (IPv6 hosts in brackets).
pub fn check_host_port(s: &str) -> Result<(), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("`{s}` is not host:port"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    check_host(host).map_err(|e| format!("`{s}`: {e}"))?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("`{s}` has an invalid port `{port}`")),
    }
}

fn check_line(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().any(char::is_control) {
        return Err(format!("{s:?} contains control characters"));
    }
    Ok(())
}

/// `host:port`, with IPv6 hosts in brackets.
pub fn host_port(host: &str, port: super::values::Port) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::values::Port;

    #[test]
    fn hosts_and_paths() {
        for ok in ["192.168.1.101", "::1", "node-1.example.com", "localhost"] {
            assert!(check_host(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "-x.com", "x;y", "[::1]", "a..b"] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
        assert!(check_abs_path("/var/lib/wukongim").is_ok());
        for bad in ["var/lib", "/a b", "/a;b", "/a/../b", "/a%i"] {
            assert!(check_abs_path(bad).is_err(), "{bad}");
        }
        assert!(check_path_pattern("/var/log/wukongim/{id}.log").is_ok());
        assert!(check_path_pattern("/var/log/{name}.log").is_err());
        assert_eq!(host_port("::1", Port(80)), "[::1]:80");
        assert!(check_host_port("[::1]:9093").is_ok());
        assert!(check_host_port("h:0").is_err());
    }
}
