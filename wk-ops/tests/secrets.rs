//! `wk-ops render` is secure by default and `wk-ops secrets` generates the files it points at:
//! tokens (0600, random, kept unless replaced) and a CA with per-node certificates that the
//! server's own TLS loader accepts.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn inventory(dir: &Path, cluster: &str) -> String {
    format!(
        "cluster:\n  name: sec\n{cluster}nodes:\n  - {{ id: 1, host: 10.0.0.1 }}\n  \
         - {{ id: 2, host: 10.0.0.2 }}\nsystemd:\n  configDir: {}/etc\n",
        dir.display()
    )
}

#[test]
fn rendered_node_files_close_every_door_unless_opted_out() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "inventory.yaml", &inventory(d, ""));
    wk_ops(
        d,
        &[
            "render",
            "inventory.yaml",
            "--out",
            "out",
            "--only",
            "nodes",
        ],
    )
    .expect(0);
    let node = d.join("out/nodes/1/wk.yaml");
    let loaded = wukongim::config::load(Some(&node), Vec::new()).unwrap();
    let c = &loaded.config;
    let etc = d.join("etc");
    assert!(c.cluster.auth.enabled);
    assert_eq!(c.cluster.auth.token_file, Some(etc.join("cluster-token")));
    assert_eq!(c.manager_token_file, Some(etc.join("manager-token")));
    assert!(c.token_auth_on);
    let mut public = c.clone();
    public.cluster.server_addr = "0.0.0.0:11110".into();
    assert_eq!(wukongim::config::open_doors(&public), []);

    // Explicit opt-outs are honoured, and the node then reports each open door.
    let opt_out = "  openApi: true\n  auth: { enabled: false }\n  tokenAuthOn: false\n";
    write(d, "open.yaml", &inventory(d, opt_out));
    wk_ops(
        d,
        &["render", "open.yaml", "--out", "open", "--only", "nodes"],
    )
    .expect(0);
    let loaded = wukongim::config::load(Some(&d.join("open/nodes/1/wk.yaml")), Vec::new()).unwrap();
    let doors: Vec<_> = wukongim::config::open_doors(&loaded.config)
        .into_iter()
        .map(|o| o.setting)
        .collect();
    assert_eq!(doors, ["cluster_auth", "manager_token", "token_auth"]);

    // A contradiction is refused.
    write(
        d,
        "both.yaml",
        &inventory(
            d,
            "  openApi: true\n  managerTokenFile: /etc/wk/manager-token\n",
        ),
    );
    let r = wk_ops(d, &["render", "both.yaml", "--out", "both"]).expect(2);
    assert!(r.stderr.contains("cluster.openApi"), "{}", r.stderr);
}

#[test]
fn secrets_writes_private_tokens_and_keeps_them_unless_replaced() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "inventory.yaml", &inventory(d, ""));
    let r = wk_ops(d, &["secrets", "inventory.yaml"]).expect(0);
    let (manager, cluster) = (d.join("etc/manager-token"), d.join("etc/cluster-token"));
    for f in [&manager, &cluster] {
        assert_eq!(mode(f), 0o600, "{}", f.display());
        let text = std::fs::read_to_string(f).unwrap();
        assert_eq!(text.trim().len(), 64, "{text}");
        assert!(text.trim().bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(
            r.stdout.contains(&format!("wrote {} (0600)", f.display())),
            "{}",
            r.stdout
        );
        // The server accepts what was written.
        assert!(wukongim::secret::read_private(f, "k").is_ok());
    }
    assert_ne!(
        std::fs::read(&manager).unwrap(),
        std::fs::read(&cluster).unwrap()
    );
    let before = std::fs::read(&manager).unwrap();
    let r = wk_ops(d, &["secrets", "inventory.yaml"]).expect(0);
    assert!(r.stdout.contains("kept"), "{}", r.stdout);
    assert_eq!(std::fs::read(&manager).unwrap(), before);
    wk_ops(d, &["secrets", "inventory.yaml", "--replace"]).expect(0);
    assert_ne!(std::fs::read(&manager).unwrap(), before);
    // --out puts the files elsewhere by name; nothing else is written there.
    wk_ops(d, &["secrets", "inventory.yaml", "--out", "staged"]).expect(0);
    let mut names: Vec<_> = std::fs::read_dir(d.join("staged"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["cluster-token", "manager-token"]);
    // Nothing to generate is a usage error, not a silent success.
    let opt_out = "  openApi: true\n  auth: { enabled: false }\n";
    write(d, "open.yaml", &inventory(d, opt_out));
    let r = wk_ops(d, &["secrets", "open.yaml"]).expect(2);
    assert!(r.stderr.contains("nothing to generate"), "{}", r.stderr);
}

#[test]
fn secrets_tls_issues_a_ca_and_a_certificate_per_node() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let tls = "  tls: { enabled: true, certFile: /etc/wk/node.crt, keyFile: /etc/wk/node.key, \
               caFile: /etc/wk/ca.crt, clientAuth: true }\n";
    write(d, "inventory.yaml", &inventory(d, tls));
    let r = wk_ops(d, &["secrets", "inventory.yaml", "--tls"]).expect(2);
    assert!(r.stderr.contains("--out"), "{}", r.stderr);
    wk_ops(d, &["secrets", "inventory.yaml", "--tls", "--out", "pki"]).expect(0);
    let pki = d.join("pki");
    assert_eq!(mode(&pki.join("ca.key")), 0o600);
    for id in [1, 2] {
        let n = pki.join(format!("node-{id}"));
        assert_eq!(mode(&n.join("node.key")), 0o600);
        let settings = wukongim::cluster::rpc::TlsSettings::from_config(&wukongim::config::Tls {
            enabled: true,
            cert_file: Some(n.join("node.crt")),
            key_file: Some(n.join("node.key")),
            ca_file: Some(n.join("ca.crt")),
            client_auth: true,
            ..Default::default()
        });
        assert!(settings.is_ok(), "node {id}: {:?}", settings.err());
    }
    assert_ne!(
        std::fs::read(pki.join("node-1/node.key")).unwrap(),
        std::fs::read(pki.join("node-2/node.key")).unwrap()
    );
    // A second run without --replace does not re-issue under an existing CA.
    wk_ops(d, &["secrets", "inventory.yaml", "--tls", "--out", "pki"]).expect(2);
}
