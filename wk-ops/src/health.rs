//! `wk-ops health`: one run observes the fleet ([`crate::status::observe`]), runs the checks
//! ([`checks`]), advances the alert state ([`state`]) and mails the news ([`mail`]). The
//! command line (`--once`, `--watch`) lives in `cli/health.rs`.

pub mod backups;
pub mod checks;
pub mod mail;
pub mod state;

use crate::inventory::Inventory;
use crate::node_api::{NodeApi, NodeError};
use crate::status::{self, Observation};
use checks::{CheckResult, Context};
use chrono::{DateTime, Utc};
use state::{State, StateError, Status};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How one run behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    pub state_file: PathBuf,
    /// Print the mail instead of sending it, and leave the state file alone.
    pub dry_run: bool,
    /// Deadline of each request to a node.
    pub timeout: Duration,
    /// Deadline of the SMTP conversation.
    pub mail_timeout: Duration,
}

/// Why a run could not be made at all.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error(transparent)]
    State(#[from] StateError),
    /// Every node refused the manager token.
    #[error(transparent)]
    TokenRefused(NodeError),
}

/// What happened to this run's mail.
#[derive(Debug)]
pub enum MailOutcome {
    /// Nothing new to say.
    NoNews,
    Sent {
        subject: String,
        to: Vec<String>,
    },
    /// `--dry-run`: the mail as it would have been sent.
    DryRun(String),
    /// `alerts.email` is not set: the mail went to stdout only.
    NotConfigured(String),
    /// Not delivered; the news stays pending in the state file.
    Failed(mail::MailError),
}

/// The result of one run.
#[derive(Debug)]
pub struct Report {
    pub cluster: String,
    pub at: DateTime<Utc>,
    pub results: Vec<CheckResult>,
    /// Status of each failing (check, node) after this run, by key.
    pub statuses: Vec<(String, Status)>,
    pub mail: MailOutcome,
}

impl Report {
    /// Failing findings (pending or firing).
    pub fn failing(&self) -> usize {
        self.results.iter().map(|r| r.findings.len()).sum()
    }

    /// 0 all checks pass and the mail (if any) is out; 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        let mail_failed = matches!(self.mail, MailOutcome::Failed(_));
        u8::from(self.failing() > 0 || mail_failed)
    }

    /// The report on stdout: one line per check or failing (check, node), then the mail.
    pub fn text(&self) -> String {
        let mut out = format!(
            "cluster {}, {}: {}\n",
            self.cluster,
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            match self.failing() {
                0 => "all checks pass".to_string(),
                n => format!("{n} failing"),
            }
        );
        for r in &self.results {
            if r.findings.is_empty() {
                let _ = writeln!(out, "ok    {:<16} {}", r.check.name(), r.note);
            }
            for f in &r.findings {
                let status = self.statuses.iter().find(|(k, _)| *k == f.key()).map_or(
                    "?",
                    |(_, s)| match s {
                        Status::Pending => "pending",
                        Status::Firing => "firing",
                        Status::Resolved => "resolved",
                    },
                );
                let _ = writeln!(
                    out,
                    "FAIL  {:<16} {}: {} ({status})",
                    r.check.name(),
                    f.summary,
                    f.detail
                );
            }
        }
        let _ = match &self.mail {
            MailOutcome::NoNews => writeln!(out, "mail: nothing new"),
            MailOutcome::Sent { subject, to } => {
                writeln!(out, "mail: sent \"{subject}\" to {}", to.join(", "))
            }
            MailOutcome::DryRun(text) => {
                writeln!(out, "mail (dry run, not sent):\n{text}")
            }
            MailOutcome::NotConfigured(text) => writeln!(
                out,
                "mail: alerts.email is not set; the alert is only logged here:\n{text}"
            ),
            MailOutcome::Failed(e) => writeln!(out, "mail: NOT SENT ({e}); kept for the next run"),
        };
        out
    }
}

/// The default state file: under systemd's StateDirectory when set.
pub fn default_state_file(cluster: &str) -> PathBuf {
    let dir = std::env::var_os("STATE_DIRECTORY")
        .and_then(|v| {
            // systemd lists several directories separated by ':'; ours is the first.
            v.to_string_lossy()
                .split(':')
                .next()
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("/var/lib/wk-ops"));
    dir.join(format!("health-{cluster}.json"))
}

/// One health run.
pub async fn run_once(
    inv: &Inventory,
    api: &NodeApi,
    settings: &Settings,
) -> Result<Report, HealthError> {
    let mut state = State::load(&settings.state_file, &inv.cluster.name)?;
    let obs = observe_settled(inv, api).await;
    if let Some(e) = obs.token_refused() {
        return Err(HealthError::TokenRefused(clone_refusal(e)));
    }
    let now = Utc::now();
    let max_term = obs
        .probes
        .iter()
        .filter_map(|p| p.raft.as_ref().ok().map(|r| r.term))
        .max();
    let elections_last_hour = state.record_term(max_term, now);
    let backup = inv
        .backup
        .as_ref()
        .map(|b| backups::newest(Path::new(&b.dir), &inv.cluster.name));
    let cx = Context {
        inv,
        now,
        elections_last_hour,
        backup,
    };
    let results = checks::evaluate(&obs, &cx);
    let findings: Vec<_> = results
        .iter()
        .flat_map(|r| r.findings.iter().cloned())
        .collect();
    state.step(&findings, now);
    let news = state.news(now, inv.alerts.repeat_interval.value);
    let email = inv.alerts.email.as_ref();
    let outcome = if news.is_empty() {
        MailOutcome::NoNews
    } else {
        let m = mail::compose(&inv.cluster.name, &state, &news, now);
        if settings.dry_run {
            MailOutcome::DryRun(mail::preview(email, &m))
        } else if let Some(email) = email {
            match mail::send(email, &m, settings.mail_timeout).await {
                Ok(()) => {
                    tracing::info!(subject = %m.subject, news = news.len(), "alert mail sent");
                    state.delivered(&news, now);
                    MailOutcome::Sent {
                        subject: m.subject,
                        to: email.to.clone(),
                    }
                }
                Err(e) => {
                    tracing::info!(error = %e, news = news.len(), "alert mail not sent; kept for the next run");
                    MailOutcome::Failed(e)
                }
            }
        } else {
            state.delivered(&news, now);
            MailOutcome::NotConfigured(mail::preview(None, &m))
        }
    };
    if !settings.dry_run {
        state.save(&settings.state_file)?;
    }
    let statuses = state
        .alerts
        .iter()
        .map(|(k, a)| (k.clone(), a.status))
        .collect();
    Ok(Report {
        cluster: inv.cluster.name.clone(),
        at: now,
        results,
        statuses,
        mail: outcome,
    })
}

/// Observes the fleet; when the nodes disagree on the leader, looks again after two election
/// timeouts so an election in progress is not reported as split brain.
async fn observe_settled(inv: &Inventory, api: &NodeApi) -> Observation {
    let obs = status::observe(api, inv).await;
    let disagree = obs.leaders().len() > 1;
    if !disagree {
        return obs;
    }
    let election = inv.cluster.heartbeat_tick().duration() * inv.cluster.election_tick();
    tracing::info!(
        wait_ms = (election * 2).as_millis() as u64,
        "leaders disagree; looking again"
    );
    tokio::time::sleep(election * 2).await;
    status::observe(api, inv).await
}

fn clone_refusal(e: &NodeError) -> NodeError {
    match e {
        NodeError::Unauthorized { node, path } => NodeError::Unauthorized {
            node: *node,
            path: path.clone(),
        },
        other => NodeError::BadAnswer {
            node: other.node(),
            path: String::new(),
            reason: other.to_string(),
        },
    }
}
