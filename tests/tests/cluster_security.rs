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
