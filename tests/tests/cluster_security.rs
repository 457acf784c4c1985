//! Cluster RPC security end to end: a cluster whose peers talk over mutual TLS (certificates from
//! a test CA, IP SANs) and authenticate with the cluster token; a node holding a wrong token is
//! kept out, and garbage sent to the RPC port does not disturb the cluster.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use wk_tests::{get, poll, post, TestCluster};

const T: Duration = Duration::from_secs(30);

/// Writes ca.crt and, per IP, node-<ip>.crt/.key signed by the CA.
fn make_pki(dir: &Path, ips: &[&str]) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.crt"), ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    for ip in ips {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec![ip.to_string()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("node-{ip}.crt")), cert.pem()).unwrap();
        wk_testkit::write_secret(&dir.join(format!("node-{ip}.key")), key.serialize_pem()).unwrap();
    }
}

fn security_yaml(dir: &Path, ip: &str, token_file: &Path) -> String {
    format!(
        "  tls:\n    enabled: true\n    certFile: {d}/node-{ip}.crt\n    keyFile: {d}/node-{ip}.key\n    caFile: {d}/ca.crt\n    clientAuth: true\n    minVersion: \"1.2\"\n\
         \x20 auth:\n    enabled: true\n    method: token\n    tokenFile: {t}\n",
        d = dir.display(),
        t = token_file.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_and_token_auth_between_peers() {
    let pki = tempfile::tempdir().unwrap();
    let ips = ["127.0.0.11", "127.0.0.12", "127.0.0.13"];
    make_pki(pki.path(), &ips);
    let good = pki.path().join("cluster-token");
    let bad = pki.path().join("wrong-token");
    wk_testkit::write_secret(&good, "s3cret-cluster-token\n").unwrap();
    wk_testkit::write_secret(&bad, "not-the-token\n").unwrap();

    let mut c = TestCluster::prepare(3, "");
    for (i, ip) in ips.iter().enumerate() {
        // Node 1003 holds the wrong token: it must not be able to take part.
        let token = if i == 2 { &bad } else { &good };
        c.nodes[i]
            .opts
            .cluster_yaml
            .push_str(&security_yaml(pki.path(), ip, token));
        c.nodes[i].write_config();
        c.nodes[i].spawn();
    }
    // 1001 and 1002 form a quorum over mTLS.
    let leader = poll(T, "a leader among the authenticated nodes", || {
        let u = c.nodes[0].url("/cluster/raft/status");
        async move { get(&u).await.1["leader"].as_u64() }
    })
    .await;
    assert!(leader == 1001 || leader == 1002, "leader {leader}");
    let (st, _) = post(
        &c.nodes[1].url("/message/send"),
        json!({"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": "aGk="}),
    )
    .await;
    assert_eq!(st, 200);

    // Garbage on the RPC port of the leader: rejected, the cluster keeps working.
    let li = c.index_of(leader);
    let addr = format!("{}:{}", c.nodes[li].opts.ip, c.nodes[li].ports.cluster);
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    drop(s);
    let (st, _) = post(
        &c.nodes[0].url("/message/send"),
        json!({"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": "aGk="}),
    )
    .await;
    assert_eq!(st, 200);

    // The node with the wrong token is up (its API answers) but never receives data, and the
    // others log the rejection.
    assert!(c.nodes[2].alive(), "the wrong-token node is running");
    let (st, v) = poll(T, "the wrong-token node's API to answer", || {
        let u = c.nodes[2].url("/cluster/raft/status");
        async move {
            let (st, v) = get(&u).await;
            (st != 0).then_some((st, v))
        }
    })
    .await;
    assert_eq!(st, 200, "{v}");
    assert!(
        matches!(v["applied_index"].as_u64(), None | Some(0)) && v["node_id"] == 1003,
        "wrong-token node got data: {v}"
    );
    let logs = std::fs::read_to_string(c.nodes[li].log_path()).unwrap_or_default()
        + &std::fs::read_to_string(c.nodes[2].log_path()).unwrap_or_default();
    assert!(
        logs.contains("authentication") || logs.contains("rejected"),
        "rejection logged:\n{}",
        c.logs()
    );

    // Fixing the token lets it join and catch up.
    c.nodes[2].kill9();
    c.nodes[2].opts.cluster_yaml = c.nodes[2]
        .opts
        .cluster_yaml
        .replace(&bad.display().to_string(), &good.display().to_string());
    c.nodes[2].write_config();
    c.nodes[2].spawn();
    for n in &mut c.nodes {
        n.wait_healthy(T).await;
    }
    let v = c.wait_converged(T).await;
    assert!(v["applied_index"].as_u64() > Some(0), "{v}");
}

/// A 3-node cluster with cluster auth, node `i` reading `dir/token-{i}` (written by [`set_token`]
/// with `tokens`), `extra` appended under `auth:`; spawned, with its leader's id.
async fn token_cluster(dir: &Path, tokens: &str, extra: &str) -> (TestCluster, u64) {
    let mut c = TestCluster::prepare(3, "");
    for i in 0..3 {
        set_token(dir, i, tokens);
        c.nodes[i].opts.cluster_yaml.push_str(&format!(
            "  auth:\n    enabled: true\n    tokenFile: {}\n{extra}",
            token_file(dir, i).display()
        ));
        c.nodes[i].write_config();
    }
    let leader = c.spawn_all(T).await;
    (c, leader)
}

fn token_file(dir: &Path, i: usize) -> std::path::PathBuf {
    dir.join(format!("token-{i}"))
}

/// Replaces node `i`'s token file whole (temp file, rename), as an operator or a tool does.
fn set_token(dir: &Path, i: usize, contents: &str) {
    let tmp = dir.join(format!(".token-{i}.new"));
    wk_testkit::write_secret(&tmp, contents).unwrap();
    std::fs::rename(&tmp, token_file(dir, i)).unwrap();
}

async fn send(url: String) -> u16 {
    let body = json!({"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": "aGk="});
    post(&url, body).await.0
}

/// The watch saw one leader in one term (`term`, `leader`) and no split brain.
async fn assert_one_leader_throughout(watch: wk_tests::RaftWatch, term: u64, leader: u64) {
    let history = watch.finish().await;
    eprintln!(
        "raft status samples: {}, leaders: {:?}",
        history.samples, history.leaders
    );
    assert!(history.samples > 0, "the watch saw the cluster");
    assert!(
        history.split_terms().is_empty(),
        "split brain: {:?}",
        history.split_terms()
    );
    let leaders: Vec<(u64, Vec<u64>)> = history
        .leaders
        .iter()
        .map(|(t, l)| (*t, l.iter().copied().collect()))
        .collect();
    assert_eq!(
        leaders,
        [(term, vec![leader])],
        "one leader, one term throughout"
    );
}

async fn watch_and_term(c: &TestCluster, leader: u64) -> (wk_tests::RaftWatch, u64) {
    let li = c.index_of(leader);
    let term = get(&c.nodes[li].url("/cluster/raft/status")).await.1["term"]
        .as_u64()
        .expect("term");
    let watch = wk_tests::RaftWatch::start(
        c.nodes
            .iter()
            .map(|n| n.url("/cluster/raft/status"))
            .collect(),
    );
    (watch, term)
}

/// Changing the cluster token node by node with SIGHUP, no restart: after each reload the
/// cluster keeps its leader and term, a follower restarted mid-change (still on the old token)
/// rejoins both ways (the reloaded node accepts the old token and falls back to it when dialing),
/// and at the end every node uses the new token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_token_changes_node_by_node_without_leader_loss() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (mut c, leader) = token_cluster(dir, "token-old\n", "").await;
    let li = c.index_of(leader);
    let (watch, start_term) = watch_and_term(&c, leader).await;
    let send_url = |c: &TestCluster, i: usize| c.nodes[i].url("/message/send");
    // Reload the leader first, then restart a follower that still holds the old token.
    let follower = (li + 1) % 3;
    let last = (li + 2) % 3;
    set_token(dir, li, "token-new\n");
    c.nodes[li].hup();
    let log_path = c.nodes[li].log_path();
    poll(T, "the leader to log the reload", || {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        async move { log.contains("cluster token reloaded").then_some(()) }
    })
    .await;
    assert_eq!(send(send_url(&c, li)).await, 200);
    c.nodes[follower].kill9();
    c.nodes[follower].spawn();
    c.nodes[follower].wait_healthy(T).await;
    c.wait_converged(T).await;
    assert_eq!(
        send(send_url(&c, follower)).await,
        200,
        "the restarted follower writes through the leader"
    );
    for i in [follower, last] {
        set_token(dir, i, "token-new\n");
        c.nodes[i].hup();
    }
    for i in 0..3 {
        assert_eq!(send(send_url(&c, i)).await, 200);
    }
    c.wait_converged(T).await;
    assert_one_leader_throughout(watch, start_term, leader).await;
}

/// `tokenRotationInterval`: each node re-reads its token file on that period, no signal needed.
/// A rotation through files holding the current and the next secret — every node first accepts
/// the next one, then dials with it, then drops the old one — keeps one leader and term, every
/// node keeps writing, and at the end a peer holding only the old token is refused by every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_files_are_reread_each_rotation_interval_without_a_signal() {
    use wukongim::cluster::messages::kind;
    use wukongim::cluster::rpc::{RpcClient, RpcSettings};
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (mut c, leader) =
        token_cluster(dir, "token-old\n", "    tokenRotationInterval: 1s\n").await;
    let (watch, start_term) = watch_and_term(&c, leader).await;
    let reloads = |c: &TestCluster, i: usize| {
        std::fs::read_to_string(c.nodes[i].log_path())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("cluster token reloaded") && l.contains("tokenRotationInterval"))
            .count()
    };
    let stages = [
        "token-old\ntoken-new\n",
        "# rotated\ntoken-new\ntoken-old\n",
        "token-new\n",
    ];
    for (n, contents) in stages.iter().enumerate() {
        for i in 0..3 {
            set_token(dir, i, contents);
            poll(
                T,
                &format!("node {i} to re-read its file (stage {n})"),
                || {
                    let r = reloads(&c, i);
                    async move { (r > n).then_some(()) }
                },
            )
            .await;
            for j in 0..3 {
                assert_eq!(
                    send(c.nodes[j].url("/message/send")).await,
                    200,
                    "stage {n}, node {i} reloaded: a send through node {j}"
                );
            }
        }
    }
    c.wait_converged(T).await;
    let ping = |i: usize, t: &str| {
        let client = RpcClient::new(std::sync::Arc::new(RpcSettings {
            token: Some(t.as_bytes().to_vec()),
            ..RpcSettings::default()
        }));
        let addr = format!("{}:{}", c.nodes[i].opts.ip, c.nodes[i].ports.cluster);
        async move {
            client
                .call(&addr, kind::PING, bytes::Bytes::new())
                .await
                .is_ok()
        }
    };
    for i in 0..3 {
        assert!(ping(i, "token-new").await, "node {i} accepts the new token");
        assert!(
            !ping(i, "token-old").await,
            "node {i} refuses the old token"
        );
    }
    assert_one_leader_throughout(watch, start_term, leader).await;
}

/// SIGHUP re-reads the `cluster.tls` files: after the node's certificate, key and CA are replaced
/// by ones from a new CA, a peer of the new CA is accepted and one of the old CA refused, without
/// a restart; files that are not certificates are logged and the ones in force stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_tls_certificates_for_new_connections() {
    use wukongim::cluster::messages::kind;
    use wukongim::cluster::rpc::{RpcClient, RpcSettings, TlsSettings};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ip = "127.0.0.11";
    let (old, new, live) = (d.join("old"), d.join("new"), d.join("live"));
    for p in [&old, &new, &live] {
        std::fs::create_dir(p).unwrap();
        make_pki(p, &[ip]);
    }
    let install = |from: &Path| {
        for f in [
            "ca.crt".to_string(),
            format!("node-{ip}.crt"),
            format!("node-{ip}.key"),
        ] {
            let tmp = live.join(format!(".{f}.new"));
            wk_testkit::write_secret(&tmp, std::fs::read(from.join(&f)).unwrap()).unwrap();
            std::fs::rename(&tmp, live.join(&f)).unwrap();
        }
    };
    install(&old);
    let token = d.join("cluster-token");
    wk_testkit::write_secret(&token, "t0ken\n").unwrap();
    let mut c = TestCluster::prepare(1, "");
    c.nodes[0]
        .opts
        .cluster_yaml
        .push_str(&security_yaml(&live, ip, &token));
    c.nodes[0].write_config();
    c.spawn_all(T).await;
    let addr = format!("{ip}:{}", c.nodes[0].ports.cluster);
    let peer = |pki: &Path| {
        let tls = TlsSettings::from_config(&wukongim::config::Tls {
            enabled: true,
            cert_file: Some(pki.join(format!("node-{ip}.crt"))),
            key_file: Some(pki.join(format!("node-{ip}.key"))),
            ca_file: Some(pki.join("ca.crt")),
            client_auth: true,
            ..Default::default()
        })
        .unwrap();
        RpcClient::new(std::sync::Arc::new(RpcSettings {
            token: Some(b"t0ken".to_vec()),
            tls: Some(tls.into()),
            ..RpcSettings::default()
        }))
    };
    // A fresh client (no pooled connection) per call: each one is a new TLS handshake.
    let ping = |pki: &Path| {
        let addr = addr.clone();
        let client = peer(pki);
        async move {
            client
                .call(&addr, kind::PING, bytes::Bytes::new())
                .await
                .is_ok()
        }
    };
    assert!(ping(&old).await, "a peer of the CA in force");
    assert!(!ping(&new).await, "a peer of another CA");
    install(&new);
    assert!(
        !ping(&new).await,
        "replaced files take effect only on SIGHUP"
    );
    c.nodes[0].hup();
    poll(T, "a peer of the new CA to be accepted", || {
        let p = ping(&new);
        async move { p.await.then_some(()) }
    })
    .await;
    assert!(!ping(&old).await, "the old CA's peer is refused");
    // Garbage in the certificate file: logged, the certificates in force stay.
    let crt = live.join(format!("node-{ip}.crt"));
    std::fs::write(&crt, "not a certificate\n").unwrap();
    c.nodes[0].hup();
    let log = c.nodes[0].log_path();
    poll(T, "the failed reload to be logged", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        async move {
            text.contains("cannot reload the cluster TLS files")
                .then_some(())
        }
    })
    .await;
    assert!(ping(&new).await, "certificates unchanged after a bad file");
    assert_eq!(send(c.nodes[0].url("/message/send")).await, 200);
}
