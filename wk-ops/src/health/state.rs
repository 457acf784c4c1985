//! The alert state machine and its JSON file. An alert is keyed by (check, node) and moves
//! pending → firing → resolved: pending until it has failed for its hold time (`nodeDownFor`,
//! `noLeaderFor`), firing until the check passes, resolved until the RESOLVED mail is out.
//! News (new firing, reminder after `repeatInterval`, resolved) is derived from the state, so
//! a mail that could not be sent is simply news again on the next run — nothing is lost.
//! The file is replaced atomically (temp file, fsync, rename), mode 0600.

use super::checks::Finding;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// Version of the state file format.
pub const VERSION: u32 = 1;

/// Everything `wk-ops health` remembers between runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub cluster: String,
    /// Alerts by key (`check/node` or `check/cluster`).
    #[serde(default)]
    pub alerts: BTreeMap<String, Alert>,
    /// Highest raft term seen per run within the last hour (for elections per hour).
    #[serde(default)]
    pub terms: Vec<TermSample>,
}

/// One (check, node) alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub check: String,
    pub node: Option<u64>,
    pub summary: String,
    pub detail: String,
    pub status: Status,
    /// First seen failing.
    #[serde(with = "ts")]
    pub since: DateTime<Utc>,
    #[serde(with = "ts_opt", default)]
    pub firing_since: Option<DateTime<Utc>>,
    /// Last delivered in a FIRING or reminder mail; None until the first one is out.
    #[serde(with = "ts_opt", default)]
    pub last_mailed: Option<DateTime<Utc>>,
    #[serde(with = "ts_opt", default)]
    pub resolved_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Failing, but not for its hold time yet: no mail.
    Pending,
    Firing,
    /// Cleared; kept until the RESOLVED mail is delivered.
    Resolved,
}

/// The highest term seen at one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TermSample {
    #[serde(with = "ts")]
    pub at: DateTime<Utc>,
    pub term: u64,
}

/// What a mail reports about one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NewsKind {
    Firing,
    Reminder,
    Resolved,
}

/// One piece of news: an alert key and why it is mailed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct News {
    pub key: String,
    pub kind: NewsKind,
}

/// Loading or saving the state file failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the state file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the state file {path} is not valid ({reason}); move it away to start with no alerts")]
    Invalid { path: String, reason: String },
    #[error("the state file {path} belongs to cluster {found}, not {expected}")]
    OtherCluster {
        path: String,
        found: String,
        expected: String,
    },
    #[error("cannot write the state file {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl State {
    /// An empty state for `cluster`.
    pub fn new(cluster: &str) -> State {
        State {
            version: VERSION,
            cluster: cluster.into(),
            ..State::default()
        }
    }

    /// Reads `path`; a missing file is an empty state.
    pub fn load(path: &Path, cluster: &str) -> Result<State, StateError> {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::new(cluster)),
            Err(source) => {
                return Err(StateError::Read {
                    path: shown,
                    source,
                })
            }
        };
        let state: State = serde_json::from_str(&text).map_err(|e| StateError::Invalid {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        if state.version != VERSION {
            return Err(StateError::Invalid {
                path: shown,
                reason: format!("format version {}, expected {VERSION}", state.version),
            });
        }
        if state.cluster != cluster {
            return Err(StateError::OtherCluster {
                path: shown,
                found: state.cluster,
                expected: cluster.into(),
            });
        }
        Ok(state)
    }

    /// Replaces `path` atomically (0600), creating its directory if needed.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let err = |source| StateError::Write {
            path: path.display().to_string(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".wk-ops-health")
            .tempfile_in(dir)
            .map_err(err)?;
        let text = serde_json::to_string_pretty(self).map_err(|e| err(e.into()))? + "\n";
        tmp.write_all(text.as_bytes()).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Applies one run's findings at `now`.
    pub fn step(&mut self, findings: &[Finding], now: DateTime<Utc>) {
        let mut seen = std::collections::BTreeSet::new();
        for f in findings {
            let key = f.key();
            seen.insert(key.clone());
            let alert = self.alerts.entry(key).or_insert_with(|| Alert {
                check: f.check.name().into(),
                node: f.node,
                summary: String::new(),
                detail: String::new(),
                status: Status::Pending,
                since: now,
                firing_since: None,
                last_mailed: None,
                resolved_at: None,
            });
            alert.summary.clone_from(&f.summary);
            alert.detail.clone_from(&f.detail);
            match alert.status {
                Status::Pending if now - alert.since >= chrono_of(f.hold) => {
                    alert.status = Status::Firing;
                    alert.firing_since = Some(now);
                }
                Status::Pending | Status::Firing => {}
                // Back before its RESOLVED mail went out: it never stopped, as far as
                // anyone was told.
                Status::Resolved => {
                    alert.status = Status::Firing;
                    alert.resolved_at = None;
                }
            }
        }
        self.alerts.retain(|key, alert| {
            if seen.contains(key) {
                return true;
            }
            match alert.status {
                Status::Pending => false,
                Status::Firing => {
                    alert.status = Status::Resolved;
                    alert.resolved_at = Some(now);
                    true
                }
                Status::Resolved => true,
            }
        });
    }

    /// What the next mail must say, firing first.
    pub fn news(&self, now: DateTime<Utc>, repeat: Duration) -> Vec<News> {
        let mut news: Vec<News> = self
            .alerts
            .iter()
            .filter_map(|(key, a)| {
                let kind = match (a.status, a.last_mailed) {
                    (Status::Firing, None) => NewsKind::Firing,
                    (Status::Firing, Some(t)) if now - t >= chrono_of(repeat) => NewsKind::Reminder,
                    (Status::Resolved, _) => NewsKind::Resolved,
                    _ => return None,
                };
                Some(News {
                    key: key.clone(),
                    kind,
                })
            })
            .collect();
        news.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
        news
    }

    /// Marks `news` as delivered at `now`.
    pub fn delivered(&mut self, news: &[News], now: DateTime<Utc>) {
        for n in news {
            match n.kind {
                NewsKind::Firing | NewsKind::Reminder => {
                    if let Some(a) = self.alerts.get_mut(&n.key) {
                        a.last_mailed = Some(now);
                    }
                }
                NewsKind::Resolved => {
                    self.alerts.remove(&n.key);
                }
            }
        }
    }

    /// Firing alerts that are not part of `news` (already notified, no reminder due).
    pub fn still_firing<'a>(&'a self, news: &[News]) -> Vec<&'a Alert> {
        self.alerts
            .iter()
            .filter(|(k, a)| a.status == Status::Firing && !news.iter().any(|n| &n.key == *k))
            .map(|(_, a)| a)
            .collect()
    }

    /// Records the highest term seen now and returns how often it rose in the last hour.
    pub fn record_term(&mut self, term: Option<u64>, now: DateTime<Utc>) -> u64 {
        let hour_ago = now - ChronoDuration::hours(1);
        // Keep the newest sample from before the hour as the baseline.
        let baseline = self.terms.iter().rposition(|s| s.at < hour_ago);
        if let Some(b) = baseline {
            self.terms.drain(..b);
        }
        if let Some(term) = term {
            self.terms.push(TermSample { at: now, term });
        }
        let min = self.terms.iter().map(|s| s.term).min();
        let max = self.terms.iter().map(|s| s.term).max();
        match (min, max) {
            (Some(lo), Some(hi)) => hi - lo,
            _ => 0,
        }
    }
}

fn chrono_of(d: Duration) -> ChronoDuration {
    ChronoDuration::from_std(d).unwrap_or(ChronoDuration::MAX)
}

/// RFC 3339 timestamps in the file.
mod ts {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

mod ts_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::ts::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| {
                DateTime::parse_from_rfc3339(&s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::super::checks::Check;
    use super::*;

    const REPEAT: Duration = Duration::from_secs(4 * 3600);

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn down(node: u64, hold: u64) -> Finding {
        Finding {
            check: Check::NodeHealth,
            node: Some(node),
            summary: format!("node {node} down"),
            detail: "connection refused".into(),
            hold: Duration::from_secs(hold),
        }
    }

    fn kinds(s: &State, now: DateTime<Utc>) -> Vec<(String, NewsKind)> {
        s.news(now, REPEAT)
            .into_iter()
            .map(|n| (n.key, n.kind))
            .collect()
    }

    /// Runs one step and "delivers" whatever news it has; returns that news.
    fn run(s: &mut State, findings: &[Finding], now: DateTime<Utc>) -> Vec<(String, NewsKind)> {
        s.step(findings, now);
        let news = s.news(now, REPEAT);
        s.delivered(&news, now);
        news.into_iter().map(|n| (n.key, n.kind)).collect()
    }

    #[test]
    fn fires_once_reminds_after_repeat_interval_and_resolves_once() {
        let mut s = State::new("c");
        assert!(run(&mut s, &[], t(0)).is_empty());
        let key = "node_health/1002".to_string();
        assert_eq!(
            run(&mut s, &[down(1002, 0)], t(10)),
            [(key.clone(), NewsKind::Firing)]
        );
        assert!(run(&mut s, &[down(1002, 0)], t(70)).is_empty());
        assert!(run(&mut s, &[down(1002, 0)], t(10 + 4 * 3600 - 1)).is_empty());
        assert_eq!(
            run(&mut s, &[down(1002, 0)], t(10 + 4 * 3600)),
            [(key.clone(), NewsKind::Reminder)]
        );
        assert_eq!(run(&mut s, &[], t(20_000)), [(key, NewsKind::Resolved)]);
        assert!(s.alerts.is_empty());
        assert!(run(&mut s, &[], t(20_060)).is_empty());
    }

    #[test]
    fn pending_until_the_hold_time_and_forgotten_if_it_clears_before() {
        let mut s = State::new("c");
        assert!(run(&mut s, &[down(1, 60)], t(0)).is_empty());
        assert_eq!(s.alerts["node_health/1"].status, Status::Pending);
        assert!(run(&mut s, &[down(1, 60)], t(59)).is_empty());
        // Cleared while pending: no mail at all.
        assert!(run(&mut s, &[], t(61)).is_empty());
        assert!(s.alerts.is_empty());
        assert!(run(&mut s, &[down(1, 60)], t(100)).is_empty());
        assert_eq!(
            run(&mut s, &[down(1, 60)], t(160)),
            [("node_health/1".into(), NewsKind::Firing)]
        );
        assert_eq!(s.alerts["node_health/1"].since, t(100));
    }

    #[test]
    fn undelivered_news_stays_news() {
        let mut s = State::new("c");
        s.step(&[down(1, 0)], t(0));
        // The mail failed: nothing marked delivered.
        assert_eq!(
            kinds(&s, t(0)),
            [("node_health/1".into(), NewsKind::Firing)]
        );
        s.step(&[down(1, 0)], t(60));
        assert_eq!(
            kinds(&s, t(60)),
            [("node_health/1".into(), NewsKind::Firing)]
        );
        let news = s.news(t(60), REPEAT);
        s.delivered(&news, t(60));
        // It clears; the RESOLVED mail fails twice, then goes out.
        s.step(&[], t(120));
        assert_eq!(
            kinds(&s, t(120)),
            [("node_health/1".into(), NewsKind::Resolved)]
        );
        s.step(&[], t(180));
        assert_eq!(
            kinds(&s, t(180)),
            [("node_health/1".into(), NewsKind::Resolved)]
        );
        let news = s.news(t(180), REPEAT);
        s.delivered(&news, t(180));
        assert!(s.alerts.is_empty());
    }

    #[test]
    fn a_flap_before_the_resolved_mail_keeps_it_firing_without_a_new_mail() {
        let mut s = State::new("c");
        run(&mut s, &[down(1, 0)], t(0));
        s.step(&[], t(60)); // resolved, mail not sent
        assert!(run(&mut s, &[down(1, 0)], t(120)).is_empty());
        assert_eq!(s.alerts["node_health/1"].status, Status::Firing);
    }

    #[test]
    fn grouped_news_is_sorted_firing_first() {
        let mut s = State::new("c");
        run(&mut s, &[down(1, 0)], t(0));
        s.step(&[down(2, 0), down(3, 0)], t(60));
        assert_eq!(
            kinds(&s, t(60)),
            [
                ("node_health/2".into(), NewsKind::Firing),
                ("node_health/3".into(), NewsKind::Firing),
                ("node_health/1".into(), NewsKind::Resolved),
            ]
        );
    }

    #[test]
    fn elections_count_term_rises_within_the_hour() {
        let mut s = State::new("c");
        assert_eq!(s.record_term(Some(5), t(0)), 0);
        assert_eq!(s.record_term(Some(7), t(60)), 2);
        assert_eq!(s.record_term(None, t(120)), 2);
        assert_eq!(s.record_term(Some(8), t(3700)), 1);
    }

    #[test]
    fn the_file_round_trips_and_refuses_garbage_and_other_clusters() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("sub/state.json");
        let mut s = State::new("c");
        s.step(&[down(1, 0)], t(0));
        s.record_term(Some(3), t(0));
        s.save(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(State::load(&path, "c").unwrap(), s);
        assert!(matches!(
            State::load(&path, "other"),
            Err(StateError::OtherCluster { .. })
        ));
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(
            State::load(&path, "c"),
            Err(StateError::Invalid { .. })
        ));
        assert_eq!(
            State::load(&d.path().join("none.json"), "c").unwrap(),
            State::new("c")
        );
    }
}
