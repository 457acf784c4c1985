//! Loading: YAML file (figment, exact path) then `WK_*` environment overrides, into [`Config`].
//! Environment names follow WuKongIM: `WK_` + the key path with dots as underscores, any case
//! (`WK_CLUSTER_NODEID=1002`, `WK_EXTERNAL_IP=10.0.0.5`). Every problem is collected and reported
//! with its key path and where the value came from.

use super::go_keys;
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
    /// Keys of the Go server's configuration found in the file and ignored, each as a message
    /// naming it (one WARN each at startup, listed by `--check`).
    pub unsupported: Vec<String>,
}

/// Loads `file` (if any) and the `WK_*` variables among `env`, then validates.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded, ConfigError> {
    let source = file
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<defaults>".into());
    let mut fig = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = file {
        if let Err(e) = std::fs::metadata(path) {
            return Err(ConfigError::single(
                &source,
                "",
                format!("cannot read config file: {e}"),
            ));
        }
        fig = fig.merge(Yaml::file_exact(path));
    }
    let (overrides, warnings) = env_overrides(env);
    for var in overrides {
        fig = fig.merge(var);
    }
    let (config, mut problems, unsupported) = extract_all(&fig, &source)?;
    problems.extend(validate(&config));
    if !problems.is_empty() {
        return Err(ConfigError { source, problems });
    }
    Ok(Loaded {
        config,
        file: file.map(Path::to_path_buf),
        warnings,
        unsupported: unsupported.iter().map(|k| go_keys::message(k)).collect(),
    })
}

/// Deserializes the merged sources, collecting every type error and unknown key: a bad value is
/// recorded and removed (so its default applies) and deserialization is retried, so one run
/// reports all of them rather than the first. Keys of the Go server's file that this server does
/// not implement are taken out first and returned by name.
type Extracted = (Config, Vec<Problem>, Vec<String>);

fn extract_all(fig: &Figment, source: &str) -> Result<Extracted, ConfigError> {
    let mut value: FValue = fig.extract().map_err(|e| {
        let problems = e
            .into_iter()
            .map(|e| to_problem(fig, source, &e).0)
            .collect();
        ConfigError {
            source: source.to_string(),
            problems,
        }
    })?;
    let unsupported = go_keys::take_unsupported(&mut value);
    let mut problems = Vec::new();
    for _ in 0..256 {
        match value.deserialize::<Config>() {
            Ok(c) => return Ok((c, problems, unsupported)),
            Err(errs) => {
                let mut removed_any = false;
                for e in errs {
                    let (problem, path) = to_problem(fig, source, &e);
                    problems.push(problem);
                    removed_any |= remove_path(&mut value, &path);
                }
                if !removed_any {
                    break;
                }
            }
        }
    }
    Err(ConfigError {
        source: source.to_string(),
        problems,
    })
}

/// One figment error as a problem, plus the key path to remove to get past it.
fn to_problem(fig: &Figment, source: &str, e: &figment::Error) -> (Problem, Vec<String>) {
    let mut path: Vec<String> = e.path.clone();
    let message = match &e.kind {
        figment::error::Kind::UnknownField(field, expected) => {
            if path.last() != Some(field) {
                path.push(field.clone());
            }
            format!(
                "unknown key `{field}` (expected one of: {})",
                expected.join(", ")
            )
        }
        kind => kind.to_string(),
    };
    let dotted = path.join(".");
    let shown = path
        .iter()
        .fold(String::new(), |acc, seg| match seg.parse::<usize>() {
            Ok(i) => format!("{acc}[{i}]"),
            Err(_) if acc.is_empty() => seg.clone(),
            Err(_) => format!("{acc}.{seg}"),
        });
    let meta = e
        .metadata
        .clone()
        .or_else(|| fig.find_metadata(&dotted).cloned());
    let origin = meta
        .map(|m| match &m.source {
            Some(figment::Source::File(p)) => p.display().to_string(),
            _ => m.name.to_string(),
        })
        .unwrap_or_else(|| source.to_string());
    (
        Problem {
            origin,
            path: shown,
            message,
        },
        path,
    )
}

/// Removes the value at `path` from a nested dictionary; false if there was nothing to remove.
fn remove_path(v: &mut FValue, path: &[String]) -> bool {
    match (v, path) {
        (FValue::Dict(_, map), [last]) => map.remove(last).is_some(),
        (FValue::Dict(_, map), [first, rest @ ..]) => {
            map.get_mut(first).is_some_and(|c| remove_path(c, rest))
        }
        (FValue::Array(_, items), [idx, rest @ ..]) => match idx.parse::<usize>() {
            Ok(i) if i < items.len() && rest.is_empty() => {
                items.remove(i);
                true
            }
            Ok(i) if i < items.len() => remove_path(&mut items[i], rest),
            _ => false,
        },
        _ => false,
    }
}

/// Every settable leaf key path ("cluster.nodeId") with whether its value is text.
fn leaf_keys() -> BTreeMap<String, (String, LeafKind)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, (String, LeafKind)>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, v, out);
                }
            }
            leaf => {
                let kind = match leaf {
                    serde_json::Value::String(_) | serde_json::Value::Null => LeafKind::Text,
                    serde_json::Value::Array(_) => LeafKind::List,
                    _ => LeafKind::Scalar,
                };
                out.insert(
                    prefix.replace('.', "_").to_ascii_lowercase(),
                    (prefix.to_string(), kind),
                );
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
fn env_overrides(env: impl IntoIterator<Item = (String, String)>) -> (Vec<EnvVar>, Vec<String>) {
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
                out.push(EnvVar {
                    name,
                    path: path.clone(),
                    value,
                });
            }
            None => match go_keys::env_key(&wanted) {
                Some(key) => warnings.push(go_keys::message(&format!(
                    "{key} (environment variable {name})"
                ))),
                None => warnings.push(format!(
                    "environment variable {name} names no config key; ignored"
                )),
            },
        }
    }
    (out, warnings)
}

/// One `WK_*` variable as a figment provider, so errors name the variable.
struct EnvVar {
    name: String,
    path: String,
    value: FValue,
}

impl figment::Provider for EnvVar {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(format!("environment variable {}", self.name))
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        Serialized::global(&self.path, &self.value).data()
    }
}
