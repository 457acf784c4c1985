//! The inventory: one YAML file that describes a whole fleet (cluster settings, nodes, load
//! balancer, alerting, backups). Loading it is a pure function from text to a resolved
//! [`Inventory`] or to every problem found, each with its key path and line.
//!
//! Pipeline: YAML → per-section serde (unknown keys refused; one error per section or node,
//! all sections tried) → defaults applied (`resolve`) → cross-key checks (`check`).

pub mod check;
pub mod model;
pub mod names;
pub mod resolve;
pub mod schema;
pub mod values;

pub use model::*;

use crate::yaml::{self, LineIndex, Spot};
use serde::de::DeserializeOwned;
use serde_yaml::Value;
use std::fmt;
use std::path::Path;

/// One thing wrong with (or worth knowing about) an inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path such as `nodes[1].ports.api`; empty for whole-file problems.
    pub path: String,
    /// Where the key (or its nearest written ancestor) is in the file.
    pub spot: Option<Spot>,
    pub message: String,
}

impl Problem {
    /// `file:line:col: path: message`.
    pub fn display_in(&self, file: &str) -> String {
        let mut s = file.to_string();
        if let Some(spot) = self.spot {
            s.push_str(&format!(":{}:{}", spot.line, spot.col));
        }
        if !self.path.is_empty() {
            s.push_str(&format!(": {}", self.path));
        }
        s.push_str(&format!(": {}", self.message));
        s
    }
}

/// Errors and warnings collected while loading.
#[derive(Debug, Clone, Default)]
pub struct Problems {
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl Problems {
    pub fn error(&mut self, path: &str, message: String) {
        self.errors.push(Problem {
            path: path.to_string(),
            spot: None,
            message,
        });
    }
    pub fn warn(&mut self, path: &str, message: String) {
        self.warnings.push(Problem {
            path: path.to_string(),
            spot: None,
            message,
        });
    }
    fn locate(&mut self, index: &LineIndex) {
        for p in self.errors.iter_mut().chain(self.warnings.iter_mut()) {
            if p.spot.is_none() {
                p.spot = index.locate(&p.path);
            }
        }
        let key = |p: &Problem| (p.spot.map_or((0, 0), |s| (s.line, s.col)), p.path.clone());
        self.errors.sort_by_key(key);
        self.warnings.sort_by_key(key);
    }
}

/// Why an inventory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read inventory {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Invalid),
}

/// Every error found in one inventory (plus its warnings, which are shown alongside).
#[derive(Debug, Clone)]
pub struct Invalid {
    pub file: String,
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "invalid inventory {} ({n} problem{}):",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.errors {
            write!(f, "\n  {}", p.display_in(&self.file))?;
        }
        for p in &self.warnings {
            write!(f, "\n  warning: {}", p.display_in(&self.file))?;
        }
        Ok(())
    }
}

/// A valid inventory and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub inventory: Inventory,
    pub file: String,
    pub warnings: Vec<Problem>,
}

impl Loaded {
    /// Warnings as `file:line:col: path: message` lines.
    pub fn warning_lines(&self) -> Vec<String> {
        self.warnings
            .iter()
            .map(|w| w.display_in(&self.file))
            .collect()
    }
}

/// Reads and loads the inventory at `path`.
pub fn load(path: &Path) -> Result<Loaded, InventoryError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| InventoryError::Read {
        file: file.clone(),
        source,
    })?;
    let src = String::from_utf8(bytes).map_err(|_| {
        invalid(
            &file,
            vec![Problem {
                path: String::new(),
                spot: None,
                message: "is not UTF-8 text".into(),
            }],
        )
    })?;
    parse(&src, &file)
}

fn invalid(file: &str, errors: Vec<Problem>) -> InventoryError {
    InventoryError::Invalid(Invalid {
        file: file.to_string(),
        errors,
        warnings: Vec::new(),
    })
}

/// Loads an inventory from text; `file` names it in messages.
pub fn parse(src: &str, file: &str) -> Result<Loaded, InventoryError> {
    let root = yaml::parse(src).map_err(|e| {
        invalid(
            file,
            vec![Problem {
                path: String::new(),
                spot: e.spot,
                message: e.message,
            }],
        )
    })?;
    let mut p = Problems::default();
    let inventory = build(&root, &mut p);
    p.locate(&LineIndex::build(src));
    match inventory {
        Some(inventory) if p.errors.is_empty() => Ok(Loaded {
            inventory,
            file: file.to_string(),
            warnings: p.warnings,
        }),
        _ => Err(InventoryError::Invalid(Invalid {
            file: file.to_string(),
            errors: p.errors,
            warnings: p.warnings,
        })),
    }
}

/// Deserializes and checks every section; `None` when any error was found.
fn build(root: &Value, p: &mut Problems) -> Option<Inventory> {
    let map = match root {
        Value::Mapping(m) => m,
        Value::Null => {
            p.error(
                "",
                "the inventory is empty (it needs at least `cluster:` and `nodes:`)".into(),
            );
            return None;
        }
        other => {
            p.error(
                "",
                format!(
                    "the inventory must be a mapping of sections, not {}",
                    kind(other)
                ),
            );
            return None;
        }
    };
    for key in map.keys() {
        match key.as_str() {
            Some(k) if schema::TOP_LEVEL_KEYS.contains(&k) => {}
            Some(k) => p.error(
                k,
                format!(
                    "unknown key `{k}` (expected one of: {})",
                    schema::TOP_LEVEL_KEYS.join(", ")
                ),
            ),
            None => p.error(
                "",
                format!("section names must be strings, not {}", kind(key)),
            ),
        }
    }
    let get = |k: &str| map.get(k).filter(|v| !v.is_null());

    let cluster: Option<schema::ClusterSection> = match get("cluster") {
        Some(v) => section(v, "cluster", p),
        None => {
            p.error(
                "cluster",
                "missing required section `cluster:` (at least `name:`)".into(),
            );
            None
        }
    };
    let defaults: Option<schema::DefaultsSection> =
        get("defaults").map_or(Some(Default::default()), |v| section(v, "defaults", p));
    let mut entries = Vec::new();
    let mut count = 0;
    match get("nodes") {
        Some(Value::Sequence(items)) => {
            count = items.len();
            for (i, item) in items.iter().enumerate() {
                if let Some(e) = section::<schema::NodeEntry>(item, &yaml::index("nodes", i), p) {
                    entries.push((i, e));
                }
            }
        }
        Some(other) => p.error(
            "nodes",
            format!("must be a list of nodes, not {}", kind(other)),
        ),
        None => p.error(
            "nodes",
            "missing required section `nodes:` (at least one node)".into(),
        ),
    }
    let lb_raw: Option<Option<schema::LoadBalancerSection>> =
        opt_section(get("loadBalancer"), "loadBalancer", p);
    let alerts_raw: Option<Option<schema::AlertsSection>> = opt_section(get("alerts"), "alerts", p);
    let backup_raw: Option<Option<schema::BackupSection>> = opt_section(get("backup"), "backup", p);
    let health_raw: Option<Option<schema::HealthSection>> = opt_section(get("health"), "health", p);
    let monitoring_raw: Option<Option<schema::MonitoringSection>> =
        opt_section(get("monitoring"), "monitoring", p);
    let systemd_raw: Option<Option<schema::SystemdSection>> =
        opt_section(get("systemd"), "systemd", p);

    // Cross-key checks on whatever parsed, so one bad section does not hide the others.
    if let Some(c) = &cluster {
        check::cluster(c, p);
    }
    let mut nodes: Vec<Node> = match &defaults {
        Some(d) => entries
            .iter()
            .map(|(i, e)| resolve::node(d, *i, e))
            .collect(),
        None => Vec::new(),
    };
    if defaults.is_some() {
        check::nodes(count, &entries, &nodes, p);
    }
    nodes.sort_by_key(|n| n.id);
    let load_balancer = lb_raw.as_ref().and_then(|raw| {
        raw.as_ref().map(|raw| {
            let lb = resolve::load_balancer(raw);
            check::load_balancer(raw, &lb, p);
            lb
        })
    });
    if let Some(Some(a)) = &alerts_raw {
        check::alerts(a, p);
    }
    if let Some(Some(b)) = &backup_raw {
        check::backup(b, p);
    }
    if let (Some(c), Some(s)) = (&cluster, &systemd_raw) {
        check::ops_account(c, s.as_ref(), p);
    }
    if let Some(Some(m)) = &monitoring_raw {
        check::prometheus_durations(
            &[
                (
                    "monitoring.scrapeInterval",
                    m.scrape_interval.as_ref().map(|d| d.value),
                ),
                (
                    "monitoring.evaluationInterval",
                    m.evaluation_interval.as_ref().map(|d| d.value),
                ),
            ],
            p,
        );
    }

    let cluster = cluster?;
    let (_, alerts_raw, backup_raw) = (defaults?, alerts_raw?, backup_raw?);
    let (health_raw, monitoring_raw, systemd_raw) = (health_raw?, monitoring_raw?, systemd_raw?);
    if lb_raw.is_none() || entries.len() != count {
        return None;
    }
    let systemd = resolve::systemd(systemd_raw.as_ref());
    Some(Inventory {
        cluster: resolve::cluster(&cluster, &systemd.config_dir),
        nodes,
        load_balancer,
        alerts: resolve::alerts(alerts_raw.as_ref()),
        backup: backup_raw.as_ref().map(resolve::backup),
        health: resolve::health(health_raw.as_ref()),
        monitoring: resolve::monitoring(monitoring_raw.as_ref()),
        systemd,
    })
}

/// An optional section: `Some(None)` when absent, `None` when present but invalid.
fn opt_section<T: DeserializeOwned>(
    v: Option<&Value>,
    path: &str,
    p: &mut Problems,
) -> Option<Option<T>> {
    match v {
        None => Some(None),
        Some(v) => section(v, path, p).map(Some),
    }
}

/// Deserializes one section, turning serde's first error into a problem with its key path.
fn section<T: DeserializeOwned>(v: &Value, path: &str, p: &mut Problems) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(v.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            let inner = e.path().to_string();
            let mut full = path.to_string();
            if inner != "." {
                if !inner.starts_with('[') {
                    full.push('.');
                }
                full.push_str(&inner);
            }
            let (key, message) = humane(&e.into_inner().to_string());
            if let Some(key) = key {
                if !full.ends_with(&format!(".{key}")) && full != key {
                    full = yaml::join(&full, &key);
                }
            }
            p.error(&full, message);
            None
        }
    }
}

/// Keys that exist only to refuse inline secrets; never suggested.
const REFUSED_KEYS: &[&str] = &["managerToken", "token", "password"];

/// Rewrites serde's wording for operators; returns the offending key for unknown fields.
fn humane(msg: &str) -> (Option<String>, String) {
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        if let Some((field, tail)) = rest.split_once('`') {
            let expected: Vec<&str> = tail
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|k| !REFUSED_KEYS.contains(k))
                .collect();
            let hint = if expected.is_empty() {
                "this section takes no keys".to_string()
            } else {
                format!("expected one of: {}", expected.join(", "))
            };
            return (
                Some(field.to_string()),
                format!("unknown key `{field}` ({hint})"),
            );
        }
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.trim_end_matches('`');
        return (Some(field.to_string()), "required key is missing".into());
    }
    let mut m = msg.to_string();
    if let Some(i) = m.find(", expected struct ") {
        m.truncate(i);
        m.push_str(", expected a mapping of keys");
    }
    if let Some(i) = m.find(", expected a sequence") {
        m.truncate(i);
        m.push_str(", expected a list");
    }
    (None, m)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}
