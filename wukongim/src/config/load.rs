//! Loading: YAML file (figment, exact path) then `WK_*` environment overrides, into [`Config`].
//! Environment names follow WuKongIM: `WK_` + the key path with dots as underscores, any case
//! (`WK_CLUSTER_NODEID=1002`, `WK_EXTERNAL_IP=10.0.0.5`). Every problem is collected and reported
//! with its key path and where the value came from.

use super::model::Config;
use super::validate::validate;
use super::{ConfigError, Problem};
use figment::providers::{Format, Serialized, Yaml};
use figment::value::Value as FValue;
use figment::Figment;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A loaded, validated configuration and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub file: Option<PathBuf>,
    /// Non-fatal findings (ignored environment variables, unusual values).
    pub warnings: Vec<String>,
}

/// Loads `file` (if any) and the `WK_*` variables among `env`, then validates.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded, ConfigError> {
    let source = file.map(|p| p.display().to_string()).unwrap_or_else(|| "<defaults>".into());
    let mut fig = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = file {
        if let Err(e) = std::fs::metadata(path) {
            return Err(ConfigError::single(&source, "", format!("cannot read config file: {e}")));
        }
        fig = fig.merge(Yaml::file_exact(path));
    }
    let (overrides, warnings) = env_overrides(env);
    for (key, value) in overrides {
        fig = fig.merge((key, value));
    }
    let config: Config = fig.extract().map_err(|e| from_figment(&source, e))?;
    let problems = validate(&config);
    if !problems.is_empty() {
        return Err(ConfigError { source, problems });
    }
    Ok(Loaded { config, file: file.map(Path::to_path_buf), warnings })
}

/// Turns figment's errors (one per problem; serde stops at the first of each value) into ours.
fn from_figment(source: &str, err: figment::Error) -> ConfigError {
    let problems = err
        .into_iter()
        .map(|e| {
            let origin = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(figment::Source::File(p)) => p.display().to_string(),
                    _ => m.name.to_string(),
                })
                .unwrap_or_else(|| source.to_string());
            let mut path = e.path.join(".");
            let message = match &e.kind {
                figment::error::Kind::UnknownField(field, expected) => {
                    path = if path.is_empty() { field.clone() } else { format!("{path}.{field}") };
                    format!("unknown key `{field}` (expected one of: {})", expected.join(", "))
                }
                kind => kind.to_string(),
            };
            Problem { origin, path, message }
        })
        .collect();
    ConfigError { source: source.to_string(), problems }
}

/// Every settable leaf key path ("cluster.nodeId") with whether its value is text.
fn leaf_keys() -> BTreeMap<String, (String, LeafKind)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, (String, LeafKind)>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&p, v, out);
                }
            }
            leaf => {
                let kind = match leaf {
                    serde_json::Value::String(_) | serde_json::Value::Null => LeafKind::Text,
                    serde_json::Value::Array(_) => LeafKind::List,
                    _ => LeafKind::Scalar,
                };
                out.insert(prefix.replace('.', "_").to_ascii_lowercase(), (prefix.to_string(), kind));
            }
        }
    }
    let mut out = BTreeMap::new();
    let defaults = serde_json::to_value(Config::default()).expect("config serializes");
    walk("", &defaults, &mut out);
    out
}

#[derive(Debug, Clone, Copy)]
enum LeafKind {
    Text,
    List,
    Scalar,
}

/// Picks the `WK_*` variables that name a key; others are reported as warnings, not errors
/// (the environment is shared with other software).
fn env_overrides(
    env: impl IntoIterator<Item = (String, String)>,
) -> (Vec<(String, FValue)>, Vec<String>) {
    let keys = leaf_keys();
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.len() > 3 && k[..3].eq_ignore_ascii_case("WK_"))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let wanted = name[3..].to_ascii_lowercase();
        match keys.get(&wanted) {
            Some((path, kind)) => {
                let value = match kind {
                    LeafKind::Text => FValue::from(raw.clone()),
                    LeafKind::List => FValue::from(
                        raw.split(|c: char| c == ',' || c.is_whitespace())
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect::<Vec<_>>(),
                    ),
                    LeafKind::Scalar => raw.parse::<FValue>().unwrap_or_else(|e| match e {}),
                };
                out.push((path.clone(), value));
            }
            None => warnings.push(format!("environment variable {name} names no config key; ignored")),
        }
    }
    (out, warnings)
}
