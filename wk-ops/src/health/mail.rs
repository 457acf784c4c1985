//! Alert mail: one message per run that has news, grouping its alerts, with a subject an
//! on-call person can triage from a phone (`[wukongim im-prod] FIRING 2: node 1002 down;
//! lag on 1003`), sent with lettre's tokio SMTP transport (plain, STARTTLS or implicit TLS,
//! optional login with the password from `smtp.passwordFile`).

use super::checks::humanize;
use super::state::{Alert, News, NewsKind, State};
use crate::inventory::{Email, Smtp};
use chrono::{DateTime, SecondsFormat, Utc};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::fmt::Write as _;
use std::time::Duration;

/// Longest subject before it is cut with "…".
const SUBJECT_MAX: usize = 160;

/// A composed alert mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub body: String,
}

/// Why a mail was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("bad alert address {address}: {reason}")]
    Address { address: String, reason: String },
    #[error("cannot build the alert mail: {0}")]
    Build(String),
    #[error("cannot read the SMTP password file {file}: {source}")]
    Password {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("SMTP server {server} did not take the alert mail: {reason}")]
    Smtp { server: String, reason: String },
}

/// Composes the mail for `news` from `state` at `now`.
pub fn compose(cluster: &str, state: &State, news: &[News], now: DateTime<Utc>) -> Mail {
    let alert = |n: &News| state.alerts.get(&n.key);
    let of = |kind: NewsKind| -> Vec<&Alert> {
        news.iter()
            .filter(|n| n.kind == kind)
            .filter_map(alert)
            .collect()
    };
    let (firing, reminders, resolved) = (
        of(NewsKind::Firing),
        of(NewsKind::Reminder),
        of(NewsKind::Resolved),
    );
    let also = state.still_firing(news);

    let mut parts = Vec::new();
    let summaries = |v: &[&Alert]| {
        v.iter()
            .map(|a| a.summary.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    if !firing.is_empty() {
        let all: Vec<&Alert> = firing.iter().chain(&reminders).copied().collect();
        parts.push(format!("FIRING {}: {}", all.len(), summaries(&all)));
    } else if !reminders.is_empty() {
        parts.push(format!(
            "STILL FIRING {}: {}",
            reminders.len(),
            summaries(&reminders)
        ));
    }
    if !resolved.is_empty() {
        parts.push(format!(
            "RESOLVED {}: {}",
            resolved.len(),
            summaries(&resolved)
        ));
    }
    let mut subject = format!("[wukongim {cluster}] {}", parts.join(" | "));
    if subject.chars().count() > SUBJECT_MAX {
        subject = subject.chars().take(SUBJECT_MAX - 1).collect::<String>() + "…";
    }

    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let ago = |t: DateTime<Utc>| humanize((now - t).to_std().unwrap_or_default());
    let mut body = format!("wk-ops health, cluster {cluster}, {} (UTC)\n", stamp(now));
    let mut section = |title: &str, alerts: &[&Alert], resolved: bool| {
        if alerts.is_empty() {
            return;
        }
        let _ = writeln!(body, "\n{title}");
        for a in alerts {
            let _ = writeln!(body, "  - {}: {}", a.summary, a.detail);
            let node = a.node.map_or_else(|| "cluster".into(), |n| n.to_string());
            let since = a.firing_since.unwrap_or(a.since);
            let when = match (resolved, a.resolved_at) {
                (true, Some(r)) => format!(
                    "firing since {}, resolved {} (after {})",
                    stamp(since),
                    stamp(r),
                    humanize((r - since).to_std().unwrap_or_default())
                ),
                _ => format!("failing since {} ({} ago)", stamp(a.since), ago(a.since)),
            };
            let _ = writeln!(body, "    check {}, node {node}, {when}", a.check);
        }
    };
    section("FIRING (new):", &firing, false);
    section("STILL FIRING (reminder):", &reminders, false);
    section("RESOLVED:", &resolved, true);
    section("Also firing (already notified):", &also, false);
    body.push_str(
        "\nRun `wk-ops status INVENTORY` for the cluster table; each check and its threshold \
         key are described in wk-ops' README (section \"Health checks and alert mail\").\n",
    );
    Mail { subject, body }
}

/// The mail as `--dry-run` prints it.
pub fn preview(email: Option<&Email>, mail: &Mail) -> String {
    let (from, to) = email.map_or_else(
        || ("(alerts.email not set)".to_string(), String::new()),
        |e| (e.from.clone(), e.to.join(", ")),
    );
    format!(
        "From: {from}\nTo: {to}\nSubject: {}\n\n{}",
        mail.subject, mail.body
    )
}

/// Sends `mail` through `email.smtp`.
pub async fn send(email: &Email, mail: &Mail, timeout: Duration) -> Result<(), MailError> {
    let mailbox = |a: &str| {
        a.parse::<Mailbox>().map_err(|e| MailError::Address {
            address: a.into(),
            reason: e.to_string(),
        })
    };
    let mut builder = Message::builder()
        .from(mailbox(&email.from)?)
        .subject(mail.subject.clone())
        .header(lettre::message::header::ContentType::TEXT_PLAIN);
    for to in &email.to {
        builder = builder.to(mailbox(to)?);
    }
    let message = builder
        .body(mail.body.clone())
        .map_err(|e| MailError::Build(e.to_string()))?;
    let transport = transport(&email.smtp, timeout)?;
    transport.send(message).await.map_err(|e| MailError::Smtp {
        server: format!("{}:{}", email.smtp.host, email.smtp.port.0),
        reason: error_chain(&e),
    })?;
    Ok(())
}

fn transport(
    smtp: &Smtp,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let server = format!("{}:{}", smtp.host, smtp.port.0);
    let tls_err = |e: lettre::transport::smtp::Error| MailError::Smtp {
        server: server.clone(),
        reason: error_chain(&e),
    };
    let builder = if smtp.implicit_tls {
        AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host).map_err(tls_err)?
    } else if smtp.starttls {
        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host).map_err(tls_err)?
    } else {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
    };
    let mut builder = builder.port(smtp.port.0).timeout(Some(timeout));
    if let (Some(user), Some(file)) = (&smtp.username, &smtp.password_file) {
        let password = crate::node_api::read_token(file).map_err(|e| MailError::Password {
            file: e.file,
            source: e.source,
        })?;
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    Ok(builder.build())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let _ = write!(s, ": {c}");
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::checks::{Check, Finding};
    use super::*;

    fn f(check: Check, node: Option<u64>, summary: &str) -> Finding {
        Finding {
            check,
            node,
            summary: summary.into(),
            detail: "why".into(),
            hold: Duration::ZERO,
        }
    }

    #[test]
    fn subject_groups_news_for_a_phone_screen() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut s = State::new("im-prod");
        s.step(
            &[
                f(Check::NodeHealth, Some(1002), "node 1002 down"),
                f(Check::ReplicationLag, Some(1003), "lag on 1003"),
            ],
            now,
        );
        let news = s.news(now, Duration::from_secs(3600));
        let m = compose("im-prod", &s, &news, now);
        assert_eq!(
            m.subject,
            "[wukongim im-prod] FIRING 2: node 1002 down; lag on 1003"
        );
        assert!(
            m.body.contains("FIRING (new):\n  - node 1002 down: why"),
            "{}",
            m.body
        );
        s.delivered(&news, now);

        let later = now + chrono::Duration::seconds(120);
        s.step(
            &[f(Check::ReplicationLag, Some(1003), "lag on 1003")],
            later,
        );
        let news = s.news(later, Duration::from_secs(3600));
        let m = compose("im-prod", &s, &news, later);
        assert_eq!(m.subject, "[wukongim im-prod] RESOLVED 1: node 1002 down");
        assert!(m.body.contains("after 2m00s"), "{}", m.body);
        assert!(
            m.body
                .contains("Also firing (already notified):\n  - lag on 1003"),
            "{}",
            m.body
        );
    }

    #[test]
    fn long_subjects_are_cut() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut s = State::new("c");
        let many: Vec<Finding> = (0..40)
            .map(|i| f(Check::NodeHealth, Some(i), &format!("node {i} down")))
            .collect();
        s.step(&many, now);
        let m = compose("c", &s, &s.news(now, Duration::from_secs(60)), now);
        assert_eq!(m.subject.chars().count(), SUBJECT_MAX);
        assert!(m
            .subject
            .starts_with("[wukongim c] FIRING 40: node 0 down; node 1 down"));
    }
}
