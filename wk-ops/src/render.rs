//! `render`: inventory → set of files. A pure function (same inventory and templates, same
//! bytes, same order); writing, checking and diffing those files against a directory lives in
//! [`output`].

pub mod context;
pub mod output;
pub mod templates;

use crate::inventory::Inventory;
use context::Context;
use serde::Serialize;
use std::fmt;
pub use templates::{TemplateError, Templates};

/// A group of rendered files, as `--only` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// nodes/<id>/wk.yaml, one per node
    Nodes,
    /// systemd units and timers
    Systemd,
    /// nginx/nginx.conf
    Nginx,
    /// haproxy/haproxy.cfg
    Haproxy,
    /// prometheus/prometheus.yml and wukongim-alerts.yml
    Prometheus,
    /// alertmanager/alertmanager.yml
    Alertmanager,
    /// ansible/hosts.yml
    Ansible,
    /// grafana/wukongim-dashboard.json
    Grafana,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Nodes,
        Kind::Systemd,
        Kind::Nginx,
        Kind::Haproxy,
        Kind::Prometheus,
        Kind::Alertmanager,
        Kind::Ansible,
        Kind::Grafana,
    ];

    /// The output directory this kind owns.
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Nodes => "nodes",
            Kind::Systemd => "systemd",
            Kind::Nginx => "nginx",
            Kind::Haproxy => "haproxy",
            Kind::Prometheus => "prometheus",
            Kind::Alertmanager => "alertmanager",
            Kind::Ansible => "ansible",
            Kind::Grafana => "grafana",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.dir())
    }
}

/// One output file: its path relative to the output directory (always `/`-separated) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub kind: Kind,
    pub path: String,
    pub contents: String,
}

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("nothing to render for --only {kind}: {reason}")]
    NothingToRender { kind: Kind, reason: String },
}

/// Renders every file of the kinds in `only` (all kinds when empty), sorted by path.
pub fn render(
    inv: &Inventory,
    templates: &Templates,
    only: &[Kind],
) -> Result<Vec<RenderedFile>, RenderError> {
    let wanted = |k: Kind| only.is_empty() || only.contains(&k);
    let ctx = context::build(inv);
    let mut out = Vec::new();
    let mut file =
        |kind: Kind, template: &str, path: String, ctx: &Context| -> Result<(), RenderError> {
            let contents = templates.render(template, ctx)?;
            out.push(RenderedFile {
                kind,
                path,
                contents,
            });
            Ok(())
        };
    if wanted(Kind::Nodes) {
        for n in &ctx.nodes {
            let mut c = ctx.clone();
            c.node = Some(n.clone());
            file(
                Kind::Nodes,
                "node/wk.yaml.j2",
                context::node_file(n.node.id),
                &c,
            )?;
        }
    }
    if wanted(Kind::Systemd) {
        let mut units = vec![
            "wukongim@.service",
            "wk-ops-health.service",
            "wk-ops-health.timer",
        ];
        if ctx.backup.is_some() {
            units.extend(["wk-ops-backup.service", "wk-ops-backup.timer"]);
        }
        for u in units {
            file(
                Kind::Systemd,
                &format!("systemd/{u}.j2"),
                format!("systemd/{u}"),
                &ctx,
            )?;
        }
    }
    let lb = ctx.load_balancer.as_ref();
    for (kind, enabled, template, path) in [
        (
            Kind::Nginx,
            lb.is_some_and(|l| l.nginx_enabled),
            "nginx/nginx.conf.j2",
            "nginx/nginx.conf",
        ),
        (
            Kind::Haproxy,
            lb.is_some_and(|l| l.haproxy_enabled),
            "haproxy/haproxy.cfg.j2",
            "haproxy/haproxy.cfg",
        ),
    ] {
        if enabled && wanted(kind) {
            file(kind, template, path.to_string(), &ctx)?;
        } else if !enabled && only.contains(&kind) {
            let reason = match lb {
                None => "the inventory has no loadBalancer section".to_string(),
                Some(_) => format!("loadBalancer.kinds does not include {kind}"),
            };
            return Err(RenderError::NothingToRender { kind, reason });
        }
    }
    if wanted(Kind::Prometheus) {
        for f in ["prometheus.yml", "wukongim-alerts.yml"] {
            file(
                Kind::Prometheus,
                &format!("prometheus/{f}.j2"),
                format!("prometheus/{f}"),
                &ctx,
            )?;
        }
    }
    if wanted(Kind::Alertmanager) {
        let path = "alertmanager/alertmanager.yml";
        file(Kind::Alertmanager, &format!("{path}.j2"), path.into(), &ctx)?;
    }
    if wanted(Kind::Ansible) {
        file(
            Kind::Ansible,
            "ansible/hosts.yml.j2",
            "ansible/hosts.yml".into(),
            &ctx,
        )?;
    }
    if wanted(Kind::Grafana) {
        let path = "grafana/wukongim-dashboard.json";
        file(Kind::Grafana, &format!("{path}.j2"), path.into(), &ctx)?;
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
