//! The templates: compiled into the binary from the repository's `templates/` directory, each
//! replaceable by a file of the same relative name under `--templates DIR`. Rendering is strict
//! (an undefined variable is an error, never an empty string) and escapes nothing implicitly:
//! templates quote values with the `json` filter where the target format needs it.

use minijinja::{Environment, UndefinedBehavior, Value};
use std::path::{Path, PathBuf};

macro_rules! embedded {
    ($($name:literal),* $(,)?) => {
        /// Every template, by name, as shipped.
        pub const EMBEDDED: &[(&str, &str)] = &[
            $(($name, include_str!(concat!("../../../templates/", $name)))),*
        ];
    };
}

embedded!(
    "node/wk.yaml.j2",
    "systemd/wukongim@.service.j2",
    "systemd/wk-ops-health.service.j2",
    "systemd/wk-ops-health.timer.j2",
    "systemd/wk-ops-backup.service.j2",
    "systemd/wk-ops-backup.timer.j2",
    "systemd/ops-hardening.j2",
    "nginx/nginx.conf.j2",
    "haproxy/haproxy.cfg.j2",
    "prometheus/prometheus.yml.j2",
    "prometheus/wukongim-alerts.yml.j2",
    "alertmanager/alertmanager.yml.j2",
    "ansible/hosts.yml.j2",
    "grafana/wukongim-dashboard.json.j2",
);

/// Problems with templates: unreadable overrides, syntax errors, render failures.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read template directory {dir}: {source}")]
    Dir {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read template {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{dir}: unknown template {name} (known: {known})")]
    Unknown {
        dir: String,
        name: String,
        known: String,
    },
    #[error("template {origin}: {detail}")]
    Template { origin: String, detail: String },
}

/// A ready template environment and where each template came from.
pub struct Templates {
    env: Environment<'static>,
    overrides: Vec<(String, PathBuf)>,
}

impl Templates {
    /// The shipped templates.
    pub fn embedded() -> Result<Templates, TemplateError> {
        Templates::build(Vec::new())
    }

    /// The shipped templates, each replaced by `dir/<name>` where that file exists. A `.j2`
    /// file in `dir` that matches no template is an error (a misspelt override would otherwise
    /// be ignored silently).
    pub fn with_overrides(dir: &Path) -> Result<Templates, TemplateError> {
        let mut found = Vec::new();
        collect_j2(dir, dir, &mut found)?;
        found.sort();
        let mut overrides = Vec::new();
        for (name, path) in found {
            if !EMBEDDED.iter().any(|(n, _)| *n == name) {
                return Err(TemplateError::Unknown {
                    dir: dir.display().to_string(),
                    name,
                    known: EMBEDDED
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            overrides.push((name, path));
        }
        Templates::build(overrides)
    }

    fn build(overrides: Vec<(String, PathBuf)>) -> Result<Templates, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.add_filter("json", json);
        for (name, source) in EMBEDDED {
            let source = match overrides.iter().find(|(n, _)| n == name) {
                Some((_, path)) => {
                    std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
                        path: path.display().to_string(),
                        source,
                    })?
                }
                None => source.to_string(),
            };
            env.add_template_owned(name.to_string(), source)
                .map_err(|e| template_error(&overrides, e))?;
        }
        Ok(Templates { env, overrides })
    }

    /// Renders template `name` with `ctx`.
    pub fn render<S: serde::Serialize>(
        &self,
        name: &str,
        ctx: &S,
    ) -> Result<String, TemplateError> {
        let tmpl = self
            .env
            .get_template(name)
            .map_err(|e| template_error(&self.overrides, e))?;
        tmpl.render(Value::from_serialize(ctx))
            .map_err(|e| template_error(&self.overrides, e))
    }

    /// Templates replaced from the override directory, by name.
    pub fn overridden(&self) -> impl Iterator<Item = &str> {
        self.overrides.iter().map(|(n, _)| n.as_str())
    }
}

/// `value | json`: the value as JSON text, which is also a valid YAML flow scalar or list.
fn json(value: Value) -> Result<String, minijinja::Error> {
    serde_json::to_string(&value).map_err(|e| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("cannot write as JSON: {e}"),
        )
    })
}

fn template_error(overrides: &[(String, PathBuf)], e: minijinja::Error) -> TemplateError {
    let name = e.name().unwrap_or("?").to_string();
    let origin = match overrides.iter().find(|(n, _)| *n == name) {
        Some((_, path)) => path.display().to_string(),
        None => format!("templates/{name} (built in)"),
    };
    let origin = match e.line() {
        Some(line) => format!("{origin}:{line}"),
        None => origin,
    };
    let mut detail = e
        .detail()
        .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()));
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail.push_str(&format!(": {s}"));
        source = s.source();
    }
    TemplateError::Template { origin, detail }
}

fn collect_j2(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), TemplateError> {
    let entries = std::fs::read_dir(dir).map_err(|source| TemplateError::Dir {
        dir: dir.display().to_string(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| TemplateError::Dir {
            dir: dir.display().to_string(),
            source,
        })?;
        let path = entry.path();
        if path.is_dir() {
            collect_j2(root, &path, out)?;
        } else if path.extension().is_some_and(|x| x == "j2") {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let name = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push((name, path));
        }
    }
    Ok(())
}
