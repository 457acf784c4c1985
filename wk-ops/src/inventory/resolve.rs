//! Defaults: turns the sections as written into the resolved [`Inventory`](super::Inventory).
//! Order of precedence for node values: the node's own key, then `defaults:`, then the
//! built-in default listed here (the cluster guide's ports and Debian's usual paths).

use super::model::*;
use super::schema::{
    AlertsSection, AuthMethod, BackupSection, ClusterSection, DefaultsSection, HealthSection,
    LoadBalancerSection, MonitoringSection, NodeEntry, SystemdSection,
};
use super::values::{Dur, Port, Size, Tick};

/// Built-in node ports (the cluster guide's).
pub const DEFAULT_PORTS: Ports = Ports {
    cluster: Port(11110),
    tcp: Port(5100),
    ws: Port(5200),
    api: Port(5001),
    metrics: Port(5300),
};

pub const DEFAULT_ROOT_DIR: &str = "/var/lib/wukongim";
pub const DEFAULT_SERVICE_NAME: &str = "wukongim@{id}";

/// The cluster settings, secure unless the inventory opts out explicitly: cluster auth on with
/// `<configDir>/cluster-token` when `auth:` is absent, the manager token read from
/// `<configDir>/manager-token` unless `openApi: true`, `tokenAuthOn: true` unless set.
pub fn cluster(c: &ClusterSection, config_dir: &str) -> Cluster {
    let mut raft = c.raft.clone();
    raft.heartbeat_tick.get_or_insert(Tick::Secs(1));
    raft.election_tick.get_or_insert(10);
    Cluster {
        name: c.name.to_string(),
        mode: c.mode.unwrap_or(super::schema::Mode::Release),
        raft,
        tls: c.tls.as_ref().map(|t| Tls {
            enabled: t.enabled,
            cert_file: t.cert_file.as_ref().map(|p| p.to_string()),
            key_file: t.key_file.as_ref().map(|p| p.to_string()),
            ca_file: t.ca_file.as_ref().map(|p| p.to_string()),
            client_auth: t.client_auth,
            min_version: t.min_version.map(|v| v.as_str().to_string()),
            cipher_suites: t.cipher_suites.iter().map(|s| s.0.clone()).collect(),
        }),
        auth: Some(c.auth.as_ref().map_or_else(
            || Auth {
                enabled: true,
                method: "token".into(),
                token_file: Some(format!("{config_dir}/cluster-token")),
                token_rotation_interval: None,
            },
            |a| Auth {
                enabled: a.enabled,
                method: match a.method.unwrap_or(AuthMethod::Token) {
                    AuthMethod::Token => "token".into(),
                },
                token_file: a.token_file.as_ref().map(|p| p.to_string()),
                token_rotation_interval: a.token_rotation_interval.as_ref().map(|d| d.text.clone()),
            },
        )),
        manager_token_file: match (&c.manager_token_file, c.open_api) {
            (Some(p), _) => Some(p.to_string()),
            (None, Some(true)) => None,
            (None, _) => Some(format!("{config_dir}/manager-token")),
        },
        token_auth_on: Some(c.token_auth_on.unwrap_or(true)),
    }
}

/// Fills `{id}`, `{name}` and `{host}` in a pattern.
fn fill(pattern: &str, id: u64, name: &str, host: &str) -> String {
    pattern
        .replace("{id}", &id.to_string())
        .replace("{name}", name)
        .replace("{host}", host)
}

pub fn node(d: &DefaultsSection, index: usize, n: &NodeEntry) -> Node {
    let id = n.id.0;
    let host = n.host.to_string();
    let port = |own: Option<Port>, def: Option<Port>, builtin: Port| own.or(def).unwrap_or(builtin);
    let ports = Ports {
        cluster: port(n.ports.cluster, d.ports.cluster, DEFAULT_PORTS.cluster),
        tcp: port(n.ports.tcp, d.ports.tcp, DEFAULT_PORTS.tcp),
        ws: port(n.ports.ws, d.ports.ws, DEFAULT_PORTS.ws),
        api: port(n.ports.api, d.ports.api, DEFAULT_PORTS.api),
        metrics: port(n.ports.metrics, d.ports.metrics, DEFAULT_PORTS.metrics),
    };
    let root = n
        .root_dir
        .as_ref()
        .or(d.root_dir.as_ref())
        .map_or(DEFAULT_ROOT_DIR, |p| p.as_str());
    let name_pattern = n
        .service
        .name
        .as_ref()
        .or(d.service.name.as_ref())
        .map_or(DEFAULT_SERVICE_NAME, |s| s.as_str());
    let name = fill(name_pattern, id, "", &host);
    let command = |own: &Option<_>, def: &Option<_>, builtin: &str| {
        let pattern = own
            .as_ref()
            .or(def.as_ref())
            .map_or(builtin, |p: &super::values::CommandPattern| p.as_str());
        fill(pattern, id, &name, &host)
    };
    let s = &n.service;
    let ds = &d.service;
    let service = Service {
        start: command(&s.start, &ds.start, "systemctl start {name}"),
        stop: command(&s.stop, &ds.stop, "systemctl stop {name}"),
        restart: command(&s.restart, &ds.restart, "systemctl restart {name}"),
        status: command(&s.status, &ds.status, "systemctl is-active {name}"),
        name,
    };
    Node {
        id,
        index,
        bind_address: n
            .bind_address
            .as_ref()
            .or(d.bind_address.as_ref())
            .map_or_else(|| host.clone(), |h| h.to_string()),
        external_ip: n
            .external_ip
            .as_ref()
            .map_or_else(|| host.clone(), |h| h.to_string()),
        ports,
        root_dir: format!("{}/{id}", root.trim_end_matches('/')),
        log_level: n
            .log_level
            .as_ref()
            .or(d.log_level.as_ref())
            .map(|l| l.to_string()),
        log_file: n
            .log_file
            .as_ref()
            .or(d.log_file.as_ref())
            .map(|p| fill(p.as_str(), id, "", &host)),
        ssh: Ssh {
            user: n
                .ssh
                .user
                .as_ref()
                .or(d.ssh.user.as_ref())
                .map_or("root".into(), |u| u.to_string()),
            port: n.ssh.port.or(d.ssh.port).unwrap_or(Port(22)),
            identity_file: n
                .ssh
                .identity_file
                .as_ref()
                .or(d.ssh.identity_file.as_ref())
                .map(|p| p.to_string()),
            local: n.ssh.local.or(d.ssh.local).unwrap_or(false),
        },
        service,
        host,
        joins: n.joins,
    }
}

fn path_or(p: &Option<super::values::AbsPath>, default: &str) -> String {
    p.as_ref()
        .map_or_else(|| default.to_string(), |p| p.to_string())
}

fn dur_or(d: &Option<Dur>, default: &str) -> Dur {
    d.clone().unwrap_or_else(|| Dur::lit(default))
}

pub fn load_balancer(l: &LoadBalancerSection) -> LoadBalancer {
    let mut kinds = l.kinds.clone();
    kinds.sort();
    kinds.dedup();
    let n = &l.nginx;
    LoadBalancer {
        kinds,
        listen: LbListen {
            api: l.listen.api.unwrap_or(Port(80)),
            ws: l.listen.ws.unwrap_or(Port(8080)),
            tcp: l.listen.tcp.unwrap_or(Port(9100)),
        },
        bind_address: l.bind_address.as_ref().map(|h| h.to_string()),
        hosts: l.hosts.iter().map(|h| h.to_string()).collect(),
        max_fails: l.max_fails.unwrap_or(3),
        fail_timeout: dur_or(&l.fail_timeout, "10s"),
        nginx: Nginx {
            user: n
                .user
                .as_ref()
                .map_or_else(|| "www-data".into(), |u| u.to_string()),
            modules: n
                .modules
                .as_ref()
                .map_or_else(Vec::new, |v| v.iter().map(|p| p.to_string()).collect()),
            include: n.include.as_ref().map_or_else(
                || vec!["/etc/nginx/modules-enabled/*.conf".to_string()],
                |v| v.iter().map(|p| p.to_string()).collect(),
            ),
            pid_file: path_or(&n.pid_file, "/run/nginx.pid"),
            error_log: path_or(&n.error_log, "/var/log/nginx/error.log"),
            access_log: path_or(&n.access_log, "/var/log/nginx/access.log"),
            temp_dir: path_or(&n.temp_dir, "/var/lib/nginx"),
            worker_connections: n.worker_connections.unwrap_or(4096),
        },
        haproxy: Haproxy {
            maxconn: l.haproxy.maxconn.unwrap_or(4096),
        },
    }
}

pub fn alerts(a: Option<&AlertsSection>) -> Alerts {
    let default = AlertsSection::default();
    let a = a.unwrap_or(&default);
    let t = &a.thresholds;
    Alerts {
        email: a.email.as_ref().map(|e| Email {
            to: e.to.iter().map(|m| m.to_string()).collect(),
            from: e.from.to_string(),
            smtp: Smtp {
                host: e.smtp.host.to_string(),
                port: e.smtp.port.unwrap_or(Port(25)),
                starttls: e.smtp.starttls.unwrap_or(false),
                implicit_tls: e.smtp.implicit_tls.unwrap_or(false),
                username: e.smtp.username.as_ref().map(|u| u.to_string()),
                password_file: e.smtp.password_file.as_ref().map(|p| p.to_string()),
            },
        }),
        repeat_interval: dur_or(&a.repeat_interval, "4h"),
        thresholds: Thresholds {
            replication_lag_entries: t.replication_lag_entries.unwrap_or(1000),
            storage_bytes: t
                .storage_bytes
                .clone()
                .unwrap_or(Size::Text("50GiB".into(), 50 << 30)),
            node_down_for: dur_or(&t.node_down_for, "1m"),
            no_leader_for: dur_or(&t.no_leader_for, "30s"),
            elections_per_hour: t.elections_per_hour.unwrap_or(5),
            clock_skew: dur_or(&t.clock_skew, "2s"),
            backup_age: dur_or(&t.backup_age, "26h"),
        },
    }
}

pub fn backup(b: &BackupSection) -> Backup {
    Backup {
        dir: b.dir.to_string(),
        on_calendar: b
            .on_calendar
            .as_ref()
            .map_or_else(|| "daily".into(), |c| c.to_string()),
        randomized_delay: dur_or(&b.randomized_delay, "30m"),
        keep: Keep {
            last: b.keep.last.unwrap_or(3),
            daily: b.keep.daily.unwrap_or(7),
            weekly: b.keep.weekly.unwrap_or(4),
        },
    }
}

pub fn health(h: Option<&HealthSection>) -> Health {
    Health {
        on_calendar: h
            .and_then(|h| h.on_calendar.as_ref())
            .map_or_else(|| "minutely".into(), |c| c.to_string()),
        randomized_delay: dur_or(&h.and_then(|h| h.randomized_delay.clone()), "10s"),
    }
}

pub fn monitoring(m: Option<&MonitoringSection>) -> Monitoring {
    let default = MonitoringSection::default();
    let m = m.unwrap_or(&default);
    Monitoring {
        job_name: m
            .job_name
            .as_ref()
            .map_or_else(|| "wukongim-cluster".into(), |n| n.to_string()),
        scrape_interval: dur_or(&m.scrape_interval, "10s"),
        evaluation_interval: dur_or(&m.evaluation_interval, "15s"),
        alertmanagers: m.alertmanagers.iter().map(|a| a.to_string()).collect(),
    }
}

pub fn systemd(s: Option<&SystemdSection>) -> Systemd {
    let default = SystemdSection::default();
    let s = s.unwrap_or(&default);
    let account = |a: &Option<super::values::Account>, d: &str| {
        a.as_ref().map_or_else(|| d.to_string(), |a| a.to_string())
    };
    let user = account(&s.user, "wukongim");
    let group = account(&s.group, "wukongim");
    Systemd {
        // The ops units read the node's 0600 manager token file: by default they run as its owner.
        ops_user: account(&s.ops_user, &user),
        ops_group: account(&s.ops_group, &group),
        user,
        group,
        binary: path_or(&s.binary, "/usr/local/bin/wukongim"),
        config_dir: path_or(&s.config_dir, "/etc/wukongim"),
        limit_nofile: s.limit_nofile.unwrap_or(1_048_576),
        watchdog_sec: dur_or(&s.watchdog_sec, "30s"),
        ops_binary: path_or(&s.ops_binary, "/usr/local/bin/wk-ops"),
        inventory_path: path_or(&s.inventory_path, "/etc/wk-ops/inventory.yaml"),
    }
}
